"""Stage III: ``stage_II/<split>.h5`` -> ``stage_III/<split>/<field>.pt``, what training reads.

Each HDF5 dataset is saved as one contiguous tensor, one column at a time, without holding it
in memory: an uncompressed column is copied from its place in the HDF5 file a mapped window at
a time (:func:`vposer_data.tensorstream.save_file_region`); a compressed one is first inflated,
block by block (on ``num_workers`` threads), into a spill file beside the output, removed once
saved. Only tensors live in the split folder, one per field, all of one length, so the folder
is also readable by the original VPoser loader, which globs ``*.pt``.

For the statistics split (``stats_split``, "train" by default) it also computes each float
field's per-dimension mean, std, min and max (float64, block by block, from a mapping of the
same bytes whose pages are released as it goes; per frame for clips) and writes
``<data_dir>/statistics.pt``, recorded under ``"statistics"`` in the split's record (see
:mod:`vposer_data.statistics`).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vposer_data.atomic import EarlyFlush
from vposer_data.errors import PrepareError
from vposer_data.fields import POSE_BODY, field, required_fields
from vposer_data.h5chunks import column_region, write_column
from vposer_data.interrupts import check
from vposer_data.manifest import STAGE_II
from vposer_data.progress import progress
from vposer_data.records import Stage3Record, StatisticsEntry, TensorEntry
from vposer_data.stages.job import SplitJob
from vposer_data.statistics import column_stats, sample_axes, write_statistics
from vposer_data.tensorstream import save_file_region

__all__ = ["REQUIRED_FIELDS", "run_stage3"]

REQUIRED_FIELDS = required_fields()
#: How many bytes of columns may await their statistics while the next column is saved: the
#: statistics of a small column then run beside the next column's write instead of holding
#: it up; a large one is waited for first, so the statistics never lag far behind.
_STATS_AHEAD_BYTES = 256 << 20


def _column_file(
    dataset: h5py.Dataset, dtype: np.dtype[Any], job: SplitJob, pool: ThreadPoolExecutor
) -> tuple[Path, int, bool]:
    """Where a column's bytes, as ``dtype``, lie in a file: (file, offset, whether it is a
    spill file to remove after use). A contiguous dataset of that dtype is its own region of
    the HDF5 file; any other is written, block by block, to a spill file beside the output."""
    region = column_region(dataset) if dataset.dtype == dtype else None
    if region is not None:
        return region[0], region[1], False
    spill = job.out / f".{dataset.name.strip('/')}.spill"
    try:
        fd = os.open(spill, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            write_column(dataset, fd, dtype, pool)
        finally:
            os.close(fd)
    except OSError as exc:  # a full disk: name the output being made
        spill.unlink(missing_ok=True)
        raise PrepareError(
            f"could not write {job.final / dataset.name.strip('/')}.pt: {exc}"
        ) from exc
    return spill, 0, True


def run_stage3(job: SplitJob) -> Stage3Record:
    """Finalize one split into ``job.out``; returns its manifest record. For the statistics
    split (``stats_split``) it also writes ``<data_dir>/statistics.pt`` and records it (file,
    size, SHA-256, provenance) under ``"statistics"``."""
    split, config = job.split, job.config
    h5_path = job.input_path(STAGE_II)
    with_stats = split == config.stats_split
    fields: dict[str, TensorEntry] = {}
    stats: dict[str, tuple[dict[str, np.ndarray], int]] = {}
    threads = ThreadPoolExecutor(max_workers=max(1, config.num_workers))
    # statistics are computed beside the write of the same column (numpy and the file
    # writes release the GIL)
    stats_thread = ThreadPoolExecutor(max_workers=1)
    flusher = EarlyFlush()  # the disk works through each file while the next is made
    with threads as pool, stats_thread, flusher, h5py.File(h5_path, "r") as h5:
        missing = [name for name in REQUIRED_FIELDS if name not in h5]
        if missing:
            raise PrepareError(f"{h5_path}: fields {missing} missing, expected {REQUIRED_FIELDS}")
        lengths = {name: h5[name].shape[0] for name in h5}
        if len(set(lengths.values())) != 1:
            raise PrepareError(f"{h5_path}: fields of unequal length {lengths}")
        # a clip folder stores per-frame fields (N, T, D): T frames per sample
        clip_frames = h5[POSE_BODY].shape[1] if h5[POSE_BODY].ndim == 3 else None
        # columns whose statistics are still being computed, oldest first, and their bytes
        pending: list[tuple[str, Future[tuple[dict[str, np.ndarray], int]], int]] = []
        for name in progress(list(h5), config.progress, desc=f"Stage III {split}", unit="field"):
            check("stage3.column")
            while pending and sum(size for *_, size in pending) > _STATS_AHEAD_BYTES:
                done, future, _ = pending.pop(0)
                stats[done] = future.result()
            dataset = h5[name]
            dtype = np.dtype(field(name).dtype)
            shape = tuple(dataset.shape)
            source, offset, spill = _column_file(dataset, dtype, job, pool)
            try:
                if dtype.kind == "f" and with_stats:
                    # read from a mapping of the file, released block by block
                    mapped = 0 not in shape
                    column = (
                        np.memmap(source, dtype=dtype, mode="r", offset=offset, shape=shape)
                        if mapped
                        else np.empty(shape, dtype)
                    )
                    axes = sample_axes(name, shape, clip_frames)
                    future = stats_thread.submit(column_stats, column, axes, release=mapped)
                    pending.append((name, future, column.nbytes))
                    del column
                path = job.out / f"{name}.pt"
                record = save_file_region(path, source, offset, shape, dtype, job.final / path.name)
            finally:
                if spill:  # a mapping of it (the statistics') keeps its bytes until done
                    source.unlink()
            fields[name] = TensorEntry(list(shape), str(dtype), **record.as_dict())
            flusher.submit(path)
        for done, future, _ in pending:
            stats[done] = future.result()
    samples = next(iter(lengths.values()))
    line = f"stage III {split}: {samples} samples, {len(fields)} fields"
    entry: StatisticsEntry | None = None
    if with_stats:
        entry = write_statistics(job.manifest.root, split, samples, clip_frames, stats)
        line += f"; statistics of {len(stats)} over {entry.frames} frames -> {entry.file}"
    job.log.info(line)
    return Stage3Record(samples, fields, entry)
