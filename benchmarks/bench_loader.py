#!/usr/bin/env python
"""Benchmark ``VPoserDataModule.train_dataloader`` against the per-sample loader it replaces.

Generates (or reuses, ``bench_common.ensure_tree``) a synthetic AMASS tree of a given raw
frame count and prepares it with the standard splits (or reuses the prepared folder), then,
in one process, for each ``num_workers`` value, times epochs over the training split of:

- ``datamodule``: ``VPoserDataModule(fields=[FIELD]).train_dataloader()``: memory-mapped
  tensors; the sampler yields whole batches of indices and each batch is one
  ``__getitems__`` (one ``index_select`` per field), passed through by the collate function;
- ``per-sample``: the pattern of the original VPoser loader: a Dataset holding the tensors in
  memory (``torch.load``) and returning one dict per index, batched by PyTorch's default
  collate (``DataLoader(batch_size=512, shuffle=True, drop_last=True)``), same field;
- ``index_select`` (with ``num_workers=0``): ``index_select`` of each batch of a shuffled
  order with no loader at all, the floor of any loader over these tensors.

Both loaders use persistent workers. After one warm-up epoch each (page cache, worker
start-up), ``--epochs`` rounds each time one epoch of every loader in turn (interleaved, so a
change of load on the machine affects them alike); the median epoch is reported. At the end,
while the workers are alive and have touched the whole split, psutil reads the memory of the
main process and of each worker: RSS, USS (pages only that process holds), PSS (shared pages
divided among the processes sharing them) and file-backed resident pages (the mapping).

    python benchmarks/bench_loader.py --frames 2750000 --epochs 11   # about 500k training samples
    python benchmarks/bench_loader.py --frames 200000 --epochs 3 --json /tmp/bench_loader.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
import torch
from bench_common import (
    MB,
    code_state,
    cpu_busy,
    ensure_tree,
    machine_info,
    process_cpu,
    wait_until_idle,
)
from torch.utils.data import DataLoader, Dataset

from vposer_data.datamodule import VPoserDataModule
from vposer_data.prepare import split_dir
from vposer_data.splits import AMASS_SPLITS

TARGET_SPEEDUP = 30.0
TARGET_SAMPLES_PER_SECOND = 2_000_000


class PerSampleDataset(Dataset[dict[str, torch.Tensor]]):
    """The original VPoser loader's pattern: tensors loaded into memory, one dict per index."""

    def __init__(self, folder: Path, fields: Iterable[str]) -> None:
        self.ds = {k: torch.load(folder / f"{k}.pt", weights_only=True) for k in fields}

    def __len__(self) -> int:
        return len(next(iter(self.ds.values())))

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.ds.items()}


def prepared_folder(root: Path, frames: int) -> Path:
    """A synthetic tree of ``frames`` raw frames, prepared with the standard splits (reused)."""
    tree_root, _summary, reused, seconds = ensure_tree(root, frames)
    if not reused:
        print(f"  {seconds:.1f} s", flush=True)
    amass = tree_root / "amass"
    data_dir = tree_root / "vposer_data"
    started = time.perf_counter()
    VPoserDataModule(data_dir=data_dir, amass_dir=amass, splits=AMASS_SPLITS).prepare_data()
    print(f"prepared data: {data_dir} ({time.perf_counter() - started:.1f} s)", flush=True)
    return data_dir


def epoch(loader: Iterable[dict[str, torch.Tensor]], field: str) -> tuple[int, float, float]:
    """Samples, wall seconds and CPU seconds of this process for one pass over ``loader``."""
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    for batch in loader:
        count += batch[field].shape[0]
    return count, time.perf_counter() - started, time.process_time() - cpu


def memory(pids: list[int]) -> list[dict[str, float]]:
    """Per process, in MB: RSS; USS (pages only it holds); PSS (shared pages divided among
    the processes sharing them); file (resident pages backed by a file, e.g. a mapping)."""
    rows = []
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        rows.append(
            {
                "rss": info.rss / MB,
                "uss": info.uss / MB,
                "pss": getattr(info, "pss", 0) / MB,
                "file": getattr(info, "shared", 0) / MB,
            }
        )
    return rows


def worker_pids(loader: Any) -> list[int]:
    """The worker processes of a loader with persistent workers (a private DataLoader field;
    this is a benchmark)."""
    iterator = getattr(loader, "_iterator", None)
    return [w.pid for w in getattr(iterator, "_workers", [])]


class Floor:
    """``index_select`` of every batch of a shuffled order, without any loader."""

    def __init__(self, tensor: torch.Tensor, batch_size: int) -> None:
        self.tensor, self.batch_size = tensor, batch_size
        self.generator = torch.Generator().manual_seed(0)

    def __iter__(self) -> Any:
        n, size = self.tensor.shape[0], self.batch_size
        order = torch.randperm(n, generator=self.generator)
        for start in range(0, n - size + 1, size):
            yield {"x": self.tensor.index_select(0, order[start : start + size])}


def run(args: argparse.Namespace) -> dict:
    data_dir = prepared_folder(args.dir, args.frames)
    train_dir = split_dir(data_dir, "train")
    field_bytes = (train_dir / f"{args.field}.pt").stat().st_size
    results: dict[str, Any] = {
        "frames": args.frames,
        "field": args.field,
        "field_file_mb": field_bytes / MB,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "machine": machine_info(),
        "code": code_state(),
        "runs": {},
    }

    def datamodule_loader(workers: int) -> Any:
        dm = VPoserDataModule(
            data_dir=data_dir,
            splits=AMASS_SPLITS,
            fields=[args.field],
            batch_size=args.batch_size,
            num_workers=workers,
        )
        dm.setup("fit")
        return dm.train_dataloader()

    def per_sample_loader(workers: int) -> DataLoader:
        return DataLoader(
            PerSampleDataset(train_dir, [args.field]),
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(0),
        )

    from vposer_data.dataset import VPoserDataset

    mapped = VPoserDataset(train_dir, [args.field]).tensors[args.field]
    print(f"train split: {mapped.shape[0]:,} samples, {args.field} {field_bytes / MB:.1f} MB")
    for workers in args.workers:
        if args.wait_idle > 0:
            waited = wait_until_idle(args.wait_idle)
            print(f"waited {waited:.0f} s for an idle machine", flush=True)
        machine_before, started = psutil.cpu_times(), time.perf_counter()
        me = psutil.Process()
        mine_before = process_cpu(me.cpu_times())
        # Interleaved: each round times one epoch of every loader, so that a load change on
        # the machine affects them alike; one warm-up epoch each first (page cache, workers).
        loaders: dict[str, tuple[Any, str]] = {
            f"datamodule/{workers}": (datamodule_loader(workers), args.field),
            f"per-sample/{workers}": (per_sample_loader(workers), args.field),
        }
        if workers == 0:
            loaders["index_select/-"] = (Floor(mapped, args.batch_size), "x")
        samples = {key: epoch(loader, field)[0] for key, (loader, field) in loaders.items()}
        seconds: dict[str, list[float]] = {key: [] for key in loaders}
        cpu_seconds: dict[str, list[float]] = {key: [] for key in loaders}
        print(f"num_workers={workers}: {args.epochs} rounds ...", end=" ", flush=True)
        for _ in range(args.epochs):
            for key, (loader, field) in loaders.items():
                count, took, cpu = epoch(loader, field)
                if count != samples[key]:
                    raise RuntimeError(f"{key}: an epoch of {count} samples, then {samples[key]}")
                seconds[key].append(took)
                cpu_seconds[key].append(cpu)
        print("done", flush=True)
        wall = time.perf_counter() - started
        machine = cpu_busy(machine_before, psutil.cpu_times())
        mine = sum(
            process_cpu(psutil.Process(pid).cpu_times())
            for loader, _ in loaders.values()
            for pid in worker_pids(loader)
        )
        mine += process_cpu(me.cpu_times()) - mine_before
        results.setdefault("others_cpu_share", {})[str(workers)] = max(
            0.0, (machine - mine) / (wall * (os.cpu_count() or 1))
        )
        for key, (loader, _) in loaders.items():
            workers_of = worker_pids(loader)
            results["runs"][key] = {
                "samples": samples[key],
                "seconds": seconds[key],
                "cpu_seconds": cpu_seconds[key],
                "samples_per_second": samples[key] / statistics.median(seconds[key]),
                "memory": {
                    "main": memory([os.getpid()])[0],
                    "workers": memory(workers_of),
                },
            }
        del loaders
        gc.collect()
    return results


def report(results: dict) -> str:
    runs = results["runs"]
    some = next(iter(runs.values()))
    lines = [
        "",
        f"Loader benchmark: {results['frames']:,} raw frames -> {some['samples']:,} training "
        f"samples per epoch (batch {results['batch_size']}, field {results['field']}, "
        f"{results['field_file_mb']:.0f} MB); median of {results['epochs']} interleaved "
        f"epochs after a warm-up; {results['machine']['cpus']} CPUs, "
        f"torch {results['machine']['torch']}; load average {results['load'][0]:.2f} before, "
        f"{results['load'][1]:.2f} after; other processes used "
        + ", ".join(
            f"{share:.0%} (num_workers={w})" for w, share in results["others_cpu_share"].items()
        )
        + " of the CPUs while it ran",
        "",
        "Wall: the median and the fastest epoch. CPU: this process's CPU time per epoch "
        "(median): time the CPU spends on other processes is left out (not their effect on "
        "caches); with workers, theirs is left out too, so it is not shown.",
        f"{'':<22s}{'wall, median':^27s}{'wall, fastest':^27s}{'CPU, median':^27s}",
        f"{'loader':<14s}{'workers':>8s}" + f"{'samples/s':>14s}{'vs p-s':>12s} " * 3,
    ]
    for key, run_ in runs.items():
        name, workers = key.split("/")
        base = runs.get(f"per-sample/{workers}") or runs.get("per-sample/0")
        line = f"{name:<14s}{workers:>8s}"
        for series, pick in (("seconds", statistics.median), ("seconds", min),
                             ("cpu_seconds", statistics.median)):  # fmt: skip
            if series == "cpu_seconds" and workers not in ("0", "-"):
                line += f"{'-':>14s}{'-':>12s} "
                continue
            seconds = pick(run_[series])
            ratio = pick(base[series]) / seconds if base else float("nan")
            line += f"{run_['samples'] / seconds:>14,.0f}{ratio:>11.1f}x "
        lines.append(line.rstrip())
    lines += [
        "",
        "Memory at the end (MB). USS: pages only that process holds; PSS: shared pages divided "
        "among sharers; file: resident pages backed by a file (the memory-mapped tensors).",
        "(One main process runs both loaders of a row group, so it is shown once.)",
        f"{'loader':<14s}{'workers':>8s}  {'process':<10s}"
        f"{'RSS':>9s}{'USS':>9s}{'PSS':>9s}{'file':>9s}",
    ]
    shown_main: set[str] = set()
    for key, run_ in runs.items():
        name, workers = key.split("/")
        if name == "index_select":
            continue
        procs = [(f"worker {i}", m) for i, m in enumerate(run_["memory"]["workers"])]
        if workers not in shown_main:  # one main process holds every loader of a round
            shown_main.add(workers)
            procs.insert(0, ("main", run_["memory"]["main"]))
        for label, m in procs:
            lines.append(
                f"{name:<14s}{workers:>8s}  {label:<10s}"
                f"{m['rss']:>9.1f}{m['uss']:>9.1f}{m['pss']:>9.1f}{m['file']:>9.1f}"
            )
        if run_["memory"]["workers"]:
            workers_pss = sum(m["pss"] for m in run_["memory"]["workers"])
            lines.append(f"{'':<24s}workers' PSS together: {workers_pss:.1f} MB")
    ours = runs.get("datamodule/0")
    base = runs.get("per-sample/0")
    if ours and base:
        speedup = ours["samples_per_second"] / base["samples_per_second"]
        rate = ours["samples_per_second"]
        lines += [
            "",
            "Targets (num_workers=0, median epochs):",
            f"  >= {TARGET_SPEEDUP:.0f}x the per-sample loader: {speedup:.1f}x  "
            + ("PASS" if speedup >= TARGET_SPEEDUP else "MISS"),
            f"  >= {TARGET_SAMPLES_PER_SECOND / 1e6:.0f}M samples/s: {rate / 1e6:.2f}M  "
            + ("PASS" if rate >= TARGET_SAMPLES_PER_SECOND else "MISS"),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2_000_000, help="raw synthetic frames")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "vposer_bench_loader",
        help="where the synthetic tree and prepared data are made (and reused)",
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--field", default="pose_body")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (median reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="before each round, wait up to S seconds for the CPUs to be under 10%% busy",
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    results = run(args)
    results["load"] = [load_before, os.getloadavg()[0]]
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
