"""VPoserDataModule: AMASS to batches for a Lightning ``Trainer``.

``prepare_data`` runs the three stages once (disk only; Lightning calls it on one process per
node, and the folder's lock makes any extra call wait and then find the work done).
``setup(stage)`` checks the prepared folder against its manifest and maps the splits that
stage needs. The loaders fetch each batch with one fancy index per field: the training loader's
sampler yields whole batches of indices (:class:`~vposer_data.loader.BatchIndexSampler`), the
others batch in order through :meth:`VPoserDataset.__getitems__`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vposer_data.config import PrepareConfig, settings_differences
from vposer_data.dataset import VPoserDataset, collate_batch
from vposer_data.errors import PrepareError, StaleOutputError
from vposer_data.loader import BatchDataLoader, BatchIndexSampler, DistributedBatchIndexSampler
from vposer_data.manifest import Manifest
from vposer_data.prepare import output_identity, prepare_vposer_datasets, split_dir
from vposer_data.splits import AMASS_SPLITS, normalize_splits

__all__ = ["STAGE_SPLITS", "VPoserDataModule"]

_log = logging.getLogger(__name__)

TRAIN, VALD, TEST = "train", "vald", "test"
#: The splits each ``setup`` stage maps (``None``: all three).
STAGE_SPLITS: dict[str | None, tuple[str, ...]] = {
    "fit": (TRAIN, VALD),
    "validate": (VALD,),
    "test": (TEST,),
    "predict": (TEST,),
    None: (TRAIN, VALD, TEST),
}


class VPoserDataModule(pl.LightningDataModule):
    """VPoser training data from AMASS, prepared once, served by memory-mapped batches.

    Args:
        data_dir: the prepared folder (made by ``prepare_data`` when ``amass_dir`` is given).
        amass_dir: the AMASS root; ``None`` (default) when ``data_dir`` is already prepared.
        splits: split name -> AMASS dataset names; default ``None``: :data:`AMASS_SPLITS`.
            Training reads ``train``, validation ``vald``, test and predict ``test``.
        fields: the fields each batch holds; default ``None``: the pose fields present
            (:data:`vposer_data.dataset.POSE_FIELDS`).
        batch_size: samples per batch, 512.
        num_workers: DataLoader worker processes, 0 (batches are one fancy index per field,
            so the main process is usually fast enough).
        pin_memory: default ``None``: pin only when training on a CUDA device.
        persistent_workers: default ``None``: keep workers alive when ``num_workers > 0``.
        seed: seeds the training shuffle (also under DDP, where each rank gets a disjoint share).
        prepare_data_per_node: as in Lightning: ``False`` prepares once for a whole multi-node
            job when ``data_dir`` is on a shared file system.
        keep_rate, trim, sampling, target_fps, default_fps, augmentations, augment_passes,
        strict, hdf5_compression, hdf5_compression_level, progress: the
            :class:`~vposer_data.PrepareConfig` settings of the same names (defaults: the
            original VPoser recipe).
        prepare_seed: ``PrepareConfig.seed``, the seed of subsampling and augmentation, 0.
        prepare_num_workers: ``PrepareConfig.num_workers``, 2.
        prepare_batch_size: ``PrepareConfig.batch_size``, 8192.

    Raises:
        ValueError: an argument out of range (the message shows the value).
    """

    def __init__(
        self,
        data_dir: str | Path,
        amass_dir: str | Path | None = None,
        splits: dict[str, list[str]] | None = None,
        fields: list[str] | None = None,
        batch_size: int = 512,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        seed: int = 0,
        prepare_data_per_node: bool = True,
        keep_rate: float = 0.3,
        trim: float = 0.1,
        sampling: str = "random",
        target_fps: float | None = None,
        prepare_seed: int = 0,
        default_fps: float | None = None,
        augmentations: list[str | dict[str, Any]] | None = None,
        augment_passes: int = 1,
        prepare_num_workers: int = 2,
        prepare_batch_size: int = 8192,
        strict: bool = False,
        hdf5_compression: str = "gzip",
        hdf5_compression_level: int = 1,
        progress: bool | None = None,
    ) -> None:
        super().__init__()
        problems = []
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            problems.append(f"batch_size={batch_size!r}: expected an integer >= 1")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            problems.append(f"num_workers={num_workers!r}: expected an integer >= 0")
        elif persistent_workers and num_workers == 0:
            problems.append("persistent_workers=True: needs num_workers > 0")
        if isinstance(seed, bool) or not isinstance(seed, int):
            problems.append(f"seed={seed!r}: expected an integer")
        if splits is not None and (not isinstance(splits, Mapping) or not splits):
            problems.append(
                f"splits={splits!r}: expected a mapping such as "
                "{'train': ['CMU', ...], 'vald': [...], 'test': [...]}, or None"
            )
        if fields is not None and (isinstance(fields, str) or not fields):
            problems.append(f"fields={fields!r}: expected a list of field names, or None")
        if problems:
            raise ValueError("invalid VPoserDataModule arguments: " + "; ".join(problems))
        self.save_hyperparameters()
        self.prepare_data_per_node = prepare_data_per_node
        self.data_dir = Path(data_dir)
        self.amass_dir = None if amass_dir is None else Path(amass_dir)
        self.splits = normalize_splits(AMASS_SPLITS if splits is None else splits)
        self.fields = None if fields is None else list(fields)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.seed = seed
        self.prepare_config = PrepareConfig(
            keep_rate=keep_rate,
            trim=trim,
            sampling=sampling,
            target_fps=target_fps,
            seed=prepare_seed,
            default_fps=default_fps,
            augmentations=augmentations,  # type: ignore[arg-type]
            augment_passes=augment_passes,
            num_workers=prepare_num_workers,
            batch_size=prepare_batch_size,
            strict=strict,
            hdf5_compression=hdf5_compression,
            hdf5_compression_level=hdf5_compression_level,
            progress=progress,
        )
        self.datasets: dict[str, VPoserDataset] = {}
        self._checked = False

    # -- preparation (disk only) ---------------------------------------------------------------

    def _not_prepared(self, why: str) -> PrepareError:
        return PrepareError(
            f"{self.data_dir}: {why}, and amass_dir is None. Pass amass_dir=<the AMASS root "
            "folder> (data.amass_dir in a LightningCLI config) so that prepare_data prepares "
            f"it, or run `vposer-data prepare --amass-dir <AMASS> --out {self.data_dir}`, "
            "or point data_dir at a prepared folder"
        )

    def prepare_data(self) -> None:
        """Run the three stages into ``data_dir`` unless they are done (no state is set)."""
        if self.amass_dir is None and not Manifest.load(self.data_dir).complete:
            # checked here so that a mistyped data_dir leaves nothing behind on disk
            raise self._not_prepared("nothing is prepared here (no complete manifest.json)")
        prepare_vposer_datasets(
            self.splits, self.amass_dir, self.data_dir, logger=_log, config=self.prepare_config
        )

    # -- loading -------------------------------------------------------------------------------

    def check_prepared(self) -> Manifest:
        """The folder's manifest, after checking that preparation finished with these settings
        and that every final file has its recorded size.

        Raises:
            PrepareError: nothing (complete) is prepared at ``data_dir``.
            StaleOutputError: it was prepared with other settings (lists them).
            ManifestError: a final file is missing or resized (names it).
        """
        manifest = Manifest.load(self.data_dir)
        if not manifest.complete:
            why = "preparation has not finished" if manifest.exists else "nothing is prepared"
            if self.amass_dir is None:
                raise self._not_prepared(why)
            raise PrepareError(
                f"{self.data_dir}: {why}; call prepare_data() before setup() "
                "(a Trainer does this for you)"
            )
        expected = output_identity(self.splits, self.prepare_config)
        if manifest.settings != expected:
            raise StaleOutputError(
                f"{self.data_dir} holds data prepared with other settings than this "
                "VPoserDataModule's:\n  "
                + "\n  ".join(settings_differences(manifest.settings, expected))
                + "\nPass the settings it was prepared with, choose another data_dir, or "
                "rebuild it with `vposer-data prepare --overwrite`."
            )
        manifest.require_intact(
            "Rebuild with `vposer-data prepare --overwrite` (or delete the folder)."
        )
        return manifest

    def dataset(self, split: str) -> VPoserDataset:
        """The :class:`VPoserDataset` of ``split`` (mapped once, then kept)."""
        if split not in self.datasets:
            if split not in self.splits:
                raise ValueError(
                    f"split {split!r}: not among this VPoserDataModule's splits "
                    f"{sorted(self.splits)}"
                )
            if not self._checked:
                self.check_prepared()
                self._checked = True
            self.datasets[split] = VPoserDataset(split_dir(self.data_dir, split), self.fields)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Map the splits ``stage`` needs: "fit" train + vald, "validate" vald, "test" and
        "predict" test, ``None`` all three."""
        if stage not in STAGE_SPLITS:
            raise ValueError(
                f"stage={stage!r}: expected one of {[s for s in STAGE_SPLITS if s]} or None"
            )
        self._checked = False  # check the folder again on every setup
        for split in STAGE_SPLITS[stage]:
            if split not in self.splits:
                raise ValueError(
                    f"setup({stage!r}) needs a {split!r} split; this VPoserDataModule has "
                    f"{sorted(self.splits)}"
                )
            self.datasets.pop(split, None)
            self.dataset(split)

    # -- loaders -------------------------------------------------------------------------------

    def _pin_memory(self) -> bool:
        if self.pin_memory is not None:
            return bool(self.pin_memory)
        trainer = self.trainer
        if trainer is not None:
            return trainer.strategy.root_device.type == "cuda"
        return torch.cuda.is_available()

    def _persistent_workers(self) -> bool:
        if self.persistent_workers is None:
            return self.num_workers > 0
        return bool(self.persistent_workers)

    def _loader(self, dataset: VPoserDataset) -> DataLoader[dict[str, torch.Tensor]]:
        """Every sample in order; each batch fetched by ``__getitems__``."""
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            drop_last=False,
            num_workers=self.num_workers,
            collate_fn=collate_batch,  # the dataset's __getitems__ returns whole batches
            pin_memory=self._pin_memory(),
            persistent_workers=self._persistent_workers(),
        )

    def _train_sampler(self, dataset: VPoserDataset) -> BatchIndexSampler:
        """Whole batches of a permutation seeded by ``seed`` and the epoch. Under DDP, this
        rank's share: the ranks take turns through one permutation after ``len % world_size``
        rows are left out, so the shares are disjoint (Lightning's own sampler would pad them
        by repeating samples) and the order does not depend on ``seed_everything``."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        connector = getattr(self.trainer, "_accelerator_connector", None)
        if (
            kwargs
            and int(kwargs.get("num_replicas", 1)) > 1
            and getattr(connector, "use_distributed_sampler", True)
        ):
            return DistributedBatchIndexSampler(
                len(dataset),
                self.batch_size,
                num_replicas=int(kwargs["num_replicas"]),
                rank=int(kwargs["rank"]),
                seed=self.seed,
            )
        return BatchIndexSampler(len(dataset), self.batch_size, seed=self.seed)

    def train_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        """Shuffled by ``seed`` and the epoch; the last partial batch is dropped.

        The loader's sampler yields whole batches of indices (``batch_size=None``), so each
        batch is one ``dataset.__getitems__(indices)``: one ``index_select`` per field; in
        the main process, without DataLoader's per-batch overhead (:class:`BatchDataLoader`).
        """
        dataset = self.dataset(TRAIN)
        overfit: float = (
            getattr(self.trainer, "overfit_batches", 0.0) if self.trainer is not None else 0.0
        )
        if overfit:
            # Lightning swaps in a sampler of single indices to overfit: batch the usual way
            return self._loader(dataset)
        return BatchDataLoader(
            dataset,
            sampler=self._train_sampler(dataset),
            batch_size=None,
            collate_fn=collate_batch,
            num_workers=self.num_workers,
            pin_memory=self._pin_memory(),
            persistent_workers=self._persistent_workers(),
        )

    def val_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        """The ``vald`` split in order, every sample."""
        return self._loader(self.dataset(VALD))

    def test_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        """The ``test`` split in order, every sample."""
        return self._loader(self.dataset(TEST))

    def predict_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        """The ``test`` split in order, every sample."""
        return self._loader(self.dataset(TEST))

    def __repr__(self) -> str:
        return (
            f"VPoserDataModule(data_dir={str(self.data_dir)!r}, amass_dir="
            f"{None if self.amass_dir is None else str(self.amass_dir)!r}, "
            f"splits={sorted(self.splits)}, batch_size={self.batch_size})"
        )
