"""Training statistics: per field and per dimension, the mean, standard deviation, minimum and
maximum of the statistics split (``PrepareConfig.stats_split``, ``"train"`` by default), never
of validation or test.

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

Served as :attr:`vposer_data.VPoserDataModule.statistics` and
:attr:`vposer_data.VPoserDataset.statistics` (:class:`TrainingStatistics`, a mapping field ->
``{"mean", "std", "min", "max"}``), and used by ``VPoserDataModule(normalize=[...])`` through
:class:`Normalizer`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vposer_data.atomic import atomic_path, release_mapped_pages
from vposer_data.errors import REBUILD_HINT, ConfigError, PrepareError
from vposer_data.fields import field
from vposer_data.manifest import Manifest, ManifestError, check_file
from vposer_data.records import StatisticsEntry

__all__ = [
    "NORMALIZE_EPS",
    "STATISTICS",
    "STATISTICS_NAME",
    "Normalizer",
    "TrainingStatistics",
    "column_stats",
    "load_statistics",
    "read_statistics",
    "sample_axes",
    "statistics_problems",
    "write_statistics",
]

#: The statistics file, in the prepared folder (beside ``manifest.json``).
STATISTICS_NAME = "statistics.pt"
STATISTICS_FORMAT = 1
#: The statistics kept per field and dimension.
STATISTICS = ("mean", "std", "min", "max")
#: Normalization divides by ``max(std, NORMALIZE_EPS)``: a dimension constant over the
#: statistics split (std 0) maps to 0 instead of a division by zero.
NORMALIZE_EPS = 1e-6

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


# -- reading -----------------------------------------------------------------------------------


class TrainingStatistics(Mapping[str, dict[str, torch.Tensor]]):
    """The training statistics of a prepared folder: field -> ``{"mean", "std", "min", "max"}``,
    float32 tensors shaped as one frame's value of the field (``pose_body``: ``(63,)``).

    A read-only mapping (``dict(stats)`` gives a plain dict), with its provenance:

    Attributes:
        split: the split they were computed on (``stats_split``, ``"train"`` by default).
        samples: that split's samples (frames, or clips).
        frames: that split's frames (``samples * clip_frames`` for clips).
        clip_frames: T for a clip folder, else None.
        counts: field -> the rows its statistics are over (``frames`` for per-frame fields,
            ``samples`` for per-clip ones).
        path: the file they were read from.
    """

    def __init__(self, payload: Mapping[str, Any], path: Path) -> None:
        self.path = path
        self.split: str = payload["split"]
        self.samples: int = int(payload["samples"])
        self.frames: int = int(payload["frames"])
        clip_frames = payload.get("clip_frames")
        self.clip_frames: int | None = None if clip_frames is None else int(clip_frames)
        self.counts: dict[str, int] = {k: int(v) for k, v in payload["counts"].items()}
        self._fields: dict[str, dict[str, torch.Tensor]] = {
            name: {key: values[key] for key in STATISTICS}
            for name, values in payload["fields"].items()
        }

    def __getitem__(self, name: str) -> dict[str, torch.Tensor]:
        try:
            return dict(self._fields[name])
        except KeyError:
            raise KeyError(
                f"no training statistics for {name!r}; they cover the float fields "
                f"{', '.join(self._fields) or 'none'} of split {self.split!r}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return (
            f"TrainingStatistics(split={self.split!r}, samples={self.samples}, "
            f"frames={self.frames}, fields={list(self._fields)})"
        )


def _stats_split(manifest: Manifest) -> str | None:
    config = manifest.settings.get("config", {})
    split: str | None = config.get("stats_split", "train")  # absent: before the setting
    return split


def _entry(manifest: Manifest) -> tuple[StatisticsEntry | None, str]:
    """The manifest's ``statistics`` entry, or None and why there is none."""
    if not manifest.exists:
        return None, f"{manifest.root}: no manifest.json, nothing is prepared there"
    split = _stats_split(manifest)
    if split is None:
        return None, f"{manifest.root} was prepared with stats_split=None (no statistics)"
    record = manifest.stage3(split)
    if record is None:
        return None, (
            f"{manifest.root}: the statistics split {split!r} is not finalized (Stage III has "
            "no record of it); run prepare_data() first"
        )
    entry = record.statistics
    if entry is None:
        if record.legacy_stats:
            return None, (
                f"{manifest.root} was prepared by an earlier vposer_data, which kept only "
                f"mean and std in manifest.json and wrote no statistics file. {REBUILD_HINT}."
            )
        return None, f"{manifest.root}: the {split!r} record holds no statistics. {REBUILD_HINT}."
    return entry, ""


def statistics_problems(manifest: Manifest, checksums: bool = False) -> list[str]:
    """Problems with the recorded statistics file of a folder: missing, resized, or (with
    ``checksums``) altered. Empty when it is intact or none is recorded."""
    entry, _ = _entry(manifest)
    if entry is None:
        return []
    problem = check_file(manifest.root / entry.file, entry.check, checksums)
    return [] if problem is None else [problem]


def read_statistics(
    data_dir: str | Path, manifest: Manifest | None = None
) -> tuple[TrainingStatistics | None, str]:
    """The training statistics of a prepared folder, or None and the reason there are none (no
    manifest, ``stats_split=None``, the split not finalized yet, a folder from before statistics
    files).

    Raises:
        ManifestError: the recorded file is missing, altered or unreadable (names it).
    """
    manifest = Manifest.load(data_dir) if manifest is None else manifest
    entry, why = _entry(manifest)
    if entry is None:
        return None, why
    problems = statistics_problems(manifest, checksums=True)
    if problems:
        raise ManifestError(
            f"{manifest.root}: the training statistics no longer match manifest.json:\n  "
            + "\n  ".join(problems)
            + f"\n{REBUILD_HINT}."
        )
    path = manifest.root / entry.file
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        statistics = TrainingStatistics(payload, path)
    except Exception as exc:  # a file of another format that matches its record
        raise ManifestError(
            f"{path}: not a statistics file of format {STATISTICS_FORMAT} "
            f"({type(exc).__name__}: {exc}).\n{REBUILD_HINT}."
        ) from None
    return statistics, ""


def load_statistics(data_dir: str | Path) -> TrainingStatistics | None:
    """The training statistics of a prepared folder, or None when it holds none (see
    :func:`read_statistics`, which also says why)."""
    return read_statistics(data_dir)[0]


# -- normalizing -------------------------------------------------------------------------------


class Normalizer:
    """Standardises fields of a batch with the training statistics: ``(x - mean) / scale``,
    ``scale = max(std, eps)`` (:data:`NORMALIZE_EPS`); :meth:`denormalize` undoes it.

    Called on a batch it normalizes it, so that it serves as a DataLoader ``collate_fn`` for
    :meth:`VPoserDataset.__getitems__` (the batch comes back as a plain dict). It pickles with
    its few small tensors, for worker processes.

    Raises:
        ConfigError: a field without statistics (names it, and those that have them).
    """

    def __init__(
        self,
        statistics: Mapping[str, Mapping[str, torch.Tensor]] | None,
        fields: Sequence[str],
        eps: float = NORMALIZE_EPS,
        why_none: str = "",
    ) -> None:
        self.fields = tuple(fields)
        if statistics is None:
            raise ConfigError(
                f"normalize={list(self.fields)}: no training statistics to normalize with"
                + (f" ({why_none})" if why_none else "")
            )
        missing = [name for name in self.fields if name not in statistics]
        if missing:
            raise ConfigError(
                f"normalize={list(self.fields)}: no training statistics for "
                f"{', '.join(missing)}; they cover the float fields "
                f"{', '.join(statistics) or 'none'}"
            )
        self.eps = float(eps)
        self.mean = {name: statistics[name]["mean"].to(torch.float32) for name in self.fields}
        self.scale = {
            name: statistics[name]["std"].to(torch.float32).clamp_min(self.eps)
            for name in self.fields
        }

    def normalize(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A new dict: the normalized fields standardised, the others as they are (a field
        absent from ``batch`` is skipped)."""
        out = dict(batch)
        for name in self.fields:
            if name in out:
                x = out[name]
                mean, scale = self.mean[name], self.scale[name]
                out[name] = torch.sub(x, mean.to(x.device, x.dtype)).div_(
                    scale.to(x.device, x.dtype)
                )
        return out

    def denormalize(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A new dict: the normalized fields back in their units, ``x * scale + mean``."""
        out = dict(batch)
        for name in self.fields:
            if name in out:
                x = out[name]
                mean, scale = self.mean[name], self.scale[name]
                out[name] = torch.mul(x, scale.to(x.device, x.dtype)).add_(
                    mean.to(x.device, x.dtype)
                )
        return out

    def __call__(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.normalize(batch)

    def __repr__(self) -> str:
        return f"Normalizer(fields={list(self.fields)}, eps={self.eps})"
