"""Training statistics, computed and stored: per field and per dimension, the mean, standard
deviation, minimum and maximum of the statistics split (``PrepareConfig.stats_split``,
``"train"`` by default), never of validation or test.

Stage III computes them while it finalizes that split: every float field (not ``seq_id``,
``frame_id``, ``gender``), accumulated in float64 block by block (no full-size float64 copy;
Chan et al.'s pairwise merge of mean and sum of squared deviations). A dimension is one number of
a frame: for a frame folder, ``pose_body`` (N, 63) has 63 dimensions, each over the N samples;
for a clip folder, a per-frame field (N, T, D) has D dimensions, each over all N*T frames, and a
per-clip field (N, D) over the N clips. ``std`` is the population standard deviation (ddof=0).

Storage: ``<data_dir>/statistics.pt`` (:data:`STATISTICS_NAME`), one ``torch.save`` dict,
loadable with ``torch.load(..., weights_only=True)``::

    {
        "format_version": 1,
        "split": "train",          # the split they were computed on
        "samples": N,              # its samples (frames, or clips)
        "frames": N or N*T,        # its frames
        "clip_frames": None or T,
        "counts": {field: rows},   # the rows each field's statistics are over (N*T or N)
        "fields": {field: {"mean": t, "std": t, "min": t, "max": t}},   # float32 tensors
    }

each tensor shaped as one frame's value of the field (``(63,)`` for ``pose_body``; ``()`` for a
scalar per sample). It is written atomically and recorded, with its size and SHA-256 and the
same provenance, under ``"statistics"`` in the manifest's Stage III record of the statistics
split; the manifest itself holds no per-dimension numbers. The file is checked against that
record whenever it is read.

Read back, checked and served by :mod:`vposer_data.training_statistics`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from vposer_data.atomic import atomic_path
from vposer_data.errors import PrepareError
from vposer_data.fields import field
from vposer_data.interrupts import check
from vposer_data.memory import release_mapped_pages
from vposer_data.records import StatisticsEntry

__all__ = [
    "STATISTICS",
    "STATISTICS_FORMAT",
    "STATISTICS_NAME",
    "column_stats",
    "sample_axes",
    "write_statistics",
]

#: The statistics file, in the prepared folder (beside ``manifest.json``).
STATISTICS_NAME = "statistics.pt"
STATISTICS_FORMAT = 1
#: The statistics kept per field and dimension.
STATISTICS = ("mean", "std", "min", "max")

_BLOCK_ROWS = 1 << 13


# -- computing ---------------------------------------------------------------------------------


def sample_axes(name: str, shape: Sequence[int], clip_frames: int | None) -> int:
    """How many leading axes of a stored field index frames (1 or 2): the statistics are over
    those axes, per remaining dimension.

    In a frame folder (``clip_frames`` None) every field is (N, ...): 1. In a clip folder a
    per-frame field is (N, T, ...): 2; a per-clip field (``betas``, canonicalisation) is
    (N, ...): 1. A field the vocabulary (:mod:`vposer_data.fields`) declares tells which it is;
    for another, (N, T, D) with T = ``clip_frames`` counts as per frame.
    """
    if clip_frames is None or len(shape) < 2 or shape[1] != clip_frames:
        return 1
    try:
        return 2 if field(name).per == "frame" else 1
    except KeyError:  # not in the vocabulary: judged by its shape
        return 2 if len(shape) >= 3 else 1


def _release_read(flat: np.ndarray, start: int, stop: int) -> int:
    """Unmap the pages of rows ``start .. stop`` of a file mapping (and the page holding the
    start of row ``start``); returns ``stop``."""
    row_bytes = flat.strides[0]
    release_mapped_pages(flat.ctypes.data + start * row_bytes, (stop - start) * row_bytes)
    return stop


def column_stats(
    array: np.ndarray, axes: int = 1, block_rows: int = _BLOCK_ROWS, release: bool = False
) -> tuple[dict[str, np.ndarray], int]:
    """Per dimension mean, (population) std, min and max of ``array`` over its first ``axes``
    axes, as float64 arrays shaped ``array.shape[axes:]``, and the number of rows they are over.

    Accumulated in float64 ``block_rows`` rows at a time, so that no full-size float64 copy is
    made (Chan et al.'s pairwise merge of mean and M2). No rows: every statistic is NaN.
    ``release``: ``array`` is a read-only file mapping (never anonymous memory, whose pages
    would be lost), whose pages are unmapped from this process once read, so that it holds
    about one block of the column, not the column.
    """
    feature = tuple(array.shape[axes:])
    rows = int(np.prod(array.shape[:axes], dtype=np.int64))
    width = int(np.prod(feature, dtype=np.int64))
    flat = array.reshape(rows, width)
    count = 0
    mean = np.zeros(width)
    m2 = np.zeros(width)
    low = np.full(width, np.inf)
    high = np.full(width, -np.inf)
    # one float64 block, reused: each operation works in place on memory already touched
    buffer = np.empty((min(block_rows, rows), width))
    released = 0  # rows of the source whose pages were released
    for start in range(0, rows, block_rows):
        check("stats.block")  # on a helper thread: the caller gets the stop with the result
        source = flat[start : start + block_rows]
        n = source.shape[0]
        block = buffer[:n]
        np.copyto(block, source)
        if release:  # from where the last block ended: pages straddling two blocks go too
            released = _release_read(flat, released, start + n)
        np.minimum(low, block.min(axis=0), out=low)
        np.maximum(high, block.max(axis=0), out=high)
        block_mean = np.add.reduce(block, axis=0) / n  # what block.mean(axis=0) computes
        np.subtract(block, block_mean, out=block)
        np.square(block, out=block)
        block_m2 = np.add.reduce(block, axis=0)
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + block_m2 + delta**2 * (count * n / total)
        count = total
    if count == 0:
        nan = np.full(flat.shape[1], np.nan)
        mean, m2, low, high = nan, nan, nan, nan
    std = np.sqrt(m2 / max(count, 1))
    values = {"mean": mean, "std": std, "min": low, "max": high}
    return {key: value.reshape(feature) for key, value in values.items()}, count


# -- storing -----------------------------------------------------------------------------------


def write_statistics(
    root: Path,
    split: str,
    samples: int,
    clip_frames: int | None,
    stats: Mapping[str, tuple[Mapping[str, np.ndarray], int]],
) -> StatisticsEntry:
    """Write ``root/statistics.pt`` atomically (flushed to disk before the rename) from
    ``stats`` (field -> (:func:`column_stats` result, rows)); returns the manifest entry: file,
    size, SHA-256 and provenance. The bytes depend only on the values (torch.save to a buffer)."""
    frames = samples * (clip_frames or 1)
    payload = {
        "format_version": STATISTICS_FORMAT,
        "split": split,
        "samples": int(samples),
        "frames": int(frames),
        "clip_frames": None if clip_frames is None else int(clip_frames),
        "counts": {name: int(rows) for name, (_, rows) in stats.items()},
        "fields": {
            name: {
                key: torch.from_numpy(np.array(values[key], dtype=np.float32))  # keeps 0-d
                for key in STATISTICS
            }
            for name, (values, _) in stats.items()
        },
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    path = root / STATISTICS_NAME
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # a full disk, a file-size limit: say which file
        raise PrepareError(f"could not write {path}: {exc}") from exc
    return StatisticsEntry(
        file=STATISTICS_NAME,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        split=split,
        samples=int(samples),
        frames=int(frames),
        clip_frames=None if clip_frames is None else int(clip_frames),
        fields=list(stats),
    )
