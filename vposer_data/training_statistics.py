"""Training statistics, served: read back from a prepared folder (checked against the
manifest's record), as :class:`TrainingStatistics`, and applied by :class:`Normalizer`.

Served as :attr:`vposer_data.VPoserDataModule.statistics` and
:attr:`vposer_data.VPoserDataset.statistics` (a mapping field -> ``{"mean", "std", "min",
"max"}``), and used by ``VPoserDataModule(normalize=[...])``. How they are computed and the
file's format: :mod:`vposer_data.statistics`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vposer_data.errors import REBUILD_HINT, ConfigError
from vposer_data.manifest import Manifest, ManifestError, check_file
from vposer_data.records import StatisticsEntry
from vposer_data.statistics import STATISTICS, STATISTICS_FORMAT

__all__ = [
    "NORMALIZE_EPS",
    "Normalizer",
    "ServesStatistics",
    "TrainingStatistics",
    "load_statistics",
    "read_statistics",
    "statistics_problems",
]

#: Normalization divides by ``max(std, NORMALIZE_EPS)``: a dimension constant over the
#: statistics split (std 0) maps to 0 instead of a division by zero.
NORMALIZE_EPS = 1e-6


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


class ServesStatistics:
    """:attr:`statistics` and :attr:`statistics_missing` of what serves a prepared folder (its
    data module, its datasets), which reads them with ``_read_statistics``."""

    def _read_statistics(self) -> tuple[TrainingStatistics | None, str]:
        raise NotImplementedError

    @property
    def statistics(self) -> TrainingStatistics | None:
        """The prepared folder's training statistics: a mapping field -> ``{"mean", "std",
        "min", "max"}`` of float32 tensors shaped as one frame's value of the field
        (``pose_body``: ``(63,)``), for every float field, computed on the ``stats_split``
        ("train" by default) and never on validation or test; per frame for clip folders.
        Provenance as attributes: ``split``, ``samples``, ``frames``, ``counts`` (see
        :class:`TrainingStatistics`).

        None when the folder holds none (not prepared yet, ``stats_split=None``, or prepared
        by a vposer_data from before statistics files); :attr:`statistics_missing` says why.

        Raises:
            ManifestError: the recorded statistics file is missing or altered.
        """
        return self._read_statistics()[0]

    @property
    def statistics_missing(self) -> str:
        """Why :attr:`statistics` is None; empty when there are statistics."""
        return self._read_statistics()[1]


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
