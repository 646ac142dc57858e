#!/usr/bin/env python
"""How long Ctrl-C takes to stop ``vposer-data prepare``: SIGINT to the command's process group
(as a terminal sends it) at random moments of a run, and the seconds until the command has
exited, with its exit status and the stage it stopped in.

Times two uninterrupted runs first (imports included; the first fills the page cache), then
draws each moment uniformly within the second (or within the shortest run since, when a run
ends before its press). Two figures per press: until the command prints "Interrupted; ..."
(the run has stopped, its files are closed, its workers stopped) and until the process has
exited (after a stop the command leaves without the interpreter's teardown, see
``vposer_data.cli.run``). Each interrupted output folder is removed afterwards. The figures
are reported, never asserted; the README's bound is what they check.

    python benchmarks/bench_interrupt.py --tree /tmp/amass2m --runs 40
    python benchmarks/bench_interrupt.py --frames 2000000 --keep-rate 1.0 --twice

With ``--after TEXT``, each press comes a moment drawn uniformly within ``--window`` seconds
after the first line of the command's log (``-v``) that holds TEXT, e.g. ``"stage III vald:"``
for the test and train splits' Stage III, where the largest files are written and flushed:

    python benchmarks/bench_interrupt.py --tree /tmp/amass16m --keep-rate 1.0 --runs 4 \
        --after "stage III vald:" --window 15
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

STAGES = ("stage_I", "stage_II", "stage_III")


def _command(tree: Path, out: Path, args: argparse.Namespace) -> list[str]:
    verbose = ["-v"] if args.after else []
    return [
        sys.executable, "-m", "vposer_data", *verbose, "prepare", "--amass-dir", str(tree),
        "--out", str(out), "--num-workers", str(args.num_workers),
        "--keep-rate", str(args.keep_rate), "--no-progress",
    ]  # fmt: skip


def _landed(out: Path) -> str:
    """The first stage the manifest does not record for every split ("done": all recorded)."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return "start"
    records = manifest.get("stages", {})
    for stage in STAGES:
        if set(records.get(stage, {})) != set(manifest["settings"]["splits"]):
            return stage
    return "done"


def _run(tree: Path, out: Path, args: argparse.Namespace, delay: float | None) -> dict:
    """One run, with Ctrl-C ``delay`` seconds after its start, or after its first log line
    holding ``args.after`` (None: none): its exit status, seconds from Ctrl-C to the
    "Interrupted" message and to the exit, and its last line."""
    started = time.monotonic()
    proc = subprocess.Popen(
        _command(tree, out, args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    lines: list[tuple[float, str]] = []
    anchor = threading.Event()

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append((time.monotonic(), line))
            if args.after and args.after in line:
                anchor.set()
        anchor.set()  # the output ended first

    reader = threading.Thread(target=read)
    reader.start()
    pressed = None
    if delay is not None:
        if args.after:
            anchor.wait()
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            pressed = time.monotonic()
            os.killpg(proc.pid, signal.SIGINT)
            if args.twice:
                time.sleep(0.1)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=600)
    ended = time.monotonic()
    reader.join()
    said = [at for at, line in lines if line.startswith("Interrupted")]
    return {
        "delay": delay,
        "rc": proc.returncode,
        "seconds": ended - started,
        "stop": None if pressed is None else ended - pressed,
        "said": None if pressed is None or not said else said[0] - pressed,
        "landed": _landed(out),
        "message": lines[-1][1].strip() if lines else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="an AMASS tree (default: synthesize one)")
    parser.add_argument("--frames", type=int, default=2_000_000, help="frames to synthesize")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--keep-rate", type=float, default=0.3)
    parser.add_argument("--twice", action="store_true", help="press Ctrl-C again 0.1 s later")
    parser.add_argument("--after", help="press within --window s after a log line with this")
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    # started in the background (bash's "&" without job control), this process has SIGINT
    # ignored, and so would the runs: they would finish instead of stopping
    signal.signal(signal.SIGINT, signal.default_int_handler)

    work = Path(tempfile.mkdtemp(prefix="bench_interrupt_"))
    try:
        tree = args.tree
        if tree is None:
            tree = work / "amass"
            from vposer_data.synthetic import write_amass_tree

            write_amass_tree(tree, total_frames=args.frames, seed=args.seed)
        for attempt in ("cold", "warm")[: 1 if args.after else 2]:  # the first fills the cache
            whole = _run(tree, work / "whole", args, None)
            shutil.rmtree(work / "whole", ignore_errors=True)
            print(f"uninterrupted ({attempt}): {whole['seconds']:.2f} s, exit status {whole['rc']}")
        rng = random.Random(args.seed)
        horizon = whole["seconds"]
        landed: Counter[str] = Counter()
        stops, saids = [], []
        for i in range(args.runs):
            out = work / f"run{i:03d}"
            result = _run(tree, out, args, rng.uniform(0, args.window if args.after else horizon))
            shutil.rmtree(out, ignore_errors=True)
            if result["stop"] is None:  # it ended before the press: runs are that fast now
                horizon = min(horizon, result["seconds"])
            landed[result["landed"]] += 1
            if result["stop"] is not None:
                stops.append(result["stop"])
            if result["said"] is not None:
                saids.append(result["said"])
            stop = "-" if result["stop"] is None else f"{result['stop']:.2f} s"
            said = "-" if result["said"] is None else f"{result['said']:.2f} s"
            print(
                f"run {i:3d}: Ctrl-C at {result['delay']:6.2f} s, message after {said:>7}, "
                f"exited after {stop:>7}, status {result['rc']}, in {result['landed']}: "
                f"{result['message'][:60]}"
            )
        print(f"stopped in: {dict(landed)}")
        for name, values in (("to the message", saids), ("to the exit", stops)):
            if values:
                print(
                    f"Ctrl-C {name}, over {len(values)} presses: max {max(values):.2f} s, "
                    f"median {statistics.median(values):.2f} s"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
