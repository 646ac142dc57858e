"""What only the fault tests need: the larger tree's settings, children to fork and kill (a
zygote that forks runs, each leading its own process group, its output through a FIFO), and
points in time to land signals at. The trees, the configuration and the checks that nothing
was damaged are the shared ones of ``tests/helpers.py`` and ``tests/conftest.py``."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from helpers import file_hashes, read_manifest, recorded_pairs

from vposer_data.manifest import STAGES
from vposer_data.splits import AMASS_SPLITS

PYTHON = sys.executable
CHILD = Path(__file__).with_name("fault_child.py")

#: The larger tree of the kill / interrupt / full-disk / concurrency tests: a run takes one to
#: two seconds, long enough to land signals inside each stage, with DataLoader workers. The
#: standard VPoser splits, in their order (vald, test, then train, the largest).
BIG_SPLITS: dict[str, list[str]] = {k: list(v) for k, v in AMASS_SPLITS.items()}
BIG_FRAMES = 60_000
BIG_SEED = 3
BIG_CONFIG: dict[str, Any] = {"progress": False, "num_workers": 2, "batch_size": 1024}


def partial_final_splits(root: Path, reference: Mapping[str, str]) -> list[str]:
    """Splits whose Stage III folder is not recorded yet holds some, not all, of the reference
    files (a folder a loader globbing ``*.pt`` would take for a whole split)."""
    recorded = recorded_pairs(read_manifest(root))
    found = file_hashes(root)
    partial = []
    for split in read_manifest(root).get("settings", {}).get("splits", {}):
        if f"stage_III/{split}" in recorded:
            continue
        prefix = f"stage_III/{split}/"
        mine = {k: v for k, v in found.items() if k.startswith(prefix)}
        whole = {k: v for k, v in reference.items() if k.startswith(prefix)}
        if mine not in ({}, whole):
            partial.append(split)
    return partial


def landed_in(root: Path, splits: Mapping[str, Any]) -> str:
    """The stage that was running when a run stopped: the first (stage, split) in run order
    that the manifest does not record ("done" when all are recorded)."""
    recorded = recorded_pairs(read_manifest(root))
    for stage in STAGES:
        if any(f"{stage}/{split}" not in recorded for split in splits):
            return stage
    return "done"


def spawn_child(job: Mapping[str, Any], **popen: Any) -> subprocess.Popen[str]:
    """Start ``fault_child.py`` in its own session (so its DataLoader workers can be killed
    with it as one process group)."""
    return subprocess.Popen(
        [PYTHON, str(CHILD), json.dumps(job)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **popen,
    )


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"child did not start: {line!r} {proc.stderr}"


def kill_group(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def group_members(pid: int) -> list[psutil.Process]:
    """A process and its descendants (the DataLoader workers of a child)."""
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def survivors(processes: list[psutil.Process], timeout: float = 10) -> list[psutil.Process]:
    """Those of ``processes`` still running (not zombies) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for proc in processes:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


class ForkedRun:
    """A run forked by a :class:`Zygote`: its pid (leader of its process group) and its
    output, line by line."""

    def __init__(self, pid: int, stream: Any) -> None:
        self.pid = pid
        self.stream = stream
        self.started = time.monotonic()

    def members(self) -> list[psutil.Process]:
        return group_members(self.pid)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def result(self, timeout: float = 300) -> dict[str, Any]:
        """Read the run's output to the end and parse its ``RESULT`` line (the other lines are
        in its "output"). Output that has not ended within ``timeout`` seconds (the run, or a
        process it started, holds it open) fails the test with the stacks of every process of
        the run, instead of waiting for pytest's timeout, which shows only this process."""
        lines = self._read_until(time.monotonic() + timeout)
        self.wait(timeout)
        results = [line for line in lines if line.startswith("RESULT ")]
        assert results, f"run {self.pid} ended without a RESULT:\n{''.join(lines)}"
        return {**json.loads(results[-1][len("RESULT ") :]), "output": "".join(lines)}

    def _read_until(self, deadline: float) -> list[str]:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(self.stream), daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        if not reader.is_alive():
            return lines
        stuck = []
        for member in self.members():
            with contextlib.suppress(psutil.NoSuchProcess):
                stuck.append((member.pid, member.status(), " ".join(member.cmdline())[:120]))
                member.send_signal(signal.SIGUSR1)  # fault_child.py: dump every thread's stack
        time.sleep(2)
        self.kill()  # its processes go, the output ends, the reader returns
        reader.join(30)
        raise AssertionError(
            f"run {self.pid}: output not ended after {time.monotonic() - self.started:.0f} s; "
            f"its processes: {stuck}; output and stacks:\n{''.join(lines)}"
        )

    def wait(self, timeout: float = 120) -> None:
        """Until the process is gone (the zygote reaps it)."""
        deadline = time.monotonic() + timeout
        while psutil.pid_exists(self.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                    break
            assert time.monotonic() < deadline, f"run {self.pid} did not end"
            time.sleep(0.01)
        self.stream.close()


class Zygote:
    """One ``fault_child.py`` that has imported torch and the package, forking a fresh run per
    job: each run is a real process (killed for real), started in milliseconds."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = 0
        self.proc = spawn_child({"zygote": True})
        wait_ready(self.proc)

    def start(self, job: Mapping[str, Any]) -> ForkedRun:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        fifo = self.workdir / f"run{self.count:03d}.fifo"
        self.count += 1
        os.mkfifo(fifo)
        self.proc.stdin.write(json.dumps({**job, "fifo": str(fifo)}) + "\n")
        self.proc.stdin.flush()
        pid = int(self.proc.stdout.readline())
        stream = open(fifo, encoding="utf-8")  # noqa: SIM115 - closed by ForkedRun.wait
        fifo.unlink()
        return ForkedRun(pid, stream)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait(timeout=10)


# --- signals at seeded points ------------------------------------------------------------------

START = "start"


@dataclass(frozen=True)
class Segment:
    """The time between two log events of an uninterrupted run, and the stage running then."""

    stage: str
    after: str  # the event that opens it (START, or "stage II vald" and the like)
    seconds: float


def event_of(line: str) -> str | None:
    """ "stage II vald" for the line a stage logs when it finishes a split, else None. Lines
    are ``T <seconds> <message>`` (fault_child) or ``INFO vposer_data: <message>`` (the CLI)."""
    line = line.rstrip("\n")
    if line.startswith("T "):
        line = line.split(" ", 2)[2]
    elif line.startswith("INFO vposer_data: "):
        line = line[len("INFO vposer_data: ") :]
    words = line.split(":", 1)[0].split()
    if len(words) == 3 and words[0] == "stage" and words[1] in ("I", "II", "III"):
        return " ".join(words)
    return None


def timed_events(run: ForkedRun) -> list[tuple[str, float]]:
    """(event, seconds since the run started) of a run, as its lines arrive, until it ends."""
    events = []
    for line in run.stream:
        event = event_of(line)
        if event:
            events.append((event, time.monotonic() - run.started))
    run.wait()
    return events


def segments(events: list[tuple[str, float]]) -> list[Segment]:
    result, previous, since = [], START, 0.0
    for event, seconds in events:
        result.append(Segment("stage_" + event.split()[1], previous, seconds - since))
        previous, since = event, seconds
    return result


def shortest_segments(start: Callable[[Path], ForkedRun], root: Path, runs: int) -> list[Segment]:
    """The segments of ``runs`` uninterrupted runs, each its shortest time (so that a point
    chosen inside it stays inside when a later run is faster)."""
    timings = []
    for k in range(runs):
        out = root / f"timing{k}"
        timings.append(segments(timed_events(start(out))))
        shutil.rmtree(out)
    return [min(column, key=lambda s: s.seconds) for column in zip(*timings, strict=True)]


def schedule(
    parts: list[Segment], rng: random.Random, per_stage: int
) -> list[tuple[Segment, float]]:
    """``per_stage`` points in each stage: a segment of the stage drawn by its length, and a
    delay after the event that opens it, uniform within the segment."""
    points = []
    for stage in STAGES:
        mine = [s for s in parts if s.stage == stage]
        for _ in range(per_stage):
            segment = rng.choices(mine, weights=[s.seconds for s in mine])[0]
            points.append((segment, rng.uniform(0.02, 0.98) * segment.seconds))
    rng.shuffle(points)
    return points


def wait_for(run: ForkedRun, anchor: str) -> list[str]:
    """Read the run's lines until the ``anchor`` event (at once for START); returns them."""
    lines: list[str] = []
    if anchor == START:
        return lines
    for line in run.stream:
        lines.append(line)
        if event_of(line) == anchor:
            break
    return lines


def press_ctrl_c(run: ForkedRun, anchor: str, delay: float) -> tuple[dict[str, Any], str]:
    """Ctrl-C to the run's process group ``delay`` seconds after its ``anchor`` event: the run's
    result (see :meth:`ForkedRun.result`) and everything it printed."""
    seen = wait_for(run, anchor)
    time.sleep(delay)
    run.kill(signal.SIGINT)
    outcome = run.result()
    return outcome, "".join(seen) + outcome["output"]
