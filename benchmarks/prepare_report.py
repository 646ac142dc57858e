"""The figures of ``bench_prepare.py``: what each repeat measured, summarized and printed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_common import GB, ChildRun, fmt_mb, frames_label

#: The memory target's allowance on top of 1.5x the largest split's final output.
MEMORY_ALLOWANCE = 300_000_000
#: Wall seconds of the original three-stage VPoser scripts on this machine, as reported in
#: issue 3 (not measured here): 22-24 s at 200k raw frames, 95-99 s at 1M, about 3-3.5 min
#: at 2M, 353-431 s at 4M. Other frame counts are interpolated linearly between these.
ORIGINAL_SECONDS = {200_000: 23.0, 1_000_000: 97.0, 2_000_000: 200.0, 4_000_000: 392.0}
TARGET_FLOOR_RATIO = 3.0
TARGET_SPEEDUP = 30.0
TARGET_FRAMES = 2_000_000


@dataclass
class Repeat:
    """One repeat: the warm-up, the pipeline, the baseline's pipeline if asked, the floor."""

    warm_bytes: int
    warm_seconds: float
    pipeline: ChildRun
    floor: ChildRun
    sizes: dict[str, Any]
    baseline: ChildRun | None = None
    baseline_sizes: dict[str, Any] | None = None


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


@dataclass
class Figures:
    frames: int
    motion_files: int
    tree_bytes: int
    release: str
    compress: bool
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
    floor_files: int
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
    settings: dict[str, Any]  # the PrepareConfig settings in effect (as the child reported)
    targets: dict[str, bool] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # settings passed, not defaults
    baseline: dict[str, Any] | None = None  # the same figures for --baseline-ref


def _pipeline_figures(runs: list[tuple[ChildRun, dict[str, Any]]]) -> dict[str, Any]:
    """Best wall time (with its report) and worst memory over the runs of one pipeline."""
    best, sizes = min(runs, key=lambda item: item[0].wall)
    pss = [run.peak_pss_tree for run, _ in runs if run.peak_pss_tree is not None]
    report = best.report
    return {
        "wall": best.wall,
        "walls": [run.wall for run, _ in runs],
        "cpu": best.cpu,
        "other_cpu": best.other_cpu,
        "imports": float(report["imports"]),
        "stage_seconds": {k: float(v) for k, v in report["seconds"].items()},
        "samples": {k: int(v) for k, v in report["samples"].items()},
        "settings": dict(report.get("settings", {})),
        "package": report.get("package"),
        "peak_rss_tree": max(run.peak_rss_tree for run, _ in runs),
        "peak_pss_tree": max(pss) if pss else None,
        "peak_processes": max(run.peak_processes for run, _ in runs),
        "maxrss_single": max(run.maxrss_single for run, _ in runs),
        "stage_bytes": {k: int(v) for k, v in sizes["stages"].items()},
        "split_bytes": {k: int(v) for k, v in sizes["splits"].items()},
    }


def summarize(tree: dict[str, Any], repeats: list[Repeat], compress: bool) -> Figures:
    pipe = _pipeline_figures([(r.pipeline, r.sizes) for r in repeats])
    best_floor = min(repeats, key=lambda r: r.floor.wall)
    best = min(repeats, key=lambda r: r.pipeline.wall)
    floor_report = best_floor.floor.report
    split_bytes = pipe["split_bytes"]
    largest = max(split_bytes, key=split_bytes.__getitem__)
    memory_target = int(1.5 * split_bytes[largest] + MEMORY_ALLOWANCE)
    frames = int(tree["total_frames"])
    original, source = original_seconds(frames)
    wall, floor_wall = pipe["wall"], best_floor.floor.wall
    figures = Figures(
        frames=frames,
        motion_files=int(tree["motion_files"]),
        tree_bytes=int(tree["bytes"]),
        release=str(tree["release"]),
        compress=compress,
        repeats=len(repeats),
        samples=pipe["samples"],
        stage_seconds=pipe["stage_seconds"],
        pipeline_imports=pipe["imports"],
        pipeline_wall=wall,
        pipeline_walls=pipe["walls"],
        pipeline_cpu=pipe["cpu"],
        floor_wall=floor_wall,
        floor_walls=[r.floor.wall for r in repeats],
        floor_imports=float(floor_report["imports"]),
        floor_read=float(floor_report["read"]),
        floor_write=float(floor_report["write"]),
        floor_files=int(floor_report["files"]),
        floor_read_bytes=int(floor_report["read_bytes"]),
        floor_written_bytes=int(floor_report["written_bytes"]),
        floor_cpu=best_floor.floor.cpu,
        other_cpu_pipeline=pipe["other_cpu"],
        other_cpu_floor=best_floor.floor.other_cpu,
        ratio=wall / floor_wall,
        raw_frames_per_second=frames / wall,
        samples_per_second=sum(pipe["samples"].values()) / wall,
        peak_rss_tree=pipe["peak_rss_tree"],
        peak_pss_tree=pipe["peak_pss_tree"],
        peak_processes=pipe["peak_processes"],
        maxrss_single=pipe["maxrss_single"],
        floor_peak_rss_tree=max(r.floor.peak_rss_tree for r in repeats),
        stage_memory=stage_memory(max(repeats, key=lambda r: r.pipeline.peak_rss_tree).pipeline),
        output_bytes=pipe["stage_bytes"]["stage_III"],
        stage_bytes=pipe["stage_bytes"],
        split_bytes=split_bytes,
        largest_split=largest,
        memory_target=memory_target,
        original_seconds=original,
        original_source=source,
        speedup_vs_original=original / wall,
        warm_bytes=best.warm_bytes,
        warm_seconds=best.warm_seconds,
        settings=pipe["settings"],
    )
    baseline_runs = [(r.baseline, r.baseline_sizes or {}) for r in repeats if r.baseline]
    if baseline_runs:
        figures.baseline = _pipeline_figures(baseline_runs)
        figures.baseline["ratio_to_floor"] = figures.baseline["wall"] / floor_wall
        figures.baseline["pipeline_over_baseline"] = wall / figures.baseline["wall"]
    figures.targets = {
        "within_3x_floor": figures.ratio <= TARGET_FLOOR_RATIO,
        "30x_faster_than_original": figures.speedup_vs_original >= TARGET_SPEEDUP,
        "peak_rss_within_memory_target": figures.peak_rss_tree <= memory_target,
    }
    return figures


def _mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _settings_text(settings: dict[str, Any], overrides: dict[str, Any]) -> str:
    """The settings in effect, each marked when it was set on the command line."""
    parts = []
    for key, value in settings.items():
        if key == "augmentations":
            continue
        parts.append(f"{key}={value!r}" + (" (set)" if key in overrides else ""))
    return ", ".join(parts) + "; others PrepareConfig defaults"


def render(f: Figures, tree_path: Path, reused: bool, interval: float) -> str:
    m, c, b = f.machine, f.code, f.baseline
    label = frames_label(f.frames)
    total_samples = sum(f.samples.values())
    compression = f.settings.get("hdf5_compression", "?")
    how = "as set" if "hdf5_compression" in f.overrides else "PrepareConfig default"
    if b is not None:
        how += f"; baseline {b['settings'].get('hdf5_compression', '?')!r}"
    lines = [
        f"vposer_data prepare benchmark, {label} raw frames, hdf5_compression={compression!r} "
        f"({how})",
        f"  tree      {tree_path / 'amass'} ({'reused' if reused else 'generated'}): "
        f"{f.motion_files} motion files, {f.frames:,} raw frames, {fmt_mb(f.tree_bytes)}, "
        f"release {f.release}, {'deflated' if f.compress else 'stored'} .npz",
        f"  code      vposer_data {c.get('version')} at {c.get('package')}, git "
        f"{c.get('commit', '?')}{' + uncommitted changes' if c.get('modified') else ''}, "
        f".py sources sha256 {c.get('source_sha256')}",
        f"  machine   {m.get('cpus')} CPUs, {m.get('memory_bytes', 0) / GB:.1f} GB RAM, "
        f"python {m.get('python')}, torch {m.get('torch')}, numpy {m.get('numpy')}",
        "  pipeline  prepare_vposer_datasets(AMASS_SPLITS, ..., config=PrepareConfig("
        "progress=False"
        + "".join(f", {k}={v!r}" for k, v in f.overrides.items())
        + ")) in a fresh process (benchmarks/child_pipeline.py), fresh output folder",
        f"  settings  {_settings_text(f.settings, f.overrides)}",
    ]
    if b is not None:
        bc = b.get("code", {})
        lines += [
            f"  baseline  git {bc.get('ref')} = {bc.get('commit')}: its vposer_data exported "
            f"(git archive) to a temp folder, .py sources sha256 {bc.get('source_sha256')}; "
            f"the same child and options, the exported package first on PYTHONPATH",
            f"            its settings: {_settings_text(b['settings'], f.overrides)}",
        ]
    lines += [
        f"  floor     fresh process, one thread: import torch, h5py; read every byte of the "
        f"{f.floor_files} input files once; write the stage_III bytes into as many files, "
        "fsync each file and folder (benchmarks/child_floor.py)",
        f"  cache     page cache NOT dropped (not possible here): a warm-up read of the whole tree "
        f"({fmt_mb(f.warm_bytes)} in {f.warm_seconds:.2f} s) precedes each repeat, so every "
        f"run is measured WARM",
        "  order     per repeat: warm-up, pipeline"
        + (" and baseline (alternating which goes first)" if b else "")
        + ", floor (the floor writes the sizes the pipeline produced); "
        f"{f.repeats} repeat(s), best wall time of each reported",
        f"  memory    sampled every {interval * 1000:.0f} ms over the process tree (RSS sum; PSS "
        f"every {interval * 10 * 1000:.0f} ms); ru_maxrss from wait4 (RUSAGE_CHILDREN of the run)",
        "",
        "samples per split: "
        + ", ".join(f"{k} {v:,}" for k, v in f.samples.items())
        + f" (total {total_samples:,})",
    ]
    if b is not None and b["samples"] != f.samples:
        lines.append("baseline's: " + ", ".join(f"{k} {v:,}" for k, v in b["samples"].items()))
    lines += ["", *_table(f)]
    cpus = m.get("cpus") or 1
    runs = [(f.other_cpu_pipeline, f.pipeline_wall), (f.other_cpu_floor, f.floor_wall)]
    if b is not None:
        runs.append((b["other_cpu"], b["wall"]))
    if any(other_cpu > 0.1 * cpus * wall for other_cpu, wall in runs):
        lines += [
            "",
            "  WARNING: other processes used more than 10% of the machine's CPU during a measured "
            "run; the times above are inflated by contention. Rerun on a quiet machine or with "
            "--repeat N --wait-idle S.",
        ]
    if f.stage_memory:
        lines += ["", "  pipeline peak RSS per phase        tree sum   main process"]
        for name, (tree, main) in f.stage_memory.items():
            lines.append(f"    {name:28s}{fmt_mb(tree):>12s}{fmt_mb(main):>15s}")
    lines += ["", f"  ratio pipeline / floor (wall)               {f.ratio:.2f}x"]
    if b is not None:
        lines += [
            f"  ratio baseline / floor (wall)               {b['ratio_to_floor']:.2f}x",
            f"  pipeline / baseline (wall)                  {b['pipeline_over_baseline']:.2f}x"
            f"  ({f.pipeline_wall:.2f} s vs {b['wall']:.2f} s at git {b['code'].get('ref')})",
        ]
    lines += [
        f"  raw frames per second (raw frames / wall)   {f.raw_frames_per_second:,.0f}",
        f"  samples per second (all splits / wall)      {f.samples_per_second:,.0f}",
        f"  output bytes (stage_III, all splits)        {fmt_mb(f.output_bytes)}  ("
        + ", ".join(f"{k} {fmt_mb(v)}" for k, v in f.split_bytes.items())
        + ")",
        f"  largest split's final output ({f.largest_split:5s})       "
        f"{fmt_mb(f.split_bytes[f.largest_split])}",
        f"  memory target 1.5 x largest + 300 MB       {fmt_mb(f.memory_target)}",
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
        f"split + 300 MB: {fmt_mb(f.peak_rss_tree)} (tree RSS sum) vs {fmt_mb(f.memory_target)}"
        f" (PSS sum {fmt_mb(f.peak_pss_tree)}, largest process {fmt_mb(f.maxrss_single)})",
    ]
    return "\n".join(lines)


def _s(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f} s"


def _table(f: Figures) -> list[str]:
    """The main table: a column for the pipeline, the baseline (if measured), the floor."""
    b: dict[str, Any] = f.baseline or {}
    other = f.pipeline_wall - f.pipeline_imports - sum(f.stage_seconds.values())
    other_floor = f.floor_wall - f.floor_imports - f.floor_read - f.floor_write
    other_base = b["wall"] - b["imports"] - sum(b["stage_seconds"].values()) if b else None
    intermediate = ("stage_I", "stage_II")
    walls = [
        "/".join(f"{w:.1f}" for w in ws)
        for ws in (f.pipeline_walls, b.get("walls", []), f.floor_walls)
    ]
    rows: list[tuple[str, str, str, str]] = [
        ("", "pipeline", "baseline", "I/O floor"),
        ("imports (inside the child)", _s(f.pipeline_imports), _s(b.get("imports")),
         _s(f.floor_imports)),
        *[(f"{stage} (PrepareResult.seconds)", _s(seconds),
           _s(b.get("stage_seconds", {}).get(stage)), "")
          for stage, seconds in f.stage_seconds.items()],
        ("read inputs (every byte, once)", "", "", _s(f.floor_read)),
        ("write outputs (same bytes, fsync)", "", "", _s(f.floor_write)),
        ("other (start-up, lock, manifest, exit)", _s(other), _s(other_base), _s(other_floor)),
        ("WALL, whole process", _s(f.pipeline_wall), _s(b.get("wall")), _s(f.floor_wall)),
        *([("  all repeats", walls[0], walls[1], walls[2])] if f.repeats > 1 else []),
        ("CPU user+sys (process and workers)", _s(f.pipeline_cpu), _s(b.get("cpu")),
         _s(f.floor_cpu)),
        ("CPU used meanwhile by other processes", _s(f.other_cpu_pipeline),
         _s(b.get("other_cpu")), _s(f.other_cpu_floor)),
        ("peak RSS, sum over process tree", fmt_mb(f.peak_rss_tree),
         fmt_mb(b.get("peak_rss_tree")), fmt_mb(f.floor_peak_rss_tree)),
        ("peak PSS, sum over process tree", fmt_mb(f.peak_pss_tree),
         fmt_mb(b.get("peak_pss_tree")), ""),
        ("max RSS of one process (ru_maxrss)", fmt_mb(f.maxrss_single),
         fmt_mb(b.get("maxrss_single")), ""),
        ("processes in the tree at most", str(f.peak_processes),
         str(b.get("peak_processes", "")), ""),
        ("bytes read (input files, whole)", "", "", fmt_mb(f.floor_read_bytes)),
        ("bytes written, stage_III (final output)", fmt_mb(f.output_bytes),
         fmt_mb(b.get("stage_bytes", {}).get("stage_III")), fmt_mb(f.floor_written_bytes)),
        ("bytes written, stage_I + stage_II", fmt_mb(sum(f.stage_bytes[k] for k in intermediate)),
         fmt_mb(sum(b["stage_bytes"][k] for k in intermediate) if b else None), ""),
    ]  # fmt: skip
    return [
        f"  {name:44s}{pipe:>14s}" + (f"{base:>14s}" if f.baseline else "") + f"{floor:>14s}"
        for name, pipe, base, floor in rows
    ]
