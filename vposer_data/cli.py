"""The ``vposer-data`` command: prepare | info | demo | synth | report."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _cmd_synth(args: argparse.Namespace) -> int:
    from vposer_data.synthetic import write_amass_tree

    summary = write_amass_tree(
        args.out_dir,
        total_frames=args.frames,
        release=args.release,
        seed=args.seed,
        compress=args.compress,
    )
    print(
        f"Wrote a synthetic AMASS tree ({summary.release} release) to {summary.root}: "
        f"{summary.motion_files} motion files, {summary.total_frames:,} frames, "
        f"{len(summary.datasets)} datasets."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vposer-data",
        description="Turn AMASS into VPoser training data, once, reproducibly.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic AMASS-like tree")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--frames", type=int, default=200_000, help="total motion frames")
    synth.add_argument("--release", choices=("smplh", "smplx"), default="smplh",
                       help="folder names and file family of this AMASS release")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--compress", action="store_true", help="deflate the archives")
    synth.set_defaults(func=_cmd_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("Interrupted; completed stages are kept and the next run resumes.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
