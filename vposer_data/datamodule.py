"""VPoserDataModule: AMASS to batches for a Lightning ``Trainer``.

``prepare_data`` runs the three stages once (disk only; Lightning calls it on one process per
node, and the folder's lock makes any extra call wait and then find the work done).
``setup(stage)`` checks the prepared folder against its manifest and maps the splits that
stage needs. The loaders fetch each batch with one fancy index per field: the training loader's
sampler yields whole batches of indices (:class:`~vposer_data.loader.BatchIndexSampler`), the
others batch in order through :meth:`VPoserDataset.__getitems__`.

Training statistics (per field and dimension: mean, std, min, max of the ``stats_split``,
"train" by default) are served as :attr:`VPoserDataModule.statistics`; with ``normalize=[...]``
every split's batches hold those fields standardised by them, and
:meth:`VPoserDataModule.denormalize` undoes it.

The class body, :class:`VPoserDataModuleBody`, does not depend on Lightning's namespace: here
it makes a ``pytorch_lightning.LightningDataModule``, and :mod:`vposer_data.lightning` makes
the same class for the unified package's ``lightning.pytorch.Trainer``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vposer_data.config import PrepareConfig
from vposer_data.dataset import VPoserDataset, collate_batch
from vposer_data.errors import REBUILD_HINT, ConfigError, PrepareError
from vposer_data.loader import BatchDataLoader, BatchIndexSampler, DistributedBatchIndexSampler
from vposer_data.manifest import Manifest, output_identity, split_dir
from vposer_data.prepare import prepare_vposer_datasets
from vposer_data.splits import AMASS_SPLITS, normalize_splits
from vposer_data.training_statistics import (
    NORMALIZE_EPS,
    Normalizer,
    ServesStatistics,
    TrainingStatistics,
    read_statistics,
)

__all__ = ["STAGE_SPLITS", "VPoserDataModule", "VPoserDataModuleBody"]

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


# the body is type-checked as the DataModule it becomes; at run time it is a plain mixin
if TYPE_CHECKING:
    _Lightning = pl.LightningDataModule
else:
    _Lightning = object


class VPoserDataModuleBody(ServesStatistics, _Lightning):
    """Training data from AMASS, prepared once, served by memory-mapped batches.

    Args:
        data_dir: the prepared folder (made by ``prepare_data`` when ``amass_dir`` is given).
        amass_dir: the AMASS root; ``None`` (default) when ``data_dir`` is already prepared.
        splits: split name -> AMASS dataset names; default ``None``: the splits ``data_dir``
            was prepared with, or :data:`AMASS_SPLITS` for a new folder. Training reads
            ``train``, validation ``vald``, test and predict ``test``.
        prepare: the preparation settings: a :class:`~vposer_data.PrepareConfig` or a mapping
            of some of its settings (``{"keep_rate": 0.5}``; a LightningCLI YAML nests them
            under ``data.prepare``). Default ``None``: the settings ``data_dir`` was prepared
            with, or the defaults (the original VPoser recipe) for a new folder. Settings given
            here are checked against the folder; a difference is a StaleOutputError naming it.
        fields: the fields each batch holds; default ``None``: the pose fields present.
        normalize: fields served standardised in every split's batches (train, vald, test,
            predict): ``(x - mean) / max(std, 1e-6)`` with the folder's training statistics
            (:attr:`statistics`, computed on ``stats_split`` only; the floor,
            :data:`~vposer_data.training_statistics.NORMALIZE_EPS`, keeps a dimension constant in
            training finite). :meth:`denormalize` undoes it. Default ``None``: none. A field
            without statistics (not a float field, not served, or a folder without statistics)
            is a ConfigError at ``setup`` naming it.
        batch_size: samples per batch, 512.
        num_workers: DataLoader worker processes, 0 (batches are one fancy index per field,
            so the main process is usually fast enough).
        pin_memory: default ``None``: pin only when training on a CUDA device.
        persistent_workers: default ``None``: keep workers alive when ``num_workers > 0``.
        seed: seeds the training shuffle (also under DDP, where each rank gets a disjoint share).
        prepare_data_per_node: as in Lightning: ``False`` prepares once for a whole multi-node
            job when ``data_dir`` is on a shared file system.

    Raises:
        ConfigError: an argument out of range (a ValueError; the message shows the value).
    """

    def __init__(
        self,
        data_dir: str | Path,
        amass_dir: str | Path | None = None,
        splits: dict[str, list[str]] | None = None,
        prepare: dict[str, Any] | PrepareConfig | None = None,
        fields: list[str] | None = None,
        normalize: list[str] | None = None,
        batch_size: int = 512,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        seed: int = 0,
        prepare_data_per_node: bool = True,
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
        if normalize is not None and (
            not isinstance(normalize, (list, tuple))
            or not normalize
            or not all(isinstance(name, str) for name in normalize)
            or len(set(normalize)) != len(normalize)
        ):
            problems.append(
                f"normalize={normalize!r}: expected a list of distinct field names, or None"
            )
        if prepare is not None and not isinstance(prepare, (Mapping, PrepareConfig)):
            problems.append(
                f"prepare={prepare!r}: expected a PrepareConfig, a mapping of its settings, or None"
            )
        if problems:
            raise ConfigError("invalid VPoserDataModule arguments: " + "; ".join(problems))
        self.save_hyperparameters()
        self.prepare_data_per_node = prepare_data_per_node
        self.data_dir = Path(data_dir)
        self.amass_dir = None if amass_dir is None else Path(amass_dir)
        self.requested_splits = None if splits is None else normalize_splits(splits)
        #: the settings given explicitly (checked against the folder); None: none given
        self.requested_settings: dict[str, Any] | None = _given_settings(prepare)
        self.fields = None if fields is None else list(fields)
        self.normalize = None if normalize is None else list(normalize)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.seed = seed
        self.datasets: dict[str, VPoserDataset] = {}
        self._served: tuple[dict[str, list[str]], PrepareConfig] | None = None
        self._statistics: tuple[TrainingStatistics | None, str] | None = None
        self._normalizer: Normalizer | None = None

    # -- what is asked for ---------------------------------------------------------------------

    def resolve(
        self, manifest: Manifest | None = None
    ) -> tuple[dict[str, list[str]], PrepareConfig]:
        """The split mapping and settings this DataModule prepares and serves: those given,
        completed by the folder's own (or, for a new folder, by the defaults)."""
        manifest = Manifest.load(self.data_dir) if manifest is None else manifest
        recorded = manifest.settings if manifest.exists else None
        if self.requested_splits is not None:
            splits = self.requested_splits
        elif recorded is not None:
            splits = normalize_splits(recorded["splits"])
        else:
            splits = normalize_splits(AMASS_SPLITS)
        base = PrepareConfig.from_mapping(recorded["config"]) if recorded else PrepareConfig()
        given = self.requested_settings or {}
        config = PrepareConfig.from_mapping({**base.to_dict(), **given})
        return splits, config

    @property
    def splits(self) -> dict[str, list[str]]:
        """The split mapping served (see :meth:`resolve`)."""
        return self._served[0] if self._served is not None else self.resolve()[0]

    @property
    def prepare_config(self) -> PrepareConfig:
        """The preparation settings (see :meth:`resolve`)."""
        return self._served[1] if self._served is not None else self.resolve()[1]

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
        manifest = Manifest.load(self.data_dir)
        if self.amass_dir is None and not manifest.complete:
            # checked here so that a mistyped data_dir leaves nothing behind on disk
            raise self._not_prepared("nothing is prepared here (no complete manifest.json)")
        splits, config = self.resolve(manifest)
        prepare_vposer_datasets(splits, self.amass_dir, self.data_dir, logger=_log, config=config)

    # -- loading -------------------------------------------------------------------------------

    def check_prepared(self) -> Manifest:
        """The folder's manifest, after checking that preparation finished, with the settings
        given (if any), and that every final file has its recorded size.

        Raises:
            PrepareError: nothing (complete) is prepared at ``data_dir``.
            StaleOutputError: it was prepared with other settings than those given (lists
                them).
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
        splits, config = self.resolve(manifest)
        stale = manifest.stale_error(
            output_identity(splits, config),
            "Pass the settings it was prepared with (or none: prepare=None and splits=None "
            f"serve the folder as it is), or choose another data_dir.\n{REBUILD_HINT}.",
            whose=" than this VPoserDataModule's",
        )
        if stale is not None:
            raise stale
        # every final file, statistics.pt included (it is one of the Stage III records)
        manifest.require_intact()
        if self._served is None and self.requested_settings is None:
            _log.info(
                "serving %s as it was prepared: splits %s, settings %s",
                self.data_dir,
                json.dumps(splits),
                json.dumps(manifest.settings["config"], sort_keys=True),
            )
        self._served = (splits, config)
        self._statistics = None  # read again from this (possibly rebuilt) folder
        self._normalizer = None
        return manifest

    # -- statistics ----------------------------------------------------------------------------

    def _read_statistics(self) -> tuple[TrainingStatistics | None, str]:
        if self._statistics is None:
            self._statistics = read_statistics(self.data_dir)
        return self._statistics

    def normalizer(self) -> Normalizer | None:
        """The :class:`~vposer_data.training_statistics.Normalizer` of ``normalize`` (or None).

        Raises:
            ConfigError: a ``normalize`` field without training statistics (names it).
        """
        if self.normalize is None:
            return None
        if self._normalizer is None:
            statistics, why = self._read_statistics()
            self._normalizer = Normalizer(statistics, self.normalize, NORMALIZE_EPS, why)
        return self._normalizer

    def denormalize(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A new dict: the ``normalize`` fields of ``batch`` back in their own units
        (``x * max(std, eps) + mean``, on the batch's device), every other entry as it is.
        Without ``normalize``, a plain copy of the dict."""
        normalizer = self.normalizer()
        return dict(batch) if normalizer is None else normalizer.denormalize(batch)

    def _collate(self) -> Any:
        """The loaders' ``collate_fn``: the batch as a plain dict, normalized as asked."""
        normalizer = self.normalizer()
        return collate_batch if normalizer is None else normalizer

    def dataset(self, split: str) -> VPoserDataset:
        """The :class:`VPoserDataset` of ``split`` (mapped once, then kept)."""
        if split not in self.datasets:
            if split not in self.splits:
                raise ConfigError(
                    f"split {split!r}: not among this VPoserDataModule's splits "
                    f"{sorted(self.splits)}"
                )
            if self._served is None:
                self.check_prepared()
            self.datasets[split] = VPoserDataset(split_dir(self.data_dir, split), self.fields)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Map the splits ``stage`` needs: "fit" train + vald, "validate" vald, "test" and
        "predict" test, ``None`` all three."""
        if stage not in STAGE_SPLITS:
            raise ConfigError(
                f"stage={stage!r}: expected one of {[s for s in STAGE_SPLITS if s]} or None"
            )
        for split in STAGE_SPLITS[stage]:
            if split not in self.splits:
                raise ConfigError(
                    f"setup({stage!r}) needs a {split!r} split; this VPoserDataModule has "
                    f"{sorted(self.splits)}"
                )
        self.check_prepared()  # again on every setup
        for split in STAGE_SPLITS[stage]:
            self.datasets.pop(split, None)
            self.dataset(split)
        if self.normalize is not None:
            self.normalizer()  # a field without statistics fails here, before any batch
            for split in STAGE_SPLITS[stage]:
                served = self.datasets[split].fields
                absent = [name for name in self.normalize if name not in served]
                if absent:
                    raise ConfigError(
                        f"normalize={self.normalize}: {', '.join(absent)} not among the "
                        f"fields served ({', '.join(served)}); add it to fields"
                    )

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

    def _distributed(self) -> tuple[int, int] | None:
        """(world size, rank) when Lightning runs several processes and lets the DataModule's
        samplers stand, else None."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        if (
            kwargs
            and int(kwargs.get("num_replicas", 1)) > 1
            and _uses_distributed_sampler(self.trainer)
        ):
            return int(kwargs["num_replicas"]), int(kwargs["rank"])
        return None

    def _loader(self, dataset: VPoserDataset) -> DataLoader[dict[str, torch.Tensor]]:
        """Every sample in order, each once. Under DDP each rank gets a contiguous, disjoint
        share and nothing is repeated to even them out (Lightning's own sampler would pad with
        duplicates), so a metric over the split counts every sample exactly once; the shares
        differ by at most one sample."""
        distributed = self._distributed()
        if distributed is not None:
            world, rank = distributed
            return BatchDataLoader(
                dataset,
                sampler=DistributedBatchIndexSampler(
                    len(dataset),
                    self.batch_size,
                    num_replicas=world,
                    rank=rank,
                    shuffle=False,
                    drop_last=False,
                    even=False,
                ),
                batch_size=None,
                collate_fn=self._collate(),
                num_workers=self.num_workers,
                pin_memory=self._pin_memory(),
                persistent_workers=self._persistent_workers(),
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            drop_last=False,
            num_workers=self.num_workers,
            collate_fn=self._collate(),  # the dataset's __getitems__ returns whole batches
            pin_memory=self._pin_memory(),
            persistent_workers=self._persistent_workers(),
        )

    def _train_sampler(self, dataset: VPoserDataset) -> BatchIndexSampler:
        """Whole batches of a permutation seeded by ``seed`` and the epoch. Under DDP, this
        rank's share: the ranks take turns through one permutation after ``len % world_size``
        rows are left out, so the shares are disjoint (Lightning's own sampler would pad them
        by repeating samples) and the order does not depend on ``seed_everything``."""
        distributed = self._distributed()
        if distributed is not None:
            world, rank = distributed
            return DistributedBatchIndexSampler(
                len(dataset), self.batch_size, num_replicas=world, rank=rank, seed=self.seed
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
            collate_fn=self._collate(),
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


def _given_settings(prepare: Mapping[str, Any] | PrepareConfig | None) -> dict[str, Any] | None:
    """The settings given explicitly: every one of a PrepareConfig, the keys of a mapping
    (checked now, so that a typo fails at construction)."""
    if prepare is None:
        return None
    if isinstance(prepare, PrepareConfig):
        return prepare.to_dict()
    given = dict(prepare)
    # checked now, completed by the defaults, so that a typo or a bad value fails at once
    PrepareConfig.from_mapping({**PrepareConfig().to_dict(), **given})
    return given


class VPoserDataModule(VPoserDataModuleBody, pl.LightningDataModule):
    __doc__ = VPoserDataModuleBody.__doc__  # one text for both namespaces' classes


def _uses_distributed_sampler(trainer: Any) -> bool:
    """The Trainer's ``use_distributed_sampler`` argument. Lightning (2.1 to 2.6) keeps it only
    on its private accelerator connector: no public attribute or method gives it back, so it is
    read there; tests/test_lightning_api.py fails if a Lightning release moves it. A Trainer
    without one uses the distributed sampler, Lightning's default."""
    connector = getattr(trainer, "_accelerator_connector", None)
    return bool(getattr(connector, "use_distributed_sampler", True))
