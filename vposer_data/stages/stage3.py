"""Stage III: ``stage_II/<split>.h5`` -> ``stage_III/<split>/<field>.pt``, what training reads.

Each HDF5 dataset is read whole (one column at a time, so memory holds about one field; its
chunks inflated on ``num_workers`` threads) and saved as one contiguous tensor. Only tensors
live in the split folder, one per field, all of one length, so the folder is also readable by
the original VPoser loader, which globs ``*.pt``.

For the statistics split (``stats_split``, "train" by default) it also computes each float
field's per-dimension mean, std, min and max while the column is in memory (float64, block by
block; per frame for clips) and writes ``<data_dir>/statistics.pt``, recorded under
``"statistics"`` in the split's record (see :mod:`vposer_data.statistics`).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import h5py
import numpy as np

from vposer_data.atomic import EarlyFlush
from vposer_data.errors import PrepareError
from vposer_data.h5chunks import read_column
from vposer_data.progress import progress
from vposer_data.stages.job import SplitJob
from vposer_data.statistics import column_stats, sample_axes, write_statistics
from vposer_data.tensorfile import save_field

__all__ = ["REQUIRED_FIELDS", "run_stage3"]

REQUIRED_FIELDS = ("root_orient", "pose_body")
#: How many bytes of columns may await their statistics while the next column is saved: the
#: statistics of a small column then run beside the next column's write instead of holding
#: it up; a large one is waited for first, so memory still holds about one large column.
_STATS_AHEAD_BYTES = 256 << 20


def run_stage3(job: SplitJob) -> dict[str, Any]:
    """Finalize one split into ``job.out``; returns its manifest record. For the statistics
    split (``stats_split``) it also writes ``<data_dir>/statistics.pt`` and records it (file,
    size, SHA-256, provenance) under ``"statistics"``."""
    split, config = job.split, job.config
    h5_path = job.input_path("stage_II")
    with_stats = split == config.stats_split
    fields: dict[str, dict[str, Any]] = {}
    stats: dict[str, tuple[dict[str, np.ndarray], int]] = {}
    threads = ThreadPoolExecutor(max_workers=max(1, config.num_workers))
    # statistics are computed beside the write of the same column (numpy and the file
    # writes release the GIL), one column at a time so memory holds one field
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
        clip_frames = h5["pose_body"].shape[1] if h5["pose_body"].ndim == 3 else None
        # columns whose statistics are still being computed, oldest first, and their bytes
        pending: list[tuple[str, Future[tuple[dict[str, np.ndarray], int]], int]] = []
        for name in progress(list(h5), config.progress, desc=f"Stage III {split}", unit="field"):
            while pending and sum(size for *_, size in pending) > _STATS_AHEAD_BYTES:
                done, future, _ = pending.pop(0)
                stats[done] = future.result()
            array = read_column(h5[name], pool)
            if array.dtype.kind == "f":
                array = array.astype(np.float32, copy=False)
                if with_stats:
                    axes = sample_axes(name, array.shape, clip_frames)
                    future = stats_thread.submit(column_stats, array, axes)
                    pending.append((name, future, array.nbytes))
            fields[name] = save_field(job.out, name, array, job.final)
            flusher.submit(job.out / f"{name}.pt")
            del array
        for done, future, _ in pending:
            stats[done] = future.result()
    samples = next(iter(lengths.values()))
    record_out: dict[str, Any] = {"samples": samples, "fields": fields}
    line = f"stage III {split}: {samples} samples, {len(fields)} fields"
    if with_stats:
        entry = write_statistics(job.manifest.root, split, samples, clip_frames, stats)
        record_out["statistics"] = entry
        line += f"; statistics of {len(stats)} over {entry['frames']} frames -> {entry['file']}"
    job.log.info(line)
    return record_out
