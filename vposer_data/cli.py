"""The ``vposer-data`` command: prepare | info | demo | synth | report.

Arguments are checked before anything heavy is imported or anything is written: a mistyped
value fails at once, in the command's own words (``--target-fps 0: ...``, not the Python
setting's name), and a remedy names the command that was run.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import gc
import importlib.util
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from vposer_data._version import __version__
from vposer_data.errors import REBUILD_HINT, ConfigError, VPoserDataError

if TYPE_CHECKING:
    from vposer_data.config import PrepareConfig

__all__ = ["DOCS_PAGES", "DOCS_ROOT", "docs_pointer", "main"]

#: Where the documentation lives: the ``docs/`` folder of the source tree, also built as a site
#: (``mkdocs build``; ``mkdocs serve`` to browse it).
DOCS_ROOT = "docs/"
#: The documentation page of the command itself (None) and of each subcommand.
DOCS_PAGES: dict[str | None, str] = {
    None: "index.md",
    "prepare": "preparing.md",
    "info": "preparing.md",
    "report": "preparing.md",
    "demo": "index.md",
    "synth": "index.md",
}


def _check_frames(args: argparse.Namespace) -> None:
    """``--frames``: enough for two short motions per dataset of the release."""
    from vposer_data.synthetic import minimum_frames

    if args.frames < minimum_frames(args.release):
        raise ConfigError(
            f"--frames {args.frames}: expected at least {minimum_frames(args.release)} "
            f"for the {args.release} release (two short motions per dataset)"
        )


def _cmd_synth(args: argparse.Namespace) -> int:
    from vposer_data.synthetic import write_amass_tree

    _check_frames(args)

    if args.body_models is not None:
        from vposer_data.synthetic_models import ensure_body_models

        written = ensure_body_models(args.body_models)
        print(
            f"Wrote {len(written)} made-up body-model files (SMPL, SMPL+H, SMPL-X; male, female, "
            f"neutral; AMASS layout) to {args.body_models}: for tests and demos only."
            if written
            else f"Reusing the made-up body models in {args.body_models}."
        )
    summary = write_amass_tree(
        args.out_dir,
        total_frames=args.frames,
        release=args.release,
        seed=args.seed,
        compress=args.compress,
        errata_examples=args.errata_examples,
    )
    print(
        f"Wrote a synthetic AMASS tree ({summary.release} release) to {summary.root}: "
        f"{summary.motion_files} motion files, {summary.total_frames:,} frames, "
        f"{len(summary.datasets)} datasets."
    )
    return 0


def _config_from_args(args: argparse.Namespace) -> PrepareConfig:
    """The PrepareConfig of the flags given (the others keep their defaults)."""
    from vposer_data.config import PrepareConfig

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(PrepareConfig)
        if hasattr(args, f.name)
    }
    if "sampling" not in given and "clip_frames" in given:
        given["sampling"] = "clips"  # a clip length asks for clips
    elif "sampling" not in given and "target_fps" in given:
        given["sampling"] = "fps"  # a clock rate alone asks for clock sampling
    return PrepareConfig(**given)


def _checked_config(
    args: argparse.Namespace, splits: dict, config: PrepareConfig | None = None
) -> PrepareConfig:
    """The settings of the flags given, checked against the split mapping and for the body
    models they need (torch-free)."""
    config = _config_from_args(args) if config is None else config
    config.check_splits(splits)
    config.require_body_model_dir()
    return config


def _prepare(
    args: argparse.Namespace, amass_dir: Path, out: Path, splits: dict, config: PrepareConfig
) -> int:
    from vposer_data.prepare import prepare_vposer_datasets  # imports torch: checks come first
    from vposer_data.summary import summarize

    result = prepare_vposer_datasets(
        splits, amass_dir, out, logger=None, config=config, overwrite=args.overwrite
    )
    if not result.ran:
        print(f"{out} is already prepared with these settings; nothing to do.")
    else:
        timing = ", ".join(f"{stage} {sec:.1f}s" for stage, sec in result.seconds.items())
        print(f"Prepared {out} ({timing}).")
    print()
    print(summarize(out))
    return 0


def _load_splits(value: str | None) -> dict:
    from vposer_data.splits import AMASS_SPLITS

    if value is None:
        return AMASS_SPLITS
    try:
        text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
        splits = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"--splits {value!r}: expected a JSON object of split -> datasets, or a JSON "
            f"file holding one ({exc})"
        ) from None
    if not isinstance(splits, dict):
        raise ConfigError(f"--splits {value!r}: expected a JSON object of split -> datasets")
    return splits


def _cmd_prepare(args: argparse.Namespace) -> int:
    from vposer_data.splits import resolve_datasets

    splits = _load_splits(args.splits)
    config = _checked_config(args, splits)
    resolve_datasets(splits, args.amass_dir, log=lambda _: None)  # names, before torch
    return _prepare(args, args.amass_dir, args.out, splits, config)


def _cmd_info(args: argparse.Namespace) -> int:
    from vposer_data.summary import summarize, verify

    print(summarize(args.data_dir))
    if args.verify:
        problems = verify(args.data_dir)
        if problems:
            print("\nVerification FAILED:")
            for problem in problems:
                print(f"  {problem}")
            return 1
        print("\nVerification passed: every file matches its recorded size and checksum.")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vposer_data.summary import load_prepared

    load_prepared(args.data_dir)  # a folder that is not prepared fails before torch is imported
    if importlib.util.find_spec("matplotlib") is None:
        print(
            "vposer-data: error: the report needs matplotlib: pip install 'vposer-data[report]'",
            file=sys.stderr,
        )
        return 2
    from vposer_data.report import write_report

    path = write_report(args.data_dir, args.out, max_samples=args.max_samples or None)
    print(f"Wrote {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vposer_data.splits import AMASS_SPLITS
    from vposer_data.synthetic import ensure_synthetic_tree

    _check_frames(args)
    config = _config_from_args(args)
    if config.body_model_augmentations and config.body_model_dir is None:
        # the demo's own made-up models, written once beside its tree
        config = dataclasses.replace(config, body_model_dir=str(args.dir / "body_models"))
    config = _checked_config(args, AMASS_SPLITS, config)  # before anything is written
    amass_dir = args.dir / "amass"
    summary = ensure_synthetic_tree(amass_dir, total_frames=args.frames, release=args.release)
    if summary is None:
        print(f"Reusing the synthetic AMASS tree in {amass_dir}.")
    else:
        print(
            f"Wrote a synthetic AMASS tree to {amass_dir}: {summary.motion_files} motion "
            f"files, {summary.total_frames:,} frames ({summary.release} release names)."
        )
    if config.body_model_dir == str(args.dir / "body_models"):
        from vposer_data.synthetic_models import ensure_body_models

        if ensure_body_models(args.dir / "body_models", families=(args.release,)):
            print(f"Wrote made-up {args.release} body models to {args.dir / 'body_models'}.")
    return _prepare(args, amass_dir, args.dir / "vposer", AMASS_SPLITS, config)


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser that also reads ``none`` as None."""

    def parse_or_none(text: str) -> Any:
        return None if text.strip().lower() == "none" else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")
    return parse_or_none


def _json_mapping(text: str) -> dict[str, Any]:
    """A JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _name_or_json(text: str) -> str | dict[str, Any]:
    """A repeatable list item: a name, or a JSON mapping."""
    return _json_mapping(text) if text.lstrip().startswith("{") else text


_PARSERS: dict[str, Callable[[str], Any]] = {"float": float, "int": int, "str": str}


def _setting_flags() -> dict[str, str]:
    """PrepareConfig setting -> its command-line flag."""
    from vposer_data.config import PrepareConfig

    return {
        f.name: f.metadata["flag"] or "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(PrepareConfig)
    }


def _as_typed(text: str) -> str:
    """A value that a message shows as Python writes it (``0``, ``'clips'``, ``None``,
    ``('test',)``), as it is typed on the command line (``0``, ``clips``, ``none``, ``test``)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return str(value)


def _in_flags(message: str) -> str:
    """A PrepareConfig error in the command's words: each ``setting=value`` becomes
    ``--flag value``; a ``setting:`` or ``setting=None`` that heads a problem, ``--flag``."""
    flags = _setting_flags()
    names = "|".join(sorted(flags, key=len, reverse=True))
    value = r"'[^']*'|\[[^\]]*\]|\([^)]*\)|[-+\w.]+"
    pattern = re.compile(rf"\b({names})(?:=({value})|(?=: ))")
    message = message.removeprefix("invalid PrepareConfig: ")

    def flag_words(match: re.Match[str]) -> str:
        flag, typed = flags[match.group(1)], match.group(2)
        heads = match.start() == 0 or message[: match.start()].endswith("; ")
        if typed is None or (typed == "None" and heads):  # a flag not given: its name alone
            return flag
        return f"{flag} {_as_typed(typed)}"

    return pattern.sub(flag_words, message)


def _in_command_words(error: VPoserDataError, command: str) -> str:
    """An error as the command reports it: settings named by their flags, and the rebuild
    remedy naming the command that was run."""
    text = _in_flags(str(error)) if isinstance(error, ConfigError) else str(error)
    if command == "prepare":
        text = re.sub(r"^amass_dir ", "--amass-dir ", text)
    lines = text.splitlines()
    if lines and lines[-1].startswith(REBUILD_HINT):
        lines[-1] = (
            f"Run `vposer-data {command} --overwrite` (with the same arguments) to rebuild "
            "it, or choose another folder."
        )
    return "\n".join(lines)


def _add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """One flag per PrepareConfig setting, made from its declaration (name, type, default,
    help). Flags not given are left out, so the setting keeps its default."""
    from vposer_data.augment.registry import AUGMENTATIONS
    from vposer_data.config import PrepareConfig

    defaults = PrepareConfig().to_dict()
    flags = _setting_flags()
    group = parser.add_argument_group("preparation settings (PrepareConfig)")
    for f in dataclasses.fields(PrepareConfig):
        meta = f.metadata
        flag = flags[f.name]
        kind = str(f.type).replace(" ", "")
        help_text = meta["help"].replace("%", "%%").replace("`", "")
        options: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if f.name == "augmentations":
            listed = "; ".join(
                f"{a.name}: {a.summary}".replace("`", "").replace("%", "%%")
                for a in AUGMENTATIONS.values()
            )
            options.update(
                action="append",
                type=_name_or_json,
                metavar="NAME|JSON",
                help=f"{help_text}; repeatable, in order ({listed}) (default: matrot)",
            )
        elif kind == "tuple[str,...]":
            options.update(
                action="append",
                metavar="SPLIT",
                help=f"{help_text}; repeatable (default: {', '.join(defaults[f.name])})",
            )
        elif kind.startswith("tuple"):
            options.update(
                action="append",
                type=_name_or_json,
                metavar="NAME|JSON",
                help=f"{help_text}; repeatable",
            )
        elif kind.startswith(("dict", "Mapping")):
            options.update(type=_json_mapping, metavar="JSON", help=f"{help_text}")
        elif kind.startswith("bool"):
            options.update(
                action=argparse.BooleanOptionalAction,
                help=f"{help_text} (default: {defaults[f.name]})",
            )
        else:
            base, _, optional = kind.partition("|")
            parse = _PARSERS[base]
            options.update(
                type=_optional(parse) if optional else parse,
                choices=meta["choices"],
                metavar=None if meta["choices"] else base.upper(),
                help=f"{help_text} (default: {defaults[f.name]})",
            )
        group.add_argument(flag, **options)
    group.add_argument(
        "--overwrite", action="store_true", help="rebuild an output prepared with other settings"
    )


def docs_pointer(command: str | None = None) -> str:
    """The line a help text ends with: the documentation page of ``command`` (None: the
    command itself), and the settings reference for those that take the preparation settings."""
    line = f"documentation: {DOCS_ROOT}{DOCS_PAGES[command]}"
    if command in ("prepare", "demo"):
        line += f"; every setting: {DOCS_ROOT}reference/settings.md"
    return line + " in the source tree (mkdocs serve shows docs/ as a site)"


def _add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **options: Any
) -> argparse.ArgumentParser:
    """A subcommand whose help ends with its documentation page."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, epilog=docs_pointer(name), **options
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vposer-data",
        description="Turn AMASS into VPoser training data, once, reproducibly.",
        epilog=docs_pointer(),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="echo every log line (prepare.log in the output folder always has them)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    synth = _add_command(commands, "synth", help="write a synthetic AMASS-like tree")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--frames", type=int, default=200_000, help="total motion frames")
    synth.add_argument(
        "--release",
        choices=("smplh", "smplx"),
        default="smplh",
        help="folder names and file family of this AMASS release",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--compress", action="store_true", help="deflate the archives")
    synth.add_argument(
        "--errata-examples",
        action="store_true",
        help="also write the files the frame-rate errata and exclusion presets are about "
        "(BMLhandball, the two SSM subjects, BMLrub treadmill walking, HDM05 inline skating)",
    )
    synth.add_argument(
        "--body-models",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write made-up SMPL, SMPL+H and SMPL-X model files (real keys and shapes, "
        "never the licensed data) to DIR/<family>/<gender>/model.npz, for --body-model-dir",
    )
    synth.set_defaults(func=_cmd_synth)

    prepare = _add_command(commands, "prepare", help="run the three stages over AMASS")
    prepare.add_argument("--amass-dir", type=Path, required=True, help="the AMASS root folder")
    prepare.add_argument("--out", type=Path, required=True, help="the output folder")
    prepare.add_argument(
        "--splits",
        default=None,
        help="a JSON object or a JSON file of split -> datasets "
        "(default: the standard VPoser splits)",
    )
    _add_prepare_options(prepare)
    prepare.set_defaults(func=_cmd_prepare)

    info = _add_command(commands, "info", help="summarise a prepared folder")
    info.add_argument("data_dir", type=Path)
    info.add_argument(
        "--verify",
        action="store_true",
        help="recheck every final file against its recorded checksum",
    )
    info.set_defaults(func=_cmd_info)

    report = _add_command(
        commands,
        "report",
        help="draw a prepared folder as one PNG: samples per split and source dataset, "
        "joint rotation angles per split",
    )
    report.add_argument("data_dir", type=Path)
    report.add_argument(
        "--out", type=Path, default=None, help="the PNG to write (default DATA_DIR/report.png)"
    )
    report.add_argument(
        "--max-samples",
        type=int,
        default=100_000,
        help="angles from at most this many random samples per split; 0: all (default %(default)s)",
    )
    report.set_defaults(func=_cmd_report)

    demo = _add_command(
        commands,
        "demo",
        help="generate a synthetic AMASS tree, prepare it and summarise the result",
        description="Write a synthetic AMASS tree to DIR/amass (once: a tree written with the "
        "same options is reused), prepare it into DIR/vposer with the standard VPoser splits, "
        "and print its summary. The notebook and examples/train.py use the same folders.",
    )
    demo.add_argument(
        "dir",
        type=Path,
        nargs="?",
        default=Path("demo_data"),
        metavar="DIR",
        help="the demo folder: DIR/amass (synthetic AMASS) and DIR/vposer (prepared) "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--frames",
        type=int,
        default=200_000,
        help="motion frames of the synthetic tree (default: %(default)s)",
    )
    demo.add_argument(
        "--release",
        choices=("smplh", "smplx"),
        default="smplh",
        help="the AMASS release whose folder names and file family the tree imitates: "
        "smplh (*_poses.npz) or smplx (*_stageii.npz) (default: %(default)s)",
    )
    _add_prepare_options(demo)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:  # Ctrl-C while the arguments are read (imports included) ends the same way
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        return int(args.func(args))
    except VPoserDataError as exc:
        print(f"vposer-data: error: {_in_command_words(exc, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; completed stages are kept and the next run resumes.", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The command's entry point (``vposer-data``, ``python -m vposer_data``): :func:`main`,
    then exit with its status, ignoring Ctrl-C from then on. After Ctrl-C has stopped a run,
    the process leaves as soon as its output is flushed, without the interpreter's teardown
    of the modules it imported (for torch, 0.3 to 1.2 s on a busy 2-core machine, longer than
    the stop itself): the run has already closed its files, released its lock and stopped its
    workers and threads."""
    code = main()
    # the run is over: a Ctrl-C now (the interpreter restores SIGINT's default action while it
    # tears down, which would kill the process without a word) changes nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == 130:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    # the interpreter's last garbage collections would walk every object torch and numpy made
    # (0.2-0.5 s after a preparation): frozen, they are not walked; the modules are still torn
    # down and their files closed, and cycles go with the process's memory
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
