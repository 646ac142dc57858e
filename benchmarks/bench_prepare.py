#!/usr/bin/env python
"""Benchmark ``prepare_vposer_datasets`` end to end against the I/O floor of the same work.

Generates (or reuses) a synthetic AMASS tree of a given raw frame count, then, per repeat:

1. reads the whole tree once (warm-up: the page cache cannot be dropped here, so both
   measurements below are taken warm);
2. runs the whole pipeline in a fresh process (imports included) into a fresh output folder,
   sampling the peak RSS of the process and its DataLoader workers;
3. runs the I/O floor in a fresh process (imports included): ``np.load`` of every input array
   the pipeline needs, then ``torch.save`` + ``fsync`` of tensors of the same shapes and dtypes
   as the pipeline's ``stage_III`` files.

It prints per-stage seconds, wall seconds, the floor, their ratio, raw frames and samples per
second, peak memory, output bytes, and the issue-3 targets with PASS/MISS markers. The targets
are reported, never asserted. See ``benchmarks/README.md``.

    python benchmarks/bench_prepare.py --frames 200000
    python benchmarks/bench_prepare.py --frames 2000000 --json /tmp/bench_2m.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from bench_common import wait_until_idle

MB = 1e6
GB = 1e9
#: The memory target's allowance on top of 1.5x the largest split's final output.
MEMORY_ALLOWANCE = 300_000_000
RESULT_MARK = "BENCH_RESULT "
#: Wall seconds of the original three-stage VPoser scripts on this machine, as reported in
#: issue 3 (not measured here): 22-24 s at 200k raw frames, 95-99 s at 1M, about 3-3.5 min
#: at 2M, 353-431 s at 4M. Other frame counts are interpolated linearly between these.
ORIGINAL_SECONDS = {200_000: 23.0, 1_000_000: 97.0, 2_000_000: 200.0, 4_000_000: 392.0}
TARGET_FLOOR_RATIO = 3.0
TARGET_SPEEDUP = 30.0
TARGET_FRAMES = 2_000_000
#: Rough size of a stored synthetic tree per raw frame (bytes), for the free-space check.
TREE_BYTES_PER_FRAME = {"smplh": 1400, "smplx": 3000}

# The pipeline, as a user runs it: a fresh interpreter that imports the package and calls
# prepare_vposer_datasets with the standard splits. Prints one JSON line at the end.
PIPELINE_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from vposer_data import AMASS_SPLITS
from vposer_data.config import PrepareConfig
from vposer_data.prepare import prepare_vposer_datasets
t1 = time.perf_counter()
amass_dir, out_dir, num_workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
overrides = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
config = PrepareConfig(progress=False, num_workers=num_workers, **overrides)
epoch_start = time.time()
result = prepare_vposer_datasets(AMASS_SPLITS, amass_dir, out_dir, config=config)
epoch_end = time.time()
t2 = time.perf_counter()
print("BENCH_RESULT " + json.dumps({
    "imports": t1 - t0,
    "prepare": t2 - t1,
    "epoch_prepare_start": epoch_start,
    "epoch_prepare_end": epoch_end,
    "seconds": result.seconds,
    "samples": result.samples,
    "skipped": result.skipped,
    "maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "maxrss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}), flush=True)
"""

# The same pipeline call under cProfile (main process only: DataLoader workers are separate
# processes and do not appear; their share of Stage II shows as waiting for batches).
PROFILE_CHILD = r"""
import cProfile, json, sys
profile = cProfile.Profile()
profile.enable()
from vposer_data import AMASS_SPLITS
from vposer_data.config import PrepareConfig
from vposer_data.prepare import prepare_vposer_datasets
amass_dir, out_dir, num_workers, stats_path, overrides = sys.argv[1:6]
config = PrepareConfig(progress=False, num_workers=int(num_workers), **json.loads(overrides))
prepare_vposer_datasets(AMASS_SPLITS, amass_dir, out_dir, config=config)
profile.disable()
profile.dump_stats(stats_path)
"""

# The I/O floor: list the split files as the pipeline does, load every array the pipeline
# needs from every motion file, then write tensors of the pipeline's output shapes with
# torch.save and fsync each file. One thread, no computation.
FLOOR_CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
from vposer_data.splits import resolve_split_files
t1 = time.perf_counter()
amass_dir, spec_path, out_dir = sys.argv[1:4]
with open(spec_path) as handle:
    spec = json.load(handle)
sources = resolve_split_files(spec["splits"], amass_dir, lambda message: None)
read_bytes = files = 0
for split_files in sources.values():
    for source in split_files:
        name = source.path.rsplit("/", 1)[-1]
        if name == "shape.npz" or name.endswith("_stagei.npz"):
            continue  # the pipeline passes these over by name, unopened
        with np.load(os.path.join(amass_dir, source.path), allow_pickle=False) as archive:
            keys = set(archive.files)
            pose_keys = ["poses"] if "poses" in keys else [
                k for k in ("root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye")
                if k in keys
            ]
            wanted = pose_keys + ["trans", "betas", "gender"]
            wanted += [k for k in ("mocap_framerate", "mocap_frame_rate", "dmpls") if k in keys]
            for key in wanted:
                read_bytes += archive[key].nbytes
        files += 1
t2 = time.perf_counter()
written = 0
os.makedirs(out_dir, exist_ok=True)
for index, (name, shape, dtype, size) in enumerate(spec["outputs"]):
    if shape is None:
        tensor = torch.zeros(size, dtype=torch.uint8)
    else:
        tensor = torch.zeros(shape, dtype=getattr(torch, dtype))
    path = os.path.join(out_dir, f"{index:03d}_{name}.pt")
    with open(path, "wb") as handle:
        torch.save(tensor, handle)
        handle.flush()
        os.fsync(handle.fileno())
    written += os.path.getsize(path)
    del tensor
fd = os.open(out_dir, os.O_RDONLY)
os.fsync(fd)
os.close(fd)
t3 = time.perf_counter()
print("BENCH_RESULT " + json.dumps({
    "imports": t1 - t0,
    "read": t2 - t1,
    "write": t3 - t2,
    "files": files,
    "read_bytes": read_bytes,
    "written_bytes": written,
    "maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}), flush=True)
"""


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
    code: str, args: list[str], interval: float, log_path: Path, wait_idle: float = 0.0
) -> ChildRun:
    """Run ``python -c code args`` in a fresh process; measure wall time, CPU, memory."""
    if wait_idle > 0:
        wait_until_idle(wait_idle)
    me = psutil.Process()
    with open(log_path, "w+b") as log:
        system_before, mine_before = psutil.cpu_times(), me.cpu_times()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=log, stderr=subprocess.STDOUT
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
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark child exited with {proc.returncode}; its output:\n{output[-4000:]}"
        )
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        raise RuntimeError(f"benchmark child printed no result; its output:\n{output[-4000:]}")
    return ChildRun(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_tree=sampler.peak_rss,
        peak_pss_tree=sampler.peak_pss,
        peak_processes=sampler.peak_processes,
        maxrss_single=usage.ru_maxrss * 1024,  # kilobytes on Linux
        report=json.loads(lines[-1][len(RESULT_MARK) :]),
        timeline=sampler.timeline,
        other_cpu=max(
            0.0,
            _busy(system_before, system_after)
            - (usage.ru_utime + usage.ru_stime)
            - (mine_after.user + mine_after.system - mine_before.user - mine_before.system),
        ),
    )


def _busy(before: Any, after: Any) -> float:
    """CPU seconds the whole machine spent busy (not idle, not waiting on I/O) in between."""
    idle = ("idle", "iowait")
    total = sum(after) - sum(before)
    return total - sum(getattr(after, k, 0) - getattr(before, k, 0) for k in idle)


def stage_memory(run: ChildRun) -> dict[str, tuple[int, int]]:
    """Peak (RSS sum over the tree, RSS of the main process) within each stage's time window.

    The windows come from the child's epoch times around the prepare call and the stage
    seconds in PrepareResult: the stages run back to back, so counting back from the end of
    the call places them (the gaps between stages are manifest writes, milliseconds)."""
    report = run.report
    if "epoch_prepare_end" not in report or not run.timeline:
        return {}
    end = float(report["epoch_prepare_end"])
    windows: list[tuple[str, float, float]] = []
    for stage in reversed(list(report.get("seconds", {}))):
        start = end - float(report["seconds"][stage])
        windows.append((stage, start, end))
        end = start
    windows.reverse()
    first = windows[0][1] if windows else float(report["epoch_prepare_start"])
    windows.insert(0, ("start-up, imports", run.timeline[0][0] - 1.0, first))
    windows.append(("after the stages", windows[-1][2], run.timeline[-1][0] + 1.0))
    peaks: dict[str, tuple[int, int]] = {}
    for name, start, stop in windows:
        inside = [(tree, main) for t, tree, main in run.timeline if start <= t < stop]
        if inside:
            peaks[name] = (max(v[0] for v in inside), max(v[1] for v in inside))
    return peaks


# ---------------------------------------------------------------------------------------------
# the synthetic tree, the warm-up, the outputs


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
    work_dir: Path, frames: int, release: str, seed: int, compress: bool
) -> tuple[Path, dict[str, Any], bool, float]:
    """The cached tree for these parameters, generated if absent: (root, summary, reused,
    seconds spent generating)."""
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
            f"{need / GB:.1f} GB; choose another --work-dir"
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
    """Read every file below ``root`` once, so both measurements start from a warm cache."""
    started = time.perf_counter()
    total = 0
    buffer = bytearray(chunk)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as handle:
                while count := handle.readinto(buffer):
                    total += count
    return total, time.perf_counter() - started


def output_sizes(out: Path) -> dict[str, Any]:
    """Bytes per stage, per stage_III split, and the stage_III fields (from the manifest if it
    has them, else one byte-sized entry per file) for the floor to write."""
    sizes: dict[str, Any] = {"stages": {}, "splits": {}, "outputs": []}
    for stage in ("stage_I", "stage_II", "stage_III"):
        sizes["stages"][stage] = tree_bytes(out / stage)[0] if (out / stage).exists() else 0
    for split_dir in sorted(p for p in (out / "stage_III").iterdir() if p.is_dir()):
        sizes["splits"][split_dir.name] = sum(f.stat().st_size for f in split_dir.glob("*.pt"))
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        records = manifest["stages"]["stage_III"]
        outputs = [
            [f"{split}-{name}", list(meta["shape"]), str(meta["dtype"]), int(meta["bytes"])]
            for split, record in records.items()
            for name, meta in record["fields"].items()
        ]
    except (OSError, KeyError, TypeError, ValueError):
        outputs = [
            [f"{p.parent.name}-{p.stem}", None, "uint8", p.stat().st_size]
            for p in sorted((out / "stage_III").glob("*/*.pt"))
        ]
    sizes["outputs"] = outputs
    return sizes


# ---------------------------------------------------------------------------------------------
# one repeat


@dataclass
class Repeat:
    warm_bytes: int
    warm_seconds: float
    pipeline: ChildRun
    floor: ChildRun
    sizes: dict[str, Any]


def run_repeat(
    index: int,
    tree: Path,
    work_dir: Path,
    num_workers: int,
    interval: float,
    keep: bool,
    wait_idle: float = 0.0,
    overrides: dict[str, Any] | None = None,
) -> Repeat:
    amass = tree / "amass"
    warm_bytes, warm_seconds = warm_up(amass)
    scratch = Path(tempfile.mkdtemp(prefix=f"run{index}-", dir=work_dir))
    out = scratch / "vposer_data"
    try:
        pipeline = run_child(
            PIPELINE_CHILD,
            [str(amass), str(out), str(num_workers), json.dumps(overrides or {})],
            interval,
            scratch / "pipeline.log",
            wait_idle,
        )
        sizes = output_sizes(out)
        from vposer_data import AMASS_SPLITS

        spec = {"splits": AMASS_SPLITS, "outputs": sizes["outputs"]}
        spec_path = scratch / "floor_spec.json"
        spec_path.write_text(json.dumps(spec))
        floor = run_child(
            FLOOR_CHILD,
            [str(amass), str(spec_path), str(scratch / "floor_out")],
            interval,
            scratch / "floor.log",
            wait_idle,
        )
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return Repeat(warm_bytes, warm_seconds, pipeline, floor, sizes)


def run_profile(
    tree: Path, work_dir: Path, num_workers: int, top: int, overrides: dict[str, Any]
) -> str:
    """One extra, unmeasured pipeline run under cProfile; the top functions as text."""
    scratch = Path(tempfile.mkdtemp(prefix="profile-", dir=work_dir))
    stats_path = scratch / "prepare.pstats"
    try:
        subprocess.run(
            [
                sys.executable,
                "-c",
                PROFILE_CHILD,
                str(tree / "amass"),
                str(scratch / "vposer_data"),
                str(num_workers),
                str(stats_path),
                json.dumps(overrides),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        saved = work_dir / "last_profile.pstats"
        shutil.copyfile(stats_path, saved)
        lines: list[str] = [
            f"cProfile of one extra pipeline run: main process only, DataLoader workers not "
            f"included (their share of stage II shows as waiting); saved to {saved}"
        ]
        for sort in ("tottime", "cumulative"):
            sink = _StringSink()
            stats = pstats.Stats(str(stats_path), stream=sink)  # type: ignore[arg-type]
            stats.strip_dirs().sort_stats(sort).print_stats(top)
            lines.append(f"--- top {top} by {sort} ---")
            lines.extend(_stats_rows(sink.text(), header=sort == "tottime"))
        raw = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
        for stage in ("run_stage1", "run_stage2", "run_stage3"):
            lines.append(f"--- {stage}: own time and top {top} direct callees, cumulative ---")
            lines.extend(_callees(raw, stage, top))
        return "\n".join(lines)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _callees(raw: dict[Any, Any], function: str, top: int) -> list[str]:
    """``function``'s own and cumulative time, then its direct callees by cumulative time."""
    keys = [key for key in raw if key[2] == function]
    rows = []
    for key in keys:
        _cc, calls, own, cumulative, _callers = raw[key]
        rows.append(
            f"  {cumulative:8.3f} s cumulative, {own:8.3f} s own, {calls} call(s): "
            f"{Path(key[0]).name}:{key[1]}({function})"
        )
        edges = [
            (edge[3], edge[1], callee)
            for callee, (*_stat, callers) in raw.items()
            if key in callers
            for edge in [callers[key]]
        ]
        for cumulative_edge, calls_edge, callee in sorted(edges, reverse=True)[:top]:
            where = f"{Path(callee[0]).name}:{callee[1]}" if callee[0] != "~" else ""
            rows.append(f"  {cumulative_edge:8.3f} s  {calls_edge:6d}x  {where}({callee[2]})")
    return rows or [f"  {function}: not found in the profile"]


def _stats_rows(text: str, header: bool) -> list[str]:
    """The rows of a pstats listing (and its column header and total line if asked)."""
    rows = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped[:1].isdigit() or (header and ("ncalls" in line or "function calls" in line)):
            rows.append(line)
    return rows


class _StringSink:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


# ---------------------------------------------------------------------------------------------
# figures and report


def original_seconds(frames: int) -> tuple[float, str]:
    """The reported wall time of the original scripts at ``frames``, and how it was obtained."""
    if frames in ORIGINAL_SECONDS:
        return ORIGINAL_SECONDS[frames], "reported"
    points = sorted(ORIGINAL_SECONDS.items())
    how = "extrapolated from reported figures"
    if frames < points[0][0]:
        (f0, s0), (f1, s1) = points[0], points[1]
    elif frames > points[-1][0]:
        (f0, s0), (f1, s1) = points[-2], points[-1]
    else:
        (f0, s0), (f1, s1) = next(
            (a, b) for a, b in itertools.pairwise(points) if a[0] <= frames <= b[0]
        )
        how = "interpolated from reported figures"
    return max(0.0, s0 + (s1 - s0) * (frames - f0) / (f1 - f0)), how


def frames_label(frames: int) -> str:
    if frames % 1_000_000 == 0:
        return f"{frames // 1_000_000}M"
    if frames % 1000 == 0:
        return f"{frames // 1000}k"
    return f"{frames:,}"


@dataclass
class Figures:
    frames: int
    motion_files: int
    tree_bytes: int
    release: str
    compress: bool
    num_workers: int
    repeats: int
    samples: dict[str, int]
    stage_seconds: dict[str, float]
    pipeline_imports: float
    pipeline_wall: float
    pipeline_walls: list[float]
    pipeline_cpu: float
    floor_wall: float
    floor_walls: list[float]
    floor_imports: float
    floor_read: float
    floor_write: float
    floor_read_bytes: int
    floor_written_bytes: int
    floor_cpu: float
    other_cpu_pipeline: float
    other_cpu_floor: float
    ratio: float
    raw_frames_per_second: float
    samples_per_second: float
    peak_rss_tree: int
    peak_pss_tree: int | None
    peak_processes: int
    maxrss_single: int
    floor_peak_rss_tree: int
    stage_memory: dict[str, tuple[int, int]]
    output_bytes: int
    stage_bytes: dict[str, int]
    split_bytes: dict[str, int]
    largest_split: str
    memory_target: int
    original_seconds: float
    original_source: str
    speedup_vs_original: float
    warm_bytes: int
    warm_seconds: float
    targets: dict[str, bool] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


def summarize(
    tree: dict[str, Any], repeats: list[Repeat], num_workers: int, compress: bool
) -> Figures:
    best = min(repeats, key=lambda r: r.pipeline.wall)
    best_floor = min(repeats, key=lambda r: r.floor.wall)
    report = best.pipeline.report
    floor_report = best_floor.floor.report
    samples = {k: int(v) for k, v in report["samples"].items()}
    total_samples = sum(samples.values())
    split_bytes = best.sizes["splits"]
    largest = max(split_bytes, key=split_bytes.__getitem__)
    memory_target = int(1.5 * split_bytes[largest] + MEMORY_ALLOWANCE)
    frames = int(tree["total_frames"])
    original, source = original_seconds(frames)
    pss = [r.pipeline.peak_pss_tree for r in repeats if r.pipeline.peak_pss_tree is not None]
    figures = Figures(
        frames=frames,
        motion_files=int(tree["motion_files"]),
        tree_bytes=int(tree["bytes"]),
        release=str(tree["release"]),
        compress=compress,
        num_workers=num_workers,
        repeats=len(repeats),
        samples=samples,
        stage_seconds={k: float(v) for k, v in report["seconds"].items()},
        pipeline_imports=float(report["imports"]),
        pipeline_wall=best.pipeline.wall,
        pipeline_walls=[r.pipeline.wall for r in repeats],
        pipeline_cpu=best.pipeline.cpu,
        floor_wall=best_floor.floor.wall,
        floor_walls=[r.floor.wall for r in repeats],
        floor_imports=float(floor_report["imports"]),
        floor_read=float(floor_report["read"]),
        floor_write=float(floor_report["write"]),
        floor_read_bytes=int(floor_report["read_bytes"]),
        floor_written_bytes=int(floor_report["written_bytes"]),
        floor_cpu=best_floor.floor.cpu,
        other_cpu_pipeline=best.pipeline.other_cpu,
        other_cpu_floor=best_floor.floor.other_cpu,
        ratio=best.pipeline.wall / best_floor.floor.wall,
        raw_frames_per_second=frames / best.pipeline.wall,
        samples_per_second=total_samples / best.pipeline.wall,
        peak_rss_tree=max(r.pipeline.peak_rss_tree for r in repeats),
        peak_pss_tree=max(pss) if pss else None,
        peak_processes=max(r.pipeline.peak_processes for r in repeats),
        maxrss_single=max(r.pipeline.maxrss_single for r in repeats),
        floor_peak_rss_tree=max(r.floor.peak_rss_tree for r in repeats),
        stage_memory=stage_memory(max(repeats, key=lambda r: r.pipeline.peak_rss_tree).pipeline),
        output_bytes=int(best.sizes["stages"]["stage_III"]),
        stage_bytes={k: int(v) for k, v in best.sizes["stages"].items()},
        split_bytes={k: int(v) for k, v in split_bytes.items()},
        largest_split=largest,
        memory_target=memory_target,
        original_seconds=original,
        original_source=source,
        speedup_vs_original=original / best.pipeline.wall,
        warm_bytes=best.warm_bytes,
        warm_seconds=best.warm_seconds,
    )
    figures.targets = {
        "within_3x_floor": figures.ratio <= TARGET_FLOOR_RATIO,
        "30x_faster_than_original": figures.speedup_vs_original >= TARGET_SPEEDUP,
        "peak_rss_within_memory_target": figures.peak_rss_tree <= memory_target,
    }
    return figures


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


def code_state() -> dict[str, Any]:
    """Which vposer_data was measured: its location, the git commit, whether its files differ
    from that commit, and a hash of its .py files (to tie figures to code)."""
    import hashlib

    import vposer_data

    package = Path(vposer_data.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    state: dict[str, Any] = {
        "package": str(package),
        "version": getattr(vposer_data, "__version__", "?"),
        "source_sha256": digest.hexdigest()[:12],
    }
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(package), *args], capture_output=True, text=True, check=True
            ).stdout.strip()

        state["commit"] = git("rev-parse", "--short", "HEAD")
        state["modified"] = bool(git("status", "--porcelain", "--", "."))
    except (OSError, subprocess.CalledProcessError):
        pass
    return state


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MB:,.1f} MB"


def _mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(f: Figures, tree_path: Path, reused: bool, interval: float) -> str:
    m, c = f.machine, f.code
    label = frames_label(f.frames)
    total_samples = sum(f.samples.values())
    lines = [
        f"vposer_data prepare benchmark, {label} raw frames",
        f"  tree      {tree_path / 'amass'} ({'reused' if reused else 'generated'}): "
        f"{f.motion_files} motion files, {f.frames:,} raw frames, {_mb(f.tree_bytes)}, "
        f"release {f.release}, {'deflated' if f.compress else 'stored'} .npz",
        f"  code      vposer_data {c.get('version')} at {c.get('package')}, git "
        f"{c.get('commit', '?')}{' + uncommitted changes' if c.get('modified') else ''}, "
        f".py sources sha256 {c.get('source_sha256')}",
        f"  machine   {m.get('cpus')} CPUs, {m.get('memory_bytes', 0) / GB:.1f} GB RAM, "
        f"python {m.get('python')}, torch {m.get('torch')}, numpy {m.get('numpy')}",
        f"  pipeline  prepare_vposer_datasets(AMASS_SPLITS, ..., config=PrepareConfig("
        f"progress=False, num_workers={f.num_workers}"
        + "".join(f", {k}={v!r}" for k, v in f.overrides.items())
        + ")) in a fresh process, fresh output folder",
        "  floor     fresh process, one thread: list the split files, np.load every array the "
        "pipeline reads (allow_pickle=False), torch.save + fsync tensors of the stage_III "
        "shapes",
        f"  cache     page cache NOT dropped (not possible here): a warm-up read of the whole tree "
        f"({_mb(f.warm_bytes)} in {f.warm_seconds:.2f} s) precedes each repeat, so pipeline "
        f"and floor are both measured WARM",
        f"  order     per repeat: warm-up, pipeline, floor (the floor writes the sizes the "
        f"pipeline produced); {f.repeats} repeat(s), best wall time of each reported",
        f"  memory    sampled every {interval * 1000:.0f} ms over the process tree (RSS sum; PSS "
        f"every {interval * 10 * 1000:.0f} ms); ru_maxrss from wait4 (RUSAGE_CHILDREN of the run)",
        "",
        "samples per split: "
        + ", ".join(f"{k} {v:,}" for k, v in f.samples.items())
        + f" (total {total_samples:,})",
        "",
        f"  {'':44s}{'pipeline':>14s}{'I/O floor':>14s}",
    ]

    def row(name: str, pipe: str = "", floor: str = "") -> None:
        lines.append(f"  {name:44s}{pipe:>14s}{floor:>14s}")

    row("imports (inside the child)", f"{f.pipeline_imports:.2f} s", f"{f.floor_imports:.2f} s")
    for stage, seconds in f.stage_seconds.items():
        row(f"{stage} (PrepareResult.seconds)", f"{seconds:.2f} s")
    row("read inputs (list + np.load)", "", f"{f.floor_read:.2f} s")
    row("write outputs (torch.save + fsync)", "", f"{f.floor_write:.2f} s")
    other = f.pipeline_wall - f.pipeline_imports - sum(f.stage_seconds.values())
    other_floor = f.floor_wall - f.floor_imports - f.floor_read - f.floor_write
    row("other (start-up, lock, manifest, exit)", f"{other:.2f} s", f"{other_floor:.2f} s")
    row("WALL, whole process", f"{f.pipeline_wall:.2f} s", f"{f.floor_wall:.2f} s")
    if f.repeats > 1:
        row(
            "  all repeats",
            "/".join(f"{w:.1f}" for w in f.pipeline_walls),
            "/".join(f"{w:.1f}" for w in f.floor_walls),
        )
    row("CPU user+sys (process and workers)", f"{f.pipeline_cpu:.2f} s", f"{f.floor_cpu:.2f} s")
    row(
        "CPU used meanwhile by other processes",
        f"{f.other_cpu_pipeline:.2f} s",
        f"{f.other_cpu_floor:.2f} s",
    )
    row("peak RSS, sum over process tree", _mb(f.peak_rss_tree), _mb(f.floor_peak_rss_tree))
    row("peak PSS, sum over process tree", _mb(f.peak_pss_tree))
    row("max RSS of one process (ru_maxrss)", _mb(f.maxrss_single))
    row("processes in the tree at most", str(f.peak_processes))
    row("bytes read (input arrays)", "", _mb(f.floor_read_bytes))
    row("bytes written, stage_III (final output)", _mb(f.output_bytes), _mb(f.floor_written_bytes))
    row(
        "bytes written, stage_I + stage_II",
        _mb(f.stage_bytes["stage_I"] + f.stage_bytes["stage_II"]),
    )
    cpus = m.get("cpus") or 1
    if f.other_cpu_pipeline > 0.1 * cpus * f.pipeline_wall or (
        f.other_cpu_floor > 0.1 * cpus * f.floor_wall
    ):
        lines += [
            "",
            "  WARNING: other processes used more than 10% of the machine's CPU during a measured "
            "run; the times above are inflated by contention. Rerun on a quiet machine or with "
            "--repeat N --wait-idle S.",
        ]
    if f.stage_memory:
        lines += ["", "  pipeline peak RSS per phase        tree sum   main process"]
        for name, (tree, main) in f.stage_memory.items():
            lines.append(f"    {name:28s}{_mb(tree):>12s}{_mb(main):>15s}")
    lines += [
        "",
        f"  ratio pipeline / floor (wall)               {f.ratio:.2f}x",
        f"  raw frames per second (raw frames / wall)   {f.raw_frames_per_second:,.0f}",
        f"  samples per second (all splits / wall)      {f.samples_per_second:,.0f}",
        f"  output bytes (stage_III, all splits)        {_mb(f.output_bytes)}  ("
        + ", ".join(f"{k} {_mb(v)}" for k, v in f.split_bytes.items())
        + ")",
        f"  largest split's final output ({f.largest_split:5s})       "
        f"{_mb(f.split_bytes[f.largest_split])}",
        f"  memory target 1.5 x largest + 300 MB       {_mb(f.memory_target)}",
        "",
        f"  original scripts (reported): ~{f.original_seconds:.0f} s at {label}"
        + ("" if f.original_source == "reported" else f" ({f.original_source})")
        + " -- issue 3's figure for this machine, NOT measured here",
        "",
        "targets (issue 3; reported, never asserted"
        + ("" if f.frames == TARGET_FRAMES else f"; defined at {frames_label(TARGET_FRAMES)}")
        + ")",
        f"  [{_mark(f.targets['within_3x_floor'])}] end to end within 3x the I/O floor: "
        f"{f.pipeline_wall:.2f} s vs 3 x {f.floor_wall:.2f} s = "
        f"{TARGET_FLOOR_RATIO * f.floor_wall:.2f} s (ratio {f.ratio:.2f})",
        f"  [{_mark(f.targets['30x_faster_than_original'])}] >= 30x faster than the original "
        f"scripts: {f.speedup_vs_original:.1f}x vs their reported ~{f.original_seconds:.0f} s "
        f"(30x needs <= {f.original_seconds / TARGET_SPEEDUP:.2f} s)",
        f"  [{_mark(f.targets['peak_rss_within_memory_target'])}] peak RSS <= 1.5 x largest "
        f"split + 300 MB: {_mb(f.peak_rss_tree)} (tree RSS sum) vs {_mb(f.memory_target)}"
        f" (PSS sum {_mb(f.peak_pss_tree)}, largest process {_mb(f.maxrss_single)})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=200_000, help="raw frames in the tree")
    parser.add_argument("--release", choices=("smplh", "smplx"), default="smplh")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic tree")
    parser.add_argument("--compress", action="store_true", help="deflate the tree's .npz files")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("/tmp/vposer_bench"),
        help="cache of generated trees and scratch space for outputs (default /tmp/vposer_bench)",
    )
    parser.add_argument("--num-workers", type=int, default=2, help="PrepareConfig.num_workers")
    parser.add_argument("--repeat", type=int, default=1, help="repeats; the best is reported")
    parser.add_argument(
        "--interval", type=float, default=0.02, help="memory sampling interval, seconds"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a PrepareConfig setting for the pipeline, VALUE as JSON where it parses "
        "(e.g. --set hdf5_compression=lzf --set batch_size=16384); repeatable. The floor does "
        "not change: it writes the same final tensors",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        metavar="SECONDS",
        default=0.0,
        help="before each measured run, wait up to SECONDS for the machine's CPU to be under "
        "10%% busy (for shared machines; default: do not wait)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="after the measured runs, profile one extra pipeline run with cProfile and print "
        "the top N functions (not part of the measured figures)",
    )
    parser.add_argument(
        "--keep-output", action="store_true", help="keep each run's output under --work-dir"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            overrides[key] = text

    args.work_dir.mkdir(parents=True, exist_ok=True)
    tree_root, tree, reused, generation = ensure_tree(
        args.work_dir, args.frames, args.release, args.seed, args.compress
    )
    if not reused:
        print(f"generated in {generation:.1f} s", flush=True)
    available = psutil.virtual_memory().available
    if tree["bytes"] * 2 > available:
        print(
            f"warning: the tree ({tree['bytes'] / GB:.1f} GB) is large for the available memory "
            f"({available / GB:.1f} GB); it may not stay cached, so 'warm' is not guaranteed",
            flush=True,
        )
    repeats = []
    for index in range(args.repeat):
        print(f"repeat {index + 1}/{args.repeat}: warm-up, pipeline, floor ...", flush=True)
        repeats.append(
            run_repeat(
                index,
                tree_root,
                args.work_dir,
                args.num_workers,
                args.interval,
                args.keep_output,
                args.wait_idle,
                overrides,
            )
        )
    figures = summarize(tree, repeats, args.num_workers, args.compress)
    figures.machine = machine_info()
    figures.code = code_state()
    figures.overrides = overrides
    print()
    print(render(figures, tree_root, reused, args.interval))
    if args.json:
        values = asdict(figures)
        values["runs"] = [
            {"pipeline": asdict(r.pipeline), "floor": asdict(r.floor), "sizes": r.sizes}
            for r in repeats
        ]
        values["tree"] = tree
        values["maxrss_note"] = (
            "maxrss_single: ru_maxrss of the run's process tree from wait4, i.e. the largest "
            "single process (resource.getrusage(RUSAGE_CHILDREN) scoped to one run)"
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(values, indent=1) + "\n")
        print(f"\nfigures written to {args.json}")
    if args.profile:
        print()
        print(run_profile(tree_root, args.work_dir, args.num_workers, args.profile, overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
