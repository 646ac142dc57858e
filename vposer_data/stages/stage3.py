"""Stage III: ``stage_II/<split>.h5`` -> ``stage_III/<split>/<field>.pt``, what training reads.

Each HDF5 dataset is read whole (one column at a time, so memory holds one field; its chunks
inflated on ``num_workers`` threads) and saved as one contiguous tensor. Only tensors live in
the split folder, one per field, all of one length, so the folder is also readable by the
original VPoser loader, which globs ``*.pt``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from vposer_data.errors import PrepareError
from vposer_data.h5chunks import read_column
from vposer_data.stages.job import SplitJob
from vposer_data.tensorfile import save_field

__all__ = ["REQUIRED_FIELDS", "run_stage3"]

REQUIRED_FIELDS = ("root_orient", "pose_body")


_STATS_BLOCK_ROWS = 1 << 13


def _column_stats(array: np.ndarray) -> dict[str, list[float]]:
    """Per-column mean and (population) standard deviation, in float64, block by block so that
    no full-size float64 copy is ever made (Chan et al.'s pairwise merge of mean and M2)."""
    flat = array.reshape(array.shape[0], -1)
    count = 0
    mean = np.zeros(flat.shape[1])
    m2 = np.zeros(flat.shape[1])
    for start in range(0, flat.shape[0], _STATS_BLOCK_ROWS):
        block = flat[start : start + _STATS_BLOCK_ROWS].astype(np.float64)
        n = block.shape[0]
        block_mean = block.mean(axis=0)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0)
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + block_m2 + delta**2 * (count * n / total)
        count = total
    std = np.sqrt(m2 / max(count, 1))
    return {"mean": mean.tolist(), "std": std.tolist()}


def run_stage3(job: SplitJob) -> dict[str, Any]:
    """Finalize one split into ``job.out``; returns its manifest record, with per-field
    statistics when it is the statistics split (``stats_split``)."""
    split, config = job.split, job.config
    h5_path = job.input_path("stage_II")
    with_stats = split == config.stats_split
    fields: dict[str, dict[str, Any]] = {}
    stats: dict[str, dict[str, list[float]]] = {}
    threads = ThreadPoolExecutor(max_workers=max(1, config.num_workers))
    with threads as pool, h5py.File(h5_path, "r") as h5:
        missing = [name for name in REQUIRED_FIELDS if name not in h5]
        if missing:
            raise PrepareError(f"{h5_path}: fields {missing} missing, expected {REQUIRED_FIELDS}")
        lengths = {name: h5[name].shape[0] for name in h5}
        if len(set(lengths.values())) != 1:
            raise PrepareError(f"{h5_path}: fields of unequal length {lengths}")
        for name in tqdm(
            list(h5), desc=f"Stage III {split}", unit="field", disable=config.progress_disabled()
        ):
            array = read_column(h5[name], pool)
            if array.dtype.kind == "f":
                array = array.astype(np.float32, copy=False)
                if with_stats:
                    stats[name] = _column_stats(array)
            fields[name] = save_field(job.out, name, array, job.final)
            del array
    samples = next(iter(lengths.values()))
    job.log.info(f"stage III {split}: {samples} samples, {len(fields)} fields")
    record_out: dict[str, Any] = {"samples": samples, "fields": fields}
    if with_stats:
        record_out["stats"] = stats
    return record_out
