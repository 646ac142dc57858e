#!/usr/bin/env python
"""Benchmark ``prepare_vposer_datasets`` end to end against the I/O floor of the same work.

Generates (or reuses) a synthetic AMASS tree of a given raw frame count, then, per repeat:

1. reads the whole tree once (warm-up: the page cache is not dropped, which needs root and
   would measure the disk, so every measurement below is taken warm);
2. runs the whole pipeline with ``PrepareConfig()`` defaults (or the given settings) in a fresh
   process (``child_pipeline.py``, imports included) into a fresh output folder, sampling the
   peak RSS of the process and its DataLoader workers;
3. with ``--compare-set KEY=VALUE``, runs the same child with those settings changed (a second
   configuration, e.g. clips against frames); with ``--baseline-ref REF``, runs the same child
   over the same tree with the ``vposer_data`` of git commit REF (exported to a temp folder,
   first on ``PYTHONPATH``); the pipelines of a repeat alternate which runs first;
4. runs the I/O floor in a fresh process (``child_floor.py``), as issue 12 defines it:
   ``import torch, h5py``, read every byte of every input file once, write as many bytes as
   each file of the pipeline's ``stage_I`` and ``stage_II`` into as many files, not flushed (the
   pipeline does not ``fsync`` its intermediates), then as many as each of its ``stage_III``
   files, ``fsync``-ing each file and folder;
5. runs the same child with the final files only: the floor of the final bytes (issue 3's).

It prints per-stage seconds, wall seconds, both floors, the pipeline's ratio to each, raw
frames and samples per second, peak memory, output bytes, and the targets of issues 3, 10 and
12 with PASS/MISS markers. The targets are reported, never asserted. See
``benchmarks/README.md``.

    python benchmarks/bench_prepare.py --frames 200000
    python benchmarks/bench_prepare.py --frames 2000000 --baseline-ref HEAD~3 --json /tmp/b.json
    python benchmarks/bench_prepare.py --frames 2000000 --keep-rate 1.0 --baseline-ref main
    python benchmarks/bench_prepare.py --frames 2000000 --compare-set sampling=clips \
        --compare-set target_fps=30 --compare-set clip_frames=16
    python benchmarks/bench_prepare.py --frames 2000000 --body-fields --repeat 4

``--body-fields`` compares the same run with the body-model fields added (``joints`` with set
body, and ``contacts``; made-up models of the tree's family written once under --work-dir),
against issue 20's target of 1.25x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
from bench_common import (
    BENCH_DIR,
    GB,
    ChildRun,
    code_state,
    ensure_tree,
    git,
    machine_info,
    run_child,
    source_digest,
    tree_bytes,
    warm_up,
)
from child_profile import run_profile
from prepare_render import render
from prepare_report import Repeat, summarize

COMPRESSIONS = ("gzip", "lzf", "none")


def input_files(amass: Path) -> list[str]:
    """The files the pipeline reads: every ``.npz`` the standard splits list, less those it
    passes over by name, unopened (``shape.npz``, ``*_stagei.npz``)."""
    from vposer_data.amass import is_non_motion_name
    from vposer_data.splits import AMASS_SPLITS, resolve_split_files

    sources = resolve_split_files(AMASS_SPLITS, amass, lambda message: None)
    return [
        str(amass / source.path)
        for files in sources.values()
        for source in files
        if not is_non_motion_name(source.path)
    ]


def output_sizes(out: Path) -> dict[str, Any]:
    """Bytes per stage and per stage_III split, and the files the floor writes, each as
    (folder relative to ``out``, name, bytes): ``intermediates``, every file of ``stage_I``
    then of ``stage_II`` (the pipeline's stage order; splits by name), ``outputs``, every
    ``stage_III/<split>/*.pt``."""
    sizes: dict[str, Any] = {"stages": {}, "splits": {}, "intermediates": [], "outputs": []}
    for stage in ("stage_I", "stage_II", "stage_III"):
        sizes["stages"][stage] = tree_bytes(out / stage)[0] if (out / stage).exists() else 0
    for stage in ("stage_I", "stage_II"):
        files = sorted(p for p in (out / stage).rglob("*") if p.is_file())
        sizes["intermediates"] += [
            [str(f.parent.relative_to(out)), f.name, f.stat().st_size] for f in files
        ]
    for split_dir in sorted(p for p in (out / "stage_III").iterdir() if p.is_dir()):
        files = sorted(split_dir.glob("*.pt"))
        sizes["splits"][split_dir.name] = sum(f.stat().st_size for f in files)
        folder = f"stage_III/{split_dir.name}"
        sizes["outputs"] += [[folder, f.name, f.stat().st_size] for f in files]
    return sizes


def compile_package(package: Path) -> None:
    """Byte-compile a package's modules (``__pycache__``), as installing it would: where the
    environment says not to write bytecode (``PYTHONDONTWRITEBYTECODE``), every child would
    otherwise compile the package from source at import (about 50 ms here), while torch and
    h5py, which the floor imports, come compiled."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def export_package(ref: str, dest: Path) -> dict[str, Any]:
    """Export ``vposer_data`` as of git ``ref`` into ``dest`` (``dest/vposer_data``), byte-
    compiled like the working tree's; returns what identifies it."""
    try:
        top = git(BENCH_DIR, "rev-parse", "--show-toplevel")
        commit = git(BENCH_DIR, "rev-parse", "--verify", "--short", f"{ref}^{{commit}}")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"--baseline-ref {ref}: not a commit of this repository ({exc})") from exc
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(
        ["git", "-C", top, "archive", "--format=tar", commit, "--", "vposer_data"],
        stdout=subprocess.PIPE,
    )
    untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=False)
    if archive.stdout is not None:
        archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0 or not (dest / "vposer_data").is_dir():
        raise SystemExit(f"--baseline-ref {ref}: could not export vposer_data at {commit}")
    package = dest / "vposer_data"
    compile_package(package)
    return {"ref": ref, "commit": commit, "source_sha256": source_digest(package)}


def run_repeat(
    index: int,
    tree: Path,
    args: argparse.Namespace,
    settings: dict[str, Any],
    inputs: list[str],
    baseline_path: Path | None,
    compare_settings: dict[str, Any] | None = None,
) -> Repeat:
    amass = tree / "amass"
    warm_bytes, warm_seconds = warm_up(amass)
    scratch = Path(tempfile.mkdtemp(prefix=f"run{index}-", dir=args.work_dir))

    def pipeline(
        name: str, pythonpath: Path | None, config: dict[str, Any]
    ) -> tuple[ChildRun, dict[str, Any]]:
        out = scratch / name
        run = run_child(
            "child_pipeline.py",
            [str(amass), str(out), json.dumps(config)],
            args.interval,
            scratch / f"{name}.log",
            args.wait_idle,
            pythonpath=None if pythonpath is None else str(pythonpath),
        )
        package = Path(str(run.report.get("package"))).resolve()
        if pythonpath is not None and pythonpath.resolve() not in package.parents:
            raise SystemExit(f"the baseline child imported {package}, not the exported copy")
        sizes = output_sizes(out)
        if not args.keep_output:  # free the disk (and its page cache) before the next run
            shutil.rmtree(out, ignore_errors=True)
        return run, sizes

    try:
        names = ["pipeline"]
        names += ["compare"] if compare_settings is not None else []
        names += ["baseline"] if baseline_path is not None else []
        runs: dict[str, tuple[ChildRun, dict[str, Any]]] = {}
        for name in names if index % 2 == 0 else reversed(names):  # alternate the order
            if name == "compare" and compare_settings is not None:
                runs[name] = pipeline(name, None, compare_settings)
            else:
                runs[name] = pipeline(name, baseline_path if name == "baseline" else None, settings)
        current, sizes = runs["pipeline"]

        def floor(name: str, intermediates: list[Any]) -> ChildRun:
            spec = {"inputs": inputs, "intermediates": intermediates, "outputs": sizes["outputs"]}
            (scratch / f"{name}.json").write_text(json.dumps(spec))
            out = scratch / f"{name}_out"
            run = run_child(
                "child_floor.py",
                [str(scratch / f"{name}.json"), str(out)],
                args.interval,
                scratch / f"{name}.log",
                args.wait_idle,
            )
            if not args.keep_output:  # as for the pipelines: free the disk and its cache
                shutil.rmtree(out, ignore_errors=True)
            return run

        floor_all = floor("floor", sizes["intermediates"])  # issue 12's: every byte written
        floor_final = floor("floor_final", [])  # the final bytes only (issue 3's)
    finally:
        if not args.keep_output:
            shutil.rmtree(scratch, ignore_errors=True)
    baseline, baseline_sizes = runs.get("baseline", (None, None))
    compare, compare_sizes = runs.get("compare", (None, None))
    return Repeat(
        warm_bytes, warm_seconds, current, floor_all, floor_final, sizes, baseline,
        baseline_sizes, compare, compare_sizes,
    )  # fmt: skip


def parse_settings(
    parser: argparse.ArgumentParser, option: str, items: list[str]
) -> dict[str, Any]:
    """``KEY=VALUE`` items as settings, each VALUE as JSON where it parses, else as text."""
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            parser.error(f"{option} {item!r}: expected KEY=VALUE")
        try:
            settings[key] = json.loads(text)
        except ValueError:
            settings[key] = text
    return settings


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        help="PrepareConfig.hdf5_compression for the pipeline (default: PrepareConfig's)",
    )
    parser.add_argument(
        "--num-workers", type=int, help="PrepareConfig.num_workers (default: PrepareConfig's)"
    )
    parser.add_argument(
        "--keep-rate",
        type=float,
        help="PrepareConfig.keep_rate, the fraction of each file's trimmed frames kept "
        "(default: PrepareConfig's, 0.3); memory and time grow with it",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a PrepareConfig setting for the pipeline, VALUE as JSON where it parses "
        "(e.g. --set batch_size=16384); repeatable. The floor follows: it writes the sizes "
        "this pipeline wrote (its intermediates' sizes depend on such settings)",
    )
    parser.add_argument(
        "--compare-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also measure a second configuration: the pipeline's settings with this one "
        "changed (VALUE as for --set; repeatable), in the same repeats, and report both and "
        "their ratio (e.g. --compare-set sampling=clips --compare-set target_fps=30 "
        "--compare-set clip_frames=16)",
    )
    parser.add_argument(
        "--baseline-ref",
        metavar="GIT_REF",
        help="also measure the vposer_data of this git commit (e.g. HEAD~5, a tag) on the same "
        "tree in the same run, with the same child and settings, and report both",
    )
    parser.add_argument("--repeat", type=int, default=1, help="repeats; the best is reported")
    parser.add_argument(
        "--interval", type=float, default=0.02, help="memory sampling interval, seconds"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        metavar="SECONDS",
        default=0.0,
        help="before each measured run, wait up to SECONDS for the machine's CPU to be under "
        "10%% busy (for shared machines; default: do not wait)",
    )
    parser.add_argument(
        "--body-fields",
        action="store_true",
        help="compare with the same run plus joints (set body) and contacts (issue 20)",
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
    settings = parse_settings(parser, "--set", args.set)
    args.compare_overrides = parse_settings(parser, "--compare-set", args.compare_set)
    if args.body_fields:
        if args.compare_overrides:
            parser.error("--body-fields and --compare-set: one compared run at a time")
        from vposer_data.synthetic_models import ensure_body_models

        models = args.work_dir / "body_models"
        ensure_body_models(models, families=(args.release,))
        base = settings.get("augmentations", ["matrot"])
        args.compare_overrides = {
            "augmentations": [*base, {"name": "joints", "set": "body"}, "contacts"],
            "body_model_dir": str(models),
        }
    for key, value in (
        ("hdf5_compression", args.compression),
        ("num_workers", args.num_workers),
        ("keep_rate", args.keep_rate),
    ):
        if value is not None:
            if key in settings and settings[key] != value:
                parser.error(f"{key} given twice: {settings[key]!r} and {value!r}")
            settings[key] = value
    return args, settings


#: Bytes a preparation writes (intermediates and final files) per byte of its tree and per
#: unit of keep_rate, measured: 0.65x the tree at keep_rate 0.3 (2M raw frames), 2.15x at 1.0
#: (16M), a little more with the body-model fields.
OUTPUT_PER_TREE_BYTE_AND_KEEP_RATE = 2.4


def check_output_space(
    args: argparse.Namespace,
    settings: dict[str, Any],
    compare: dict[str, Any] | None,
    tree_bytes: int,
) -> None:
    """Stop before the first run when the work folder cannot hold what one run writes (all
    runs' outputs with --keep-output): a full disk would stop a run midway (exit status 2)."""
    from vposer_data.config import PrepareConfig

    runs = [settings, *([compare] if compare else []), *([settings] if args.baseline_ref else [])]
    rates = [float(run.get("keep_rate", PrepareConfig().keep_rate)) for run in runs]
    per_run = [tree_bytes * OUTPUT_PER_TREE_BYTE_AND_KEEP_RATE * rate for rate in rates]
    need = sum(per_run) if args.keep_output else max(per_run)
    free = shutil.disk_usage(args.work_dir).free
    if free < need:
        raise SystemExit(
            f"{args.work_dir}: {free / GB:.1f} GB free; "
            f"{'the runs write' if args.keep_output else 'a run writes'} about {need / GB:.1f} GB "
            "(free space, or choose another --work-dir)"
        )


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(argv)
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
    inputs = input_files(tree_root / "amass")
    compare = {**settings, **args.compare_overrides} if args.compare_overrides else None
    check_output_space(args, settings, compare, tree["bytes"])
    baseline_dir = Path(tempfile.mkdtemp(prefix="baseline-", dir=args.work_dir))
    baseline_code = None
    repeats = []
    code_before = code_state()  # others may edit or commit the package meanwhile
    compile_package(Path(code_before["package"]))
    try:
        if args.baseline_ref:
            baseline_code = export_package(args.baseline_ref, baseline_dir)
            print(
                f"baseline: vposer_data at git {args.baseline_ref} = {baseline_code['commit']} "
                f"exported to {baseline_dir}",
                flush=True,
            )
        steps = "pipeline" + (", compare" if compare else "")
        steps += ", baseline" if baseline_code else ""
        for index in range(args.repeat):
            print(
                f"repeat {index + 1}/{args.repeat}: warm-up, {steps}, floor, final-only floor ...",
                flush=True,
            )
            repeats.append(
                run_repeat(
                    index,
                    tree_root,
                    args,
                    settings,
                    inputs,
                    baseline_dir if baseline_code else None,
                    compare,
                )
            )
    finally:
        shutil.rmtree(baseline_dir, ignore_errors=True)
    figures = summarize(tree, repeats, args.compress, body_fields=args.body_fields)
    figures.machine = machine_info()
    figures.code = code_state()
    if figures.code.get("source_sha256") != code_before.get("source_sha256"):
        figures.code["changed_during_run_from"] = code_before
    figures.overrides = settings
    figures.compare_overrides = args.compare_overrides
    if figures.baseline is not None and baseline_code is not None:
        figures.baseline["code"] = baseline_code
    print()
    print(render(figures, tree_root, reused, args.interval))
    if args.json:
        values = asdict(figures)
        values["runs"] = [
            {
                "pipeline": r.pipeline.as_dict(),
                "floor": r.floor.as_dict(),
                "floor_final": r.floor_final.as_dict(),
                "sizes": r.sizes,
                "baseline": None if r.baseline is None else r.baseline.as_dict(),
                "baseline_sizes": r.baseline_sizes,
                "compare": None if r.compare is None else r.compare.as_dict(),
                "compare_sizes": r.compare_sizes,
            }
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
        print(run_profile(tree_root / "amass", args.work_dir, args.profile, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
