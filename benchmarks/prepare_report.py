"""The figures of ``bench_prepare.py``: what each repeat measured, and their summary (printed
by ``prepare_render.render``)."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench_common import GB, ChildRun

#: The memory target's allowance on top of 1.5x the largest split's final output.
MEMORY_ALLOWANCE = 300_000_000
#: Wall seconds of the original three-stage VPoser scripts on this machine, as reported in
#: issue 3 (not measured here): 22-24 s at 200k raw frames, 95-99 s at 1M, about 3-3.5 min
#: at 2M, 353-431 s at 4M. Other frame counts are interpolated linearly between these.
ORIGINAL_SECONDS = {200_000: 23.0, 1_000_000: 97.0, 2_000_000: 200.0, 4_000_000: 392.0}
#: Issue 3: end to end at most this many times the floor of the final bytes only (the floor
#: it was judged on: read the inputs, write and fsync the stage_III bytes).
TARGET_FLOOR_RATIO = 3.0
#: Issue 12, at 2M raw frames: end to end at most this many times the I/O floor as it defines
#: it, every byte the three stages write (intermediates unflushed, finals fsync-ed).
TARGET_FLOOR_ALL_RATIO = 1.5
TARGET_SPEEDUP = 30.0
TARGET_FRAMES = 2_000_000
#: Issue 10: the compared configuration (clips, T=16 at 30 Hz) at most this many times the
#: default frame pipeline's wall time at 2M raw frames.
TARGET_COMPARE_RATIO = 1.5
#: Issue 20: the same run with the body-model fields (joints, set body, and contacts) at most
#: this many times the run without them, at 2M raw frames.
TARGET_BODY_FIELDS_RATIO = 1.25
#: Issue 12, at 16M raw frames with the default configuration: wall seconds, RSS of the
#: largest process, RSS summed over the process tree.
SCALE_FRAMES = 16_000_000
SCALE_WALL = 100.0
SCALE_MAXRSS = 4 * GB
SCALE_TREE_RSS = 5 * GB


@dataclass
class Repeat:
    """One repeat: the warm-up, the pipeline, the compared configuration and the baseline's
    pipeline if asked, the floor of all bytes written and that of the final bytes only."""

    warm_bytes: int
    warm_seconds: float
    pipeline: ChildRun
    floor: ChildRun
    floor_final: ChildRun
    sizes: dict[str, Any]
    baseline: ChildRun | None = None
    baseline_sizes: dict[str, Any] | None = None
    compare: ChildRun | None = None
    compare_sizes: dict[str, Any] | None = None


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
    pipeline_prepare: float  # the prepare_vposer_datasets call: the stages and the driver
    pipeline_wall: float
    pipeline_walls: list[float]
    pipeline_cpu: float
    other_cpu_pipeline: float
    floor: dict[str, Any]  # issue 12's floor: every byte the stages write (_floor_figures)
    floor_final: dict[str, Any]  # the floor of the final (stage_III) bytes only
    ratio_floor_all_bytes: float  # pipeline wall / floor wall
    ratio_floor_final_bytes: float  # pipeline wall / final-only floor wall
    # pipeline wall / floor wall within each repeat (measured minutes apart at most): on a
    # shared machine whose speed drifts, their median is steadier than the ratio of the bests
    paired_floor_ratios: list[float]
    raw_frames_per_second: float
    samples_per_second: float
    peak_rss_tree: int
    peak_pss_tree: int | None
    peak_processes: int
    maxrss_single: int
    maxrss_singles: list[int]  # per repeat: the largest process of each run
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
    compare: dict[str, Any] | None = None  # the same figures for --compare-set
    compare_overrides: dict[str, Any] = field(default_factory=dict)  # --compare-set's changes
    body_fields: bool = False  # the compared run is --body-fields' (issue 20's target)


def _pipeline_figures(runs: list[tuple[ChildRun, dict[str, Any]]]) -> dict[str, Any]:
    """Best wall time (with its report) and worst memory over the runs of one pipeline
    (per-phase memory from the run with the highest peak)."""
    best, sizes = min(runs, key=lambda item: item[0].wall)
    pss = [run.peak_pss_tree for run, _ in runs if run.peak_pss_tree is not None]
    report = best.report
    return {
        "wall": best.wall,
        "walls": [run.wall for run, _ in runs],
        "cpu": best.cpu,
        "other_cpu": best.other_cpu,
        "imports": float(report["imports"]),
        "prepare": float(report["prepare"]),
        "stage_seconds": {k: float(v) for k, v in report["seconds"].items()},
        "samples": {k: int(v) for k, v in report["samples"].items()},
        "settings": dict(report.get("settings", {})),
        "package": report.get("package"),
        "peak_rss_tree": max(run.peak_rss_tree for run, _ in runs),
        "peak_pss_tree": max(pss) if pss else None,
        "peak_processes": max(run.peak_processes for run, _ in runs),
        "maxrss_single": max(run.maxrss_single for run, _ in runs),
        "maxrss_singles": [run.maxrss_single for run, _ in runs],
        "stage_bytes": {k: int(v) for k, v in sizes["stages"].items()},
        "split_bytes": {k: int(v) for k, v in sizes["splits"].items()},
        "stage_memory": stage_memory(max(runs, key=lambda item: item[0].peak_rss_tree)[0]),
    }


def _floor_figures(runs: list[ChildRun]) -> dict[str, Any]:
    """Best wall time (with its parts, as ``child_floor.py`` reported them) and worst memory
    over the runs of one floor."""
    best = min(runs, key=lambda run: run.wall)
    seconds = ("imports", "read", "write_intermediates", "write_finals")
    counts = [
        "files", "read_bytes", "intermediate_bytes", "intermediate_files", "final_bytes",
        "final_files",
    ]  # fmt: skip
    return {
        "wall": best.wall,
        "walls": [run.wall for run in runs],
        "cpu": best.cpu,
        "other_cpu": best.other_cpu,
        "peak_rss_tree": max(run.peak_rss_tree for run in runs),
        **{key: float(best.report[key]) for key in seconds},
        **{key: int(best.report[key]) for key in counts},
    }


def summarize(
    tree: dict[str, Any], repeats: list[Repeat], compress: bool, body_fields: bool = False
) -> Figures:
    """The figures of the repeats; ``body_fields``: the compared run is --body-fields' (its
    target is issue 20's, decided here)."""
    pipe = _pipeline_figures([(r.pipeline, r.sizes) for r in repeats])
    floor = _floor_figures([r.floor for r in repeats])
    floor_final = _floor_figures([r.floor_final for r in repeats])
    best = min(repeats, key=lambda r: r.pipeline.wall)
    split_bytes = pipe["split_bytes"]
    largest = max(split_bytes, key=split_bytes.__getitem__)
    memory_target = int(1.5 * split_bytes[largest] + MEMORY_ALLOWANCE)
    frames = int(tree["total_frames"])
    original, source = original_seconds(frames)
    wall, floor_wall, final_wall = pipe["wall"], floor["wall"], floor_final["wall"]
    figures = Figures(
        frames=frames,
        body_fields=body_fields,
        motion_files=int(tree["motion_files"]),
        tree_bytes=int(tree["bytes"]),
        release=str(tree["release"]),
        compress=compress,
        repeats=len(repeats),
        samples=pipe["samples"],
        stage_seconds=pipe["stage_seconds"],
        pipeline_imports=pipe["imports"],
        pipeline_prepare=pipe["prepare"],
        pipeline_wall=wall,
        pipeline_walls=pipe["walls"],
        pipeline_cpu=pipe["cpu"],
        other_cpu_pipeline=pipe["other_cpu"],
        floor=floor,
        floor_final=floor_final,
        ratio_floor_all_bytes=wall / floor_wall,
        ratio_floor_final_bytes=wall / final_wall,
        paired_floor_ratios=[r.pipeline.wall / r.floor.wall for r in repeats],
        raw_frames_per_second=frames / wall,
        samples_per_second=sum(pipe["samples"].values()) / wall,
        peak_rss_tree=pipe["peak_rss_tree"],
        peak_pss_tree=pipe["peak_pss_tree"],
        peak_processes=pipe["peak_processes"],
        maxrss_single=pipe["maxrss_single"],
        maxrss_singles=pipe["maxrss_singles"],
        stage_memory=pipe["stage_memory"],
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
        figures.baseline["ratio_to_floor_all_bytes"] = figures.baseline["wall"] / floor_wall
        figures.baseline["ratio_to_floor_final_bytes"] = figures.baseline["wall"] / final_wall
        figures.baseline["pipeline_over_baseline"] = wall / figures.baseline["wall"]
        figures.baseline["paired_pipeline_over_baseline"] = [
            r.pipeline.wall / r.baseline.wall for r in repeats if r.baseline
        ]
    compare_runs = [(r.compare, r.compare_sizes or {}) for r in repeats if r.compare]
    if compare_runs:
        figures.compare = _pipeline_figures(compare_runs)
        figures.compare["ratio_to_floor_all_bytes"] = figures.compare["wall"] / floor_wall
        figures.compare["ratio_to_floor_final_bytes"] = figures.compare["wall"] / final_wall
        figures.compare["compare_over_pipeline"] = figures.compare["wall"] / wall
        figures.compare["paired_compare_over_pipeline"] = [
            r.compare.wall / r.pipeline.wall for r in repeats if r.compare
        ]
        figures.compare["by_order"] = ratios_by_order(
            [r.compare.wall / r.pipeline.wall if r.compare else None for r in repeats]
        )
    figures.targets = {
        "within_1.5x_floor_all_bytes": figures.ratio_floor_all_bytes <= TARGET_FLOOR_ALL_RATIO,
        "within_3x_floor_final_bytes": figures.ratio_floor_final_bytes <= TARGET_FLOOR_RATIO,
        "30x_faster_than_original": figures.speedup_vs_original >= TARGET_SPEEDUP,
        "peak_rss_within_memory_target": figures.peak_rss_tree <= memory_target,
        "scale_wall": wall <= SCALE_WALL,
        "scale_largest_process": figures.maxrss_single <= SCALE_MAXRSS,
        "scale_tree_rss": figures.peak_rss_tree <= SCALE_TREE_RSS,
    }
    if figures.compare is not None:
        figures.targets["compare_within_target"] = figures.compare[
            "compare_over_pipeline"
        ] <= compare_target(figures)
    return figures


def ratios_by_order(ratios: list[float | None]) -> dict[str, Any] | None:
    """Paired ratios (compared / pipeline, repeat by repeat; None where a repeat has no pair)
    split by which run went first (the pipeline in even repeats, see ``run_repeat``): the
    median of each order and their geometric mean, which a slowdown that always hits the
    first (or the second) run of a pair leaves as it is. None unless both orders ran."""
    first = [r for i, r in enumerate(ratios) if r is not None and i % 2 == 0]
    second = [r for i, r in enumerate(ratios) if r is not None and i % 2 == 1]
    if not first or not second:
        return None
    pipeline_first, compare_first = statistics.median(first), statistics.median(second)
    return {
        "pipeline_first": (pipeline_first, len(first)),
        "compare_first": (compare_first, len(second)),
        "balanced": math.sqrt(pipeline_first * compare_first),
    }


def compare_target(figures: Figures) -> float:
    """The compared run's target ratio to the pipeline: issue 20's with --body-fields, else
    issue 10's (clips)."""
    return TARGET_BODY_FIELDS_RATIO if figures.body_fields else TARGET_COMPARE_RATIO
