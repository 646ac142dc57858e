"""The printed report of ``bench_prepare.py`` (:func:`render`), from ``prepare_report.Figures``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench_common import GB, MB, fmt_mb, frames_label
from prepare_report import (
    SCALE_FRAMES,
    SCALE_MAXRSS,
    SCALE_TREE_RSS,
    SCALE_WALL,
    TARGET_FLOOR_ALL_RATIO,
    TARGET_FLOOR_RATIO,
    TARGET_FRAMES,
    TARGET_SPEEDUP,
    Figures,
    compare_target,
)


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


def _columns(f: Figures) -> list[tuple[str, dict[str, Any]]]:
    """The measured pipelines, each as (title, figures): the pipeline, then the compared
    configuration and the baseline when measured."""
    pipe = {
        "imports": f.pipeline_imports,
        "prepare": f.pipeline_prepare,
        "stage_seconds": f.stage_seconds,
        "wall": f.pipeline_wall,
        "walls": f.pipeline_walls,
        "cpu": f.pipeline_cpu,
        "other_cpu": f.other_cpu_pipeline,
        "peak_rss_tree": f.peak_rss_tree,
        "peak_pss_tree": f.peak_pss_tree,
        "maxrss_single": f.maxrss_single,
        "maxrss_singles": f.maxrss_singles,
        "peak_processes": f.peak_processes,
        "stage_bytes": f.stage_bytes,
        "stage_memory": f.stage_memory,
    }
    columns: list[tuple[str, dict[str, Any]]] = [("pipeline", pipe)]
    if f.compare is not None:
        columns.append(("compare", f.compare))
    if f.baseline is not None:
        columns.append(("baseline", f.baseline))
    return columns


def _paired(ratios: list[float]) -> str:
    """Per-repeat ratios and their median: both runs of a pair ran minutes apart at most, so
    a machine that speeds up or slows down between repeats moves both."""
    listed = "/".join(f"{r:.2f}" for r in ratios)
    return f"{statistics.median(ratios):.2f}x median  ({listed})"


def render(f: Figures, tree_path: Path, reused: bool, interval: float) -> str:
    m, c, b, k = f.machine, f.code, f.baseline, f.compare
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
        *(
            [
                f"  WARNING   the package's .py sources changed during the run (from sha256 "
                f"{c['changed_during_run_from'].get('source_sha256')} at git "
                f"{c['changed_during_run_from'].get('commit')}): runs may have measured either"
            ]
            if "changed_during_run_from" in c
            else []
        ),
        f"  machine   {m.get('cpus')} CPUs, {m.get('memory_bytes', 0) / GB:.1f} GB RAM, "
        f"python {m.get('python')}, torch {m.get('torch')}, numpy {m.get('numpy')}",
        "  pipeline  prepare_vposer_datasets(AMASS_SPLITS, ..., config=PrepareConfig("
        "progress=False"
        + "".join(f", {key}={v!r}" for key, v in f.overrides.items())
        + ")) in a fresh process (benchmarks/child_pipeline.py), fresh output folder",
        f"  settings  {_settings_text(f.settings, f.overrides)}",
    ]
    if k is not None:
        lines += [
            "  compare   the same child, tree and repeats with the pipeline's settings changed by "
            "--compare-set: " + ", ".join(f"{key}={v!r}" for key, v in f.compare_overrides.items()),
            f"            its settings: {_settings_text(k['settings'], f.compare_overrides)}",
        ]
    if b is not None:
        bc = b.get("code", {})
        lines += [
            f"  baseline  git {bc.get('ref')} = {bc.get('commit')}: its vposer_data exported "
            f"(git archive) to a temp folder, .py sources sha256 {bc.get('source_sha256')}; "
            f"the same child and options, the exported package first on PYTHONPATH",
            f"            its settings: {_settings_text(b['settings'], f.overrides)}",
        ]
    others = [name for name, _ in _columns(f)[1:]]
    fl = f.floor
    lines += [
        f"  floor     issue 12's I/O floor, in a fresh process, one thread: import torch, h5py; "
        f"read every byte of the {fl['files']} input files once; write as many bytes as each "
        f"of the pipeline's {fl['intermediate_files']} stage_I/stage_II files, not fsync-ed "
        f"(nor are the pipeline's), then of its {fl['final_files']} stage_III files, fsync "
        "each file and folder (benchmarks/child_floor.py)",
        "  final     the same child with the stage_III files only: the floor of the final "
        "bytes (issue 3's)",
        f"  cache     page cache NOT dropped (needs root; would measure the disk): a warm-up read "
        f"of the whole tree "
        f"({fmt_mb(f.warm_bytes)} in {f.warm_seconds:.2f} s) precedes each repeat, so every "
        f"run is measured WARM"
        + (" (as far as the tree fits in memory)" if f.tree_bytes * 2 > m.get("memory_bytes", 0)
           else ""),
        "  order     per repeat: warm-up, pipeline"
        + (f" and {' and '.join(others)} (alternating which goes first)" if others else "")
        + ", floor, final-only floor (the floors write the sizes the pipeline produced); "
        f"{f.repeats} repeat(s), best wall time of each reported",
        f"  memory    sampled every {interval * 1000:.0f} ms over the process tree (RSS sum; PSS "
        f"every {interval * 10 * 1000:.0f} ms); ru_maxrss from wait4 (RUSAGE_CHILDREN of the run)",
        "",
        "samples per split: "
        + ", ".join(f"{key} {v:,}" for key, v in f.samples.items())
        + f" (total {total_samples:,})",
    ]  # fmt: skip
    for name, column in _columns(f)[1:]:
        if column["samples"] != f.samples:
            lines.append(
                f"{name}'s: " + ", ".join(f"{key} {v:,}" for key, v in column["samples"].items())
            )
    lines += ["", *_table(f)]
    cpus = m.get("cpus") or 1
    runs = [(col["other_cpu"], col["wall"]) for _, col in _columns(f)]
    runs += [(floor["other_cpu"], floor["wall"]) for floor in (f.floor, f.floor_final)]
    if any(other_cpu > 0.1 * cpus * wall for other_cpu, wall in runs):
        lines += [
            "",
            "  WARNING: other processes used more than 10% of the machine's CPU during a measured "
            "run; the times above are inflated by contention. Rerun on a quiet machine or with "
            "--repeat N --wait-idle S.",
        ]
    lines += ["", *_phase_table(f)]
    lines += [
        "",
        f"  ratio pipeline / floor, all bytes written   {f.ratio_floor_all_bytes:.2f}x  (wall; "
        "issue 12's floor: every byte the three stages write)",
        f"  ratio pipeline / floor, final bytes only    {f.ratio_floor_final_bytes:.2f}x  (wall; "
        "the older floor: stage_III bytes only)",
        f"  ratio pipeline / floor within each repeat   {_paired(f.paired_floor_ratios)}",
    ]
    if k is not None:
        lines += [
            f"  ratio compare / floor, all; final bytes     {k['ratio_to_floor_all_bytes']:.2f}x; "
            f"{k['ratio_to_floor_final_bytes']:.2f}x",
            f"  compare / pipeline (wall)                   {k['compare_over_pipeline']:.2f}x"
            f"  ({k['wall']:.2f} s vs {f.pipeline_wall:.2f} s)",
            f"  compare / pipeline within each repeat       "
            f"{_paired(k.get('paired_compare_over_pipeline', []))}",
        ]
        order = k.get("by_order")
        if order is not None:
            (first, n_first), (second, n_second) = order["pipeline_first"], order["compare_first"]
            lines += [
                f"  compare / pipeline by run order             pipeline first {first:.2f}x "
                f"({n_first}), compare first {second:.2f}x ({n_second}); balanced "
                f"{order['balanced']:.2f}x  (median of each order, their geometric mean)",
            ]
    if b is not None:
        lines += [
            f"  ratio baseline / floor, all; final bytes    {b['ratio_to_floor_all_bytes']:.2f}x; "
            f"{b['ratio_to_floor_final_bytes']:.2f}x",
            f"  pipeline / baseline (wall)                  {b['pipeline_over_baseline']:.2f}x"
            f"  ({f.pipeline_wall:.2f} s vs {b['wall']:.2f} s at git {b['code'].get('ref')})",
            f"  pipeline / baseline within each repeat      "
            f"{_paired(b['paired_pipeline_over_baseline'])}",
        ]
    lines += [
        f"  raw frames per second (raw frames / wall)   {f.raw_frames_per_second:,.0f}",
        f"  samples per second (all splits / wall)      {f.samples_per_second:,.0f}",
        f"  output bytes (stage_III, all splits)        {fmt_mb(f.output_bytes)}  ("
        + ", ".join(f"{key} {fmt_mb(v)}" for key, v in f.split_bytes.items())
        + ")",
        f"  largest split's final output ({f.largest_split:5s})       "
        f"{fmt_mb(f.split_bytes[f.largest_split])}",
        f"  memory target 1.5 x largest + 300 MB       {fmt_mb(f.memory_target)}",
        "",
        f"  original scripts (reported): ~{f.original_seconds:.0f} s at {label}"
        + ("" if f.original_source == "reported" else f" ({f.original_source})")
        + " -- issue 3's figure for this machine, NOT measured here",
        "",
        *_targets(f),
    ]
    return "\n".join(lines)


def _targets(f: Figures) -> list[str]:
    t, k = f.targets, f.compare
    at = "" if f.frames == TARGET_FRAMES else f"; defined at {frames_label(TARGET_FRAMES)}"
    floor, final = f.floor["wall"], f.floor_final["wall"]
    lines = [
        "targets (reported, never asserted; issues 3" + (", 10" if k else "") + f" and 12{at})",
        f"  [{_mark(t['within_1.5x_floor_all_bytes'])}] end to end within "
        f"{TARGET_FLOOR_ALL_RATIO}x the I/O floor (issue 12; floor of all bytes written): "
        f"{f.pipeline_wall:.2f} s vs {TARGET_FLOOR_ALL_RATIO} x {floor:.2f} s = "
        f"{TARGET_FLOOR_ALL_RATIO * floor:.2f} s (ratio {f.ratio_floor_all_bytes:.2f})",
        f"  [{_mark(t['within_3x_floor_final_bytes'])}] end to end within "
        f"{TARGET_FLOOR_RATIO:.0f}x the I/O floor (issue 3; floor of the final bytes only): "
        f"{f.pipeline_wall:.2f} s vs {TARGET_FLOOR_RATIO:.0f} x {final:.2f} s = "
        f"{TARGET_FLOOR_RATIO * final:.2f} s (ratio {f.ratio_floor_final_bytes:.2f})",
        f"  [{_mark(t['30x_faster_than_original'])}] >= 30x faster than the original "
        f"scripts: {f.speedup_vs_original:.1f}x vs their reported ~{f.original_seconds:.0f} s "
        f"(30x needs <= {f.original_seconds / TARGET_SPEEDUP:.2f} s)",
        f"  [{_mark(t['peak_rss_within_memory_target'])}] peak RSS <= 1.5 x largest "
        f"split + 300 MB: {fmt_mb(f.peak_rss_tree)} (tree RSS sum) vs {fmt_mb(f.memory_target)}"
        f" (PSS sum {fmt_mb(f.peak_pss_tree)}, largest process {fmt_mb(f.maxrss_single)})",
    ]
    if k is not None:
        lines.append(
            f"  [{_mark(t['compare_within_target'])}] compare <= {compare_target(f)}x the "
            + (
                "pipeline (issue 20, with joints (set body) and contacts)"
                if f.body_fields
                else "pipeline (issue 10, for clips T=16 at 30 Hz)"
            )
            + f": {k['wall']:.2f} s vs {compare_target(f)} x {f.pipeline_wall:.2f} s = "
            f"{compare_target(f) * f.pipeline_wall:.2f} s (ratio {k['compare_over_pipeline']:.2f})"
        )
    at = "" if f.frames == SCALE_FRAMES else f"; defined at {frames_label(SCALE_FRAMES)}"
    lines += [
        f"targets at scale (issue 12, default configuration; reported, never asserted{at})",
        f"  [{_mark(t['scale_wall'])}] wall <= {SCALE_WALL:.0f} s: {f.pipeline_wall:.2f} s",
        f"  [{_mark(t['scale_largest_process'])}] largest process <= {SCALE_MAXRSS / GB:.0f} GB "
        f"(ru_maxrss): {fmt_mb(f.maxrss_single)}",
        f"  [{_mark(t['scale_tree_rss'])}] process tree <= {SCALE_TREE_RSS / GB:.0f} GB (RSS "
        f"sum): {fmt_mb(f.peak_rss_tree)} (PSS sum {fmt_mb(f.peak_pss_tree)})",
    ]
    return lines


def _s(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f} s"


def _phase_table(f: Figures) -> list[str]:
    """Peak RSS per phase (tree sum / main process) for each measured pipeline."""
    columns = [(name, col["stage_memory"]) for name, col in _columns(f) if col["stage_memory"]]
    if not columns:
        return []
    phases = list(dict.fromkeys(phase for _, memory in columns for phase in memory))
    lines = ["  peak RSS per phase, MB (tree sum / main process)"]
    lines.append(f"    {'':28s}" + "".join(f"{name:>22s}" for name, _ in columns))
    for phase in phases:
        cells = []
        for _, memory in columns:
            tree, main = memory.get(phase, (None, None))
            cells.append("" if tree is None else f"{tree / 1e6:,.0f} / {main / 1e6:,.0f}")
        lines.append(f"    {phase:28s}" + "".join(f"{cell:>22s}" for cell in cells))
    return lines


def _table(f: Figures) -> list[str]:
    """The main table: a column per measured pipeline (pipeline, compare, baseline), then the
    floor (all bytes written) and the floor of the final bytes only."""
    cols = [col for _, col in _columns(f)]
    stages = list(dict.fromkeys(stage for col in cols for stage in col["stage_seconds"]))
    intermediate = ("stage_I", "stage_II")

    def other(col: dict[str, Any]) -> float:
        return float(col["wall"] - col["imports"] - col["prepare"])

    def walls(values: list[float]) -> str:
        return "/".join(f"{w:.1f}" for w in values)

    def megabytes(values: list[int]) -> str:
        return "/".join(f"{v / MB:.0f}" for v in values)

    def each(fn: Any) -> list[str]:
        return [fn(col) for col in cols]

    floors = [f.floor, f.floor_final]

    def floor(fn: Any) -> list[str]:
        return [fn(fl) for fl in floors]

    def parts(fl: dict[str, Any]) -> float:
        return float(fl["imports"] + fl["read"] + fl["write_intermediates"] + fl["write_finals"])

    blank, none = [""] * len(cols), [""] * len(floors)
    rows: list[tuple[str, list[str], list[str]]] = [
        ("", [name for name, _ in _columns(f)], ["I/O floor", "final only"]),
        ("imports (inside the child)", each(lambda c: _s(c["imports"])),
         floor(lambda fl: _s(fl["imports"]))),
        ("prepare call (stages, driver)", each(lambda c: _s(c["prepare"])), none),
        *[(f"  {stage} (PrepareResult.seconds)",
           each(lambda c, s=stage: _s(c["stage_seconds"].get(s))), none) for stage in stages],
        ("read inputs (every byte, once)", blank, floor(lambda fl: _s(fl["read"]))),
        ("write stage_I + stage_II sizes, no fsync", blank,
         [_s(f.floor["write_intermediates"]), ""]),
        ("write stage_III sizes, fsync", blank, floor(lambda fl: _s(fl["write_finals"]))),
        ("other (interpreter start-up, exit)", each(lambda c: _s(other(c))),
         floor(lambda fl: _s(fl["wall"] - parts(fl)))),
        ("WALL, whole process", each(lambda c: _s(c["wall"])), floor(lambda fl: _s(fl["wall"]))),
        *([("  all repeats", each(lambda c: walls(c["walls"])),
            floor(lambda fl: walls(fl["walls"])))] if f.repeats > 1 else []),
        ("CPU user+sys (process and workers)", each(lambda c: _s(c["cpu"])),
         floor(lambda fl: _s(fl["cpu"]))),
        ("CPU used meanwhile by other processes", each(lambda c: _s(c["other_cpu"])),
         floor(lambda fl: _s(fl["other_cpu"]))),
        ("peak RSS, sum over process tree", each(lambda c: fmt_mb(c["peak_rss_tree"])),
         floor(lambda fl: fmt_mb(fl["peak_rss_tree"]))),
        ("peak PSS, sum over process tree", each(lambda c: fmt_mb(c["peak_pss_tree"])), none),
        ("max RSS of one process (ru_maxrss)", each(lambda c: fmt_mb(c["maxrss_single"])), none),
        *([("  all repeats, MB", each(lambda c: megabytes(c["maxrss_singles"])), none)]
          if f.repeats > 1 else []),
        ("processes in the tree at most", each(lambda c: str(c["peak_processes"])), none),
        ("bytes read (input files, whole)", blank, floor(lambda fl: fmt_mb(fl["read_bytes"]))),
        ("bytes written, stage_III (final output)",
         each(lambda c: fmt_mb(c["stage_bytes"].get("stage_III"))),
         floor(lambda fl: fmt_mb(fl["final_bytes"]))),
        ("bytes written, stage_I + stage_II",
         each(lambda c: fmt_mb(sum(c["stage_bytes"].get(s, 0) for s in intermediate))),
         [fmt_mb(f.floor["intermediate_bytes"]), ""]),
    ]  # fmt: skip
    return [
        f"  {name:44s}" + "".join(f" {cell:>13s}" for cell in cells + floor_cells)
        for name, cells, floor_cells in rows
    ]
