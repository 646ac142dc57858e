"""VPoserDataset: a map-style dataset over one split's Stage III tensors, memory-mapped.

Each ``<field>.pt`` of a split folder is opened with ``torch.load(mmap=True,
weights_only=True)``: nothing is read up front, the pages come from the operating system's
page cache on demand, and DataLoader workers (and DDP ranks on one machine) share them instead
of each holding a copy. A file that is not one plain tensor is refused. When the dataset is
sent to a worker process it travels as its folder and field names and is mapped again there,
so even ``spawn`` workers copy nothing.

``dataset[i]`` returns one sample; ``__getitems__(indices)`` (and ``dataset[indices]``) returns
a whole batch by one ``index_select`` per field. PyTorch's DataLoader calls ``__getitems__``
with each batch's list of indices when the dataset has it, or, with a batch sampler as its
``sampler`` and ``batch_size=None`` (:class:`vposer_data.loader.BatchIndexSampler`),
``dataset[indices]``; either way pair it with ``collate_fn=collate_batch``, which passes the
batch through (the loaders of :class:`vposer_data.VPoserDataModule` do).

A split folder inside a prepared folder (``<data_dir>/stage_III/<split>/``) also tells, from
``<data_dir>/manifest.json``: the frame rate of its samples (:attr:`VPoserDataset.fps`) and the
folder's training statistics (:attr:`VPoserDataset.statistics`); the number of frames per clip
(:attr:`VPoserDataset.clip_frames`) comes from the tensors themselves.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vposer_data.errors import ConfigError, VPoserDataError
from vposer_data.fields import POSE_BODY, default_fields
from vposer_data.manifest import MANIFEST_NAME, STAGE_III, Manifest
from vposer_data.training_statistics import ServesStatistics, TrainingStatistics, read_statistics

__all__ = [
    "DEFAULT_FIELDS",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "VPoserBatch",
    "VPoserDataset",
    "collate_batch",
]

#: The fields a dataset loads by default, those of them a split holds (at least ``pose_body``):
#: the pose parameters, axis-angle (``pose_body_matrot``: the body pose as flattened 3x3
#: rotation matrices). Provenance and shape fields (``seq_id``, ``frame_id``, ``betas``,
#: ``trans``, ``gender``, ``dmpls``) are loaded when asked for by name.
DEFAULT_FIELDS = default_fields()


class DatasetNotFoundError(VPoserDataError, FileNotFoundError):
    """A split folder, or a requested field in it, that does not exist."""


class DatasetFormatError(VPoserDataError, ValueError):
    """A split folder whose files cannot be used: not plain tensors, or of unequal lengths."""


class VPoserBatch(dict):
    """The dict ``__getitems__`` returns: field -> batched tensor.

    It is already a batch: PyTorch's default collate, which expects a list of samples, fails on
    it with a message saying to pass ``collate_fn=collate_batch``.
    """

    def __missing__(self, key: object) -> Any:
        if isinstance(key, int):
            raise TypeError(
                "VPoserDataset.__getitems__ returns a whole batch (a dict of batched tensors), "
                "not a list of samples: build the DataLoader with "
                "collate_fn=vposer_data.dataset.collate_batch"
            )
        raise KeyError(key)


def collate_batch(batch: Any) -> dict[str, torch.Tensor]:
    """The DataLoader ``collate_fn`` for :meth:`VPoserDataset.__getitems__`: the batch as a plain
    dict, already collated."""
    return dict(batch)


def field_names(split_dir: str | Path) -> list[str]:
    """The fields a split folder holds (its ``*.pt`` files), sorted."""
    return sorted(p.stem for p in Path(split_dir).glob("*.pt") if not p.name.startswith("."))


def _unpickler_reason(exc: Exception) -> str:
    """The one line of torch's long ``weights_only`` message that names what was refused."""
    for line in str(exc).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". ")[0].strip()
    return "torch.load(weights_only=True) failed"


def _load_tensor(path: Path) -> torch.Tensor:
    try:
        value = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DatasetFormatError(
            f"{path}: refused, it holds more than plain tensors ({_unpickler_reason(exc)}); "
            "Stage III files are single tensors, re-create the folder with vposer-data prepare"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DatasetFormatError(
            f"{path}: not a readable torch.save file ({type(exc).__name__}: {exc}); "
            "re-create the folder with vposer-data prepare"
        ) from None
    if not isinstance(value, torch.Tensor):
        raise DatasetFormatError(
            f"{path}: holds a {type(value).__name__}, expected one tensor (one field per file)"
        )
    if value.dim() == 0:
        raise DatasetFormatError(
            f"{path}: holds a 0-dimensional tensor, expected one row per sample"
        )
    return value


class VPoserDataset(ServesStatistics, Dataset[dict[str, torch.Tensor]]):
    """The samples of one prepared split, ``stage_III/<split>/``, one tensor per field.

    Args:
        split_dir: the split's folder, e.g. ``vposer_data.manifest.split_dir(data_dir, "train")``.
        fields: the fields to load, by name (the ``.pt`` file stems); default ``None``: the
            :data:`DEFAULT_FIELDS` the folder holds. Ask for ``seq_id`` and ``frame_id`` to trace
            samples back to their source file and frame (see the manifest's ``files``).

    Attributes:
        clip_frames: T, the frames per sample of a clip folder (per-frame fields stored
            (N, T, D), ``pose_body`` 3-dimensional); None for a frame folder (N, D).
        fps: the rate of the samples' frames in Hz (the manifest's ``target_fps``) when the
            folder was sampled on a clock (``sampling`` "fps" or "clips"); None for random
            sampling, or when ``<data_dir>/manifest.json`` is absent.
        statistics: the prepared folder's training statistics (computed on its ``stats_split``,
            whichever split this dataset serves), a mapping field -> ``{"mean", "std", "min",
            "max"}`` (:class:`~vposer_data.training_statistics.TrainingStatistics`); None when
            the folder has none (no manifest, ``stats_split=None``, prepared before statistics
            files existed: :attr:`statistics_missing` says why).
        data_dir: the prepared folder, ``split_dir/../..`` when ``split_dir`` lies in a
            ``stage_III`` folder, else None.

    Raises:
        DatasetNotFoundError: the folder, or a requested field, does not exist (the message
            lists the fields that do).
        DatasetFormatError: a file is not one plain tensor, or fields differ in length.
    """

    def __init__(self, split_dir: str | Path, fields: Sequence[str] | None = None) -> None:
        self.split_dir = Path(split_dir)
        if isinstance(fields, str):
            fields = [fields]
        self.fields: tuple[str, ...] = self._choose_fields(fields)
        self._open()

    def _choose_fields(self, fields: Sequence[str] | None) -> tuple[str, ...]:
        if not self.split_dir.is_dir():
            raise DatasetNotFoundError(
                f"{self.split_dir}: no such split folder"
                + ("" if not self.split_dir.exists() else " (it is a file)")
                + "; prepare the data first (VPoserDataModule(amass_dir=...).prepare_data() or "
                "vposer-data prepare)"
            )
        available = field_names(self.split_dir)
        if fields is None:
            chosen = [name for name in DEFAULT_FIELDS if name in available]
            if POSE_BODY not in chosen:
                raise DatasetNotFoundError(
                    f"{self.split_dir}: no {POSE_BODY}.pt; fields present: {available or 'none'}"
                )
            return tuple(chosen)
        chosen = list(fields)
        if not chosen:
            raise ConfigError(f"fields={fields!r}: expected at least one field name, or None")
        bad = [name for name in chosen if not isinstance(name, str)]
        if bad:
            raise ConfigError(f"fields={fields!r}: expected field names (str), found {bad!r}")
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"fields={fields!r}: a field is named twice")
        missing = [name for name in chosen if name not in available]
        if missing:
            raise DatasetNotFoundError(
                f"{self.split_dir}: no field {', '.join(missing)}; "
                f"fields present: {', '.join(available) or 'none'}"
            )
        return tuple(chosen)

    def _open(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {
            name: _load_tensor(self.split_dir / f"{name}.pt") for name in self.fields
        }
        lengths = {name: int(t.shape[0]) for name, t in self.tensors.items()}
        if len(set(lengths.values())) > 1:
            raise DatasetFormatError(
                f"{self.split_dir}: fields of unequal length {lengths}; the folder is damaged, "
                "re-create it with vposer-data prepare"
            )
        self._length = next(iter(lengths.values()))
        pose_body = self.tensors.get(POSE_BODY)
        if pose_body is None and (self.split_dir / f"{POSE_BODY}.pt").is_file():
            pose_body = _load_tensor(self.split_dir / f"{POSE_BODY}.pt")  # mapped: the header only
        self.clip_frames: int | None = (
            int(pose_body.shape[1]) if pose_body is not None and pose_body.dim() == 3 else None
        )
        self._manifest: Manifest | None = None
        self._statistics: tuple[TrainingStatistics | None, str] | None = None

    # -- what the prepared folder tells --------------------------------------------------------

    @property
    def data_dir(self) -> Path | None:
        """The prepared folder this split belongs to (``split_dir/../..``), or None when the
        split folder does not lie in a ``stage_III`` folder."""
        parent = self.split_dir.parent
        return parent.parent if parent.name == STAGE_III else None

    def manifest(self) -> Manifest | None:
        """The prepared folder's manifest (read once), or None when there is none.

        Raises:
            ManifestError: ``manifest.json`` exists but is unreadable.
        """
        if self._manifest is None:
            root = self.data_dir
            if root is None or not (root / MANIFEST_NAME).is_file():
                return None
            self._manifest = Manifest.load(root)
        return self._manifest

    @property
    def fps(self) -> float | None:
        """Frames per second of the samples, for a folder sampled on a clock (``sampling``
        "fps" or "clips": the manifest's ``target_fps``); else, or without a manifest, None."""
        manifest = self.manifest()
        if manifest is None:
            return None
        config = manifest.settings.get("config", {})
        rate = config.get("target_fps")
        if config.get("sampling") in ("fps", "clips") and rate is not None:
            return float(rate)
        return None

    def _read_statistics(self) -> tuple[TrainingStatistics | None, str]:
        if self._statistics is None:
            manifest = self.manifest()
            if manifest is None:
                self._statistics = (
                    None,
                    f"{self.split_dir}: no prepared folder's manifest.json "
                    "at ../../ (no training statistics)",
                )
            else:
                self._statistics = read_statistics(manifest.root, manifest)
        return self._statistics

    # Workers get the folder and field names and map the files again (nothing is copied).
    def __getstate__(self) -> dict[str, Any]:
        return {"split_dir": self.split_dir, "fields": self.fields}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.split_dir = state["split_dir"]
        self.fields = state["fields"]
        self._open()

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> dict[str, torch.Tensor]:
        """One sample for an int index: field -> tensor (a copy, not a view into the mapped
        file). A batch for a slice, or for a sequence, array or tensor of indices (then as
        :meth:`__getitems__`): field -> tensor with one row per index."""
        if isinstance(index, (int, np.integer)) or (
            isinstance(index, torch.Tensor) and index.dim() == 0
        ):
            return {name: t[index].clone() for name, t in self.tensors.items()}
        if isinstance(index, slice):
            return VPoserBatch((name, t[index].clone()) for name, t in self.tensors.items())
        return self.__getitems__(index)

    def __getitems__(self, indices: Iterable[int] | torch.Tensor) -> VPoserBatch:
        """A batch: field -> tensor of ``len(indices)`` rows, one ``index_select`` per field.

        ``indices`` are in ``[0, len(self))``: a list of ints, as the DataLoader passes, or a
        1-D integer array or tensor (int64 ones are used without a copy).
        """
        index = torch.as_tensor(indices, dtype=torch.long)
        if index.dim() != 1:
            raise ValueError(
                f"indices: expected a 1-D sequence of ints, got shape {tuple(index.shape)}"
            )
        return VPoserBatch((name, t.index_select(0, index)) for name, t in self.tensors.items())

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}{tuple(t.shape[1:])}" for n, t in self.tensors.items())
        return f"VPoserDataset({str(self.split_dir)!r}, {len(self)} samples: {shapes})"
