"""Stage II: ``stage_I/<split>/*.pt`` -> augmented ``stage_II/<split>.h5``.

The split's rows are cut into batches; a torch ``DataLoader`` with ``num_workers`` processes
augments them in parallel (each batch's random draws seeded from the seed, the pass and the
batch index, so the result does not depend on the worker count), and this process, the only
writer, puts each batch at its place in one chunked, compressed HDF5 dataset per field.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vposer_data import __version__
from vposer_data.atomic import atomic_path
from vposer_data.augment import AugmentSpec, apply_augmentations
from vposer_data.config import PrepareConfig

__all__ = ["batch_seed", "run_stage2"]

_CHUNK_BYTES = 1 << 20


def batch_seed(seed: int, augment_pass: int, batch: int) -> int:
    """The generator seed of one batch of one pass."""
    digest = hashlib.sha256(f"{seed}:{augment_pass}:{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class AugmentedBatches(Dataset[dict[str, torch.Tensor]]):
    """Item ``i`` is batch ``i % num_batches`` of pass ``i // num_batches``, augmented.

    Holds only paths until first used, so it pickles cheaply into worker processes, where the
    Stage I tensors are memory-mapped (the pages are shared, not copied).
    """

    def __init__(
        self,
        stage1_dir: Path,
        fields: list[str],
        num_rows: int,
        batch_size: int,
        passes: int,
        specs: tuple[AugmentSpec, ...],
        seed: int,
    ) -> None:
        self.stage1_dir = stage1_dir
        self.fields = fields
        self.num_rows = num_rows
        self.batch_size = batch_size
        self.num_batches = -(-num_rows // batch_size)
        self.passes = passes
        self.specs = specs
        self.seed = seed
        self._tensors: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.passes * self.num_batches

    def _load(self) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            self._tensors = {
                name: torch.load(self.stage1_dir / f"{name}.pt", mmap=True, weights_only=True)
                for name in self.fields
            }
        return self._tensors

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        augment_pass, batch = divmod(index, self.num_batches)
        start = batch * self.batch_size
        stop = min(start + self.batch_size, self.num_rows)
        rows = {name: tensor[start:stop] for name, tensor in self._load().items()}
        generator = torch.Generator().manual_seed(batch_seed(self.seed, augment_pass, batch))
        out = apply_augmentations(rows, self.specs, generator)
        # Own the memory: a view of a memory-mapped file must not cross the process boundary.
        return {name: tensor.contiguous().clone() for name, tensor in out.items()}


def _create_datasets(
    h5: h5py.File, batch: dict[str, torch.Tensor], total: int, config: PrepareConfig
) -> None:
    options: dict[str, Any] = {}
    if config.hdf5_compression == "gzip":
        options = {
            "compression": "gzip",
            "compression_opts": config.hdf5_compression_level,
            "shuffle": True,
        }
    elif config.hdf5_compression == "lzf":
        options = {"compression": "lzf", "shuffle": True}
    for name, tensor in batch.items():
        row_shape = tuple(tensor.shape[1:])
        row_bytes = tensor.element_size() * int(np.prod(row_shape, dtype=np.int64))
        chunk_rows = max(1, min(total, _CHUNK_BYTES // max(1, row_bytes)))
        h5.create_dataset(
            name,
            shape=(total, *row_shape),
            dtype=tensor.numpy().dtype,
            chunks=(chunk_rows, *row_shape),
            **options,
        )


def run_stage2(
    split: str,
    stage1_dir: Path,
    stage1_record: dict[str, Any],
    out_path: Path,
    config: PrepareConfig,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Augment one split into one HDF5 file; returns its manifest record."""
    num_rows = int(stage1_record["samples"])
    fields = list(stage1_record["fields"])
    dataset = AugmentedBatches(
        stage1_dir,
        fields,
        num_rows,
        config.batch_size,
        config.augment_passes,
        config.augmentations,
        config.seed,
    )
    loader = DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=config.num_workers,
        prefetch_factor=2 if config.num_workers else None,
    )
    total = num_rows * config.augment_passes
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shapes: dict[str, dict[str, Any]] = {}
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
            h5.attrs["package_version"] = __version__
            h5.attrs["split"] = split
            h5.attrs["augment_passes"] = config.augment_passes
            h5.attrs["source_rows"] = num_rows
            for index, batch in enumerate(
                tqdm(
                    loader,
                    total=len(dataset),
                    desc=f"Stage II {split}",
                    unit="batch",
                    disable=config.progress_disabled(),
                )
            ):
                if index == 0:
                    _create_datasets(h5, batch, total, config)
                augment_pass, batch_index = divmod(index, dataset.num_batches)
                start = augment_pass * num_rows + batch_index * config.batch_size
                for name, tensor in batch.items():
                    h5[name][start : start + tensor.shape[0]] = tensor.numpy()
            for name in h5:
                shapes[name] = {"shape": list(h5[name].shape), "dtype": str(h5[name].dtype)}
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    log(f"stage II {split}: {total} rows ({config.augment_passes} pass(es)), fields {list(shapes)}")
    return {
        "samples": total,
        "file": out_path.name,
        "bytes": out_path.stat().st_size,
        "fields": shapes,
    }
