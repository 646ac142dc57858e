"""The measuring code the benchmarks share.

- :func:`run_child` runs one of the ``child_*.py`` programs in a fresh interpreter and measures
  it from outside: wall time, CPU of the process tree (``wait4``), peak RSS/PSS of the process
  tree (:class:`TreeSampler`), CPU other processes used meanwhile; it returns the child's
  result line (``result_line.emit``) with them as a :class:`ChildRun`.
- :func:`ensure_tree` generates a synthetic AMASS tree once per (frames, release, seed,
  compression) under a work folder and reuses it afterwards; :func:`warm_up` reads it whole.
- :func:`machine_info` and :func:`code_state` say where the figures were taken.
- :func:`wait_until_idle` waits for a quiet machine; :func:`cpu_busy` measures how busy it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import result_line

MB = 1e6
GB = 1e9
#: The folder of the benchmarks (the child programs are run by path from here).
BENCH_DIR = Path(__file__).resolve().parent
#: Rough size of a stored synthetic tree per raw frame (bytes), for the free-space check.
TREE_BYTES_PER_FRAME = {"smplh": 1400, "smplx": 3000}


# ---------------------------------------------------------------------------------------------
# the machine


def wait_until_idle(limit: float, threshold: float = 10.0, window: float = 2.0) -> float:
    """Wait (at most ``limit`` seconds) until the machine's CPU is below ``threshold`` percent
    busy over ``window`` seconds; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if psutil.cpu_percent(interval=window) < threshold:
            break
    return time.perf_counter() - started


def cpu_busy(before: Any, after: Any) -> float:
    """CPU seconds the whole machine spent busy (not idle, not waiting on I/O) between two
    ``psutil.cpu_times()``."""
    idle = ("idle", "iowait")
    total = sum(after) - sum(before)
    return total - sum(getattr(after, k, 0) - getattr(before, k, 0) for k in idle)


def process_cpu(times: Any) -> float:
    """User + system seconds of one ``psutil.Process.cpu_times()``."""
    return float(times.user + times.system)


def machine_info() -> dict[str, Any]:
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }


def source_digest(package: Path) -> str:
    """A short SHA-256 of a package's ``.py`` files (relative names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def code_state() -> dict[str, Any]:
    """Which vposer_data was measured: its location, the git commit, whether its files differ
    from that commit, and a hash of its .py files (to tie figures to code)."""
    import vposer_data

    package = Path(vposer_data.__file__).resolve().parent
    state: dict[str, Any] = {
        "package": str(package),
        "version": getattr(vposer_data, "__version__", "?"),
        "source_sha256": source_digest(package),
    }
    try:
        state["commit"] = git(package, "rev-parse", "--short", "HEAD")
        state["modified"] = bool(git(package, "status", "--porcelain", "--", "."))
    except (OSError, subprocess.CalledProcessError):
        pass
    return state


def git(where: Path, *args: str) -> str:
    """The stripped output of ``git -C where args``."""
    return subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def frames_label(frames: int) -> str:
    if frames % 1_000_000 == 0:
        return f"{frames // 1_000_000}M"
    if frames % 1000 == 0:
        return f"{frames // 1000}k"
    return f"{frames:,}"


def fmt_mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MB:,.1f} MB"


# ---------------------------------------------------------------------------------------------
# measuring a child process


@dataclass
class ChildRun:
    """One fresh process, measured from outside."""

    wall: float  # seconds from spawn to reaped, imports and interpreter start-up included
    cpu: float  # user + sys seconds of the process and the descendants it waited for
    peak_rss_tree: int  # bytes: max over samples of the sum of RSS over the process tree
    peak_pss_tree: int | None  # bytes: same with PSS (shared pages split), sampled less often
    peak_processes: int  # most processes seen at once in the tree
    maxrss_single: int  # bytes: ru_maxrss from wait4, the biggest single process
    report: dict[str, Any]  # the JSON the child printed
    other_cpu: float = 0.0  # CPU seconds used by processes outside the run (and this one)
    # (epoch seconds, RSS sum over the tree, RSS of the main process), one per sample
    timeline: list[tuple[float, int, int]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TreeSampler(threading.Thread):
    """Polls the RSS (and, every ``pss_every`` polls, the PSS) of a process and all of its
    descendants, keeping the peak of their sums."""

    def __init__(self, pid: int, interval: float, pss_every: int = 10) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.pss_every = pss_every
        self.stop_event = threading.Event()
        self.peak_rss = 0
        self.peak_pss: int | None = None
        self.peak_processes = 0
        self.samples = 0
        self.timeline: list[tuple[float, int, int]] = []

    @staticmethod
    def _pss(pid: int) -> int | None:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        tick = 0
        while not self.stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            now = time.time()
            rss = main_rss = 0
            alive: list[int] = []
            for proc in procs:
                try:
                    value = proc.memory_info().rss
                except psutil.Error:
                    continue
                rss += value
                alive.append(proc.pid)
                if proc.pid == self.pid:
                    main_rss = value
            self.timeline.append((now, rss, main_rss))
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_processes = max(self.peak_processes, len(alive))
            if tick % self.pss_every == 0:
                values = [self._pss(pid) for pid in alive]
                known = [v for v in values if v is not None]
                if known:
                    self.peak_pss = max(self.peak_pss or 0, sum(known))
            tick += 1
            self.samples += 1
            self.stop_event.wait(self.interval)


def run_child(
    script: str,
    args: list[str],
    interval: float,
    log_path: Path,
    wait_idle: float = 0.0,
    pythonpath: str | None = None,
) -> ChildRun:
    """Run ``python benchmarks/<script> args`` in a fresh interpreter (``pythonpath`` first on
    its ``PYTHONPATH`` if given); measure wall time, CPU and memory; return them with the
    child's result line. Its output goes to ``log_path``; a failure raises with its tail.

    The disk is settled first (``sync``): the deletion of an earlier run's output (its journal
    commit and, on a filesystem mounted with ``discard``, the freed blocks' discards) and any
    write-back still pending are finished before the clock starts, not charged to this run."""
    os.sync()
    if wait_idle > 0:
        wait_until_idle(wait_idle)
    env: Mapping[str, str] | None = None
    if pythonpath is not None:
        parts = [pythonpath, os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in parts if p)}
    me = psutil.Process()
    with open(log_path, "w+b") as log:
        system_before, mine_before = psutil.cpu_times(), me.cpu_times()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / script), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        sampler = TreeSampler(proc.pid, interval)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        system_after, mine_after = psutil.cpu_times(), me.cpu_times()
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop_event.set()
        sampler.join()
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
    if proc.returncode != 0:  # -9: killed, e.g. by the kernel's OOM killer (see dmesg)
        raise RuntimeError(
            f"benchmark child {script} exited with {proc.returncode} after {wall:.1f} s (peak RSS "
            f"{sampler.peak_rss / MB:,.0f} MB over the process tree, largest process "
            f"{usage.ru_maxrss * 1024 / MB:,.0f} MB); its output:\n{output[-4000:]}"
        )
    report = result_line.parse(output)
    if report is None:
        raise RuntimeError(
            f"benchmark child {script} printed no result; its output:\n{output[-4000:]}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return ChildRun(
        wall=wall,
        cpu=cpu,
        peak_rss_tree=sampler.peak_rss,
        peak_pss_tree=sampler.peak_pss,
        peak_processes=sampler.peak_processes,
        maxrss_single=usage.ru_maxrss * 1024,  # kilobytes on Linux
        report=report,
        timeline=sampler.timeline,
        other_cpu=max(
            0.0,
            cpu_busy(system_before, system_after)
            - cpu
            - (process_cpu(mine_after) - process_cpu(mine_before)),
        ),
    )


# ---------------------------------------------------------------------------------------------
# the synthetic tree and the warm-up


def tree_key(frames: int, release: str, seed: int, compress: bool) -> str:
    return f"amass-{release}-f{frames}-s{seed}" + ("-deflate" if compress else "")


def tree_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) of every regular file below ``root``."""
    total = count = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            total += os.path.getsize(os.path.join(dirpath, name))
            count += 1
    return total, count


def ensure_tree(
    work_dir: Path, frames: int, release: str = "smplh", seed: int = 0, compress: bool = False
) -> tuple[Path, dict[str, Any], bool, float]:
    """The cached tree for these parameters (``<root>/amass``), generated if absent: (root,
    summary, reused, seconds spent generating)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    root = work_dir / tree_key(frames, release, seed, compress)
    summary_path = root / "bench_tree.json"
    if summary_path.is_file():
        return root, json.loads(summary_path.read_text()), True, 0.0
    from vposer_data.synthetic import write_amass_tree

    need = frames * TREE_BYTES_PER_FRAME.get(release, 3000) * 3 // 2  # tree + outputs
    free = shutil.disk_usage(work_dir).free
    if free < need:
        raise SystemExit(
            f"{work_dir}: {free / GB:.1f} GB free, the tree and outputs need about "
            f"{need / GB:.1f} GB; choose another work folder"
        )
    partial = work_dir / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"generating {frames:,} raw frames ({release}, seed {seed}) into {root} ...", flush=True)
    started = time.perf_counter()
    summary = write_amass_tree(
        partial / "amass", total_frames=frames, release=release, seed=seed, compress=compress
    )
    seconds = time.perf_counter() - started
    values = asdict(summary)
    values["root"] = str(root / "amass")
    values["compress"] = compress
    values["bytes"], values["files"] = tree_bytes(partial / "amass")
    values["generation_seconds"] = seconds
    (partial / "bench_tree.json").write_text(json.dumps(values, indent=1) + "\n")
    try:
        os.replace(partial, root)
    except OSError:  # another run finished the same tree first: use that one
        shutil.rmtree(partial, ignore_errors=True)
        if not summary_path.is_file():
            raise
        return root, json.loads(summary_path.read_text()), True, seconds
    return root, values, False, seconds


def warm_up(root: Path, chunk: int = 1 << 23) -> tuple[int, float]:
    """Read every file below ``root`` once, so measurements start from a warm cache."""
    started = time.perf_counter()
    total = 0
    buffer = bytearray(chunk)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as handle:
                while count := handle.readinto(buffer):
                    total += count
    return total, time.perf_counter() - started
