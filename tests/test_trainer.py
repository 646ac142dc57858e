"""Proof with a real Lightning Trainer on CPU: fit / validate / test from raw synthetic AMASS,
DDP over two processes, and LightningCLI from the example YAML config."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml
from helpers import (
    EXAMPLES,
    TRAINING_FRAMES,
    TRAINING_SPLITS,
    TreeCache,
    import_examples,
    prepare,
    provenance,
)
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DistributedSampler

from vposer_data import VPoserDataModule
from vposer_data.dataset import VPoserDataset
from vposer_data.loader import DistributedBatchIndexSampler
from vposer_data.manifest import Manifest
from vposer_data.prepare import split_dir

import_examples()
from vposer_model import VPoserVAE  # noqa: E402

QUIET = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


class LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: Any, outputs: Any, *args: Any
    ) -> None:
        self.losses.append(float(outputs["loss"]))


def test_fit_validate_test_from_raw_amass(amass_tree: TreeCache, tmp_path: Path) -> None:
    amass = amass_tree(15_000)
    dm = VPoserDataModule(
        data_dir=tmp_path / "vposer",
        amass_dir=amass,
        splits=TRAINING_SPLITS,
        fields=["pose_body"],
        batch_size=64,
        prepare={"progress": False},
    )
    pl.seed_everything(0, verbose=False)
    model = VPoserVAE(hidden_dim=128, lr=2e-3)
    recorder = LossRecorder()
    trainer = pl.Trainer(max_steps=60, callbacks=[recorder], num_sanity_val_steps=0, **QUIET)
    trainer.fit(model, datamodule=dm)

    losses = recorder.losses
    assert len(losses) == 60 and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss: first 5 steps {first:.3f}, last 5 steps {last:.3f}")
    assert last < 0.7 * first, (first, last)
    assert Manifest.load(tmp_path / "vposer").complete  # prepare_data ran the stages

    validated = trainer.validate(model, datamodule=dm, verbose=False)
    tested = trainer.test(model, datamodule=dm, verbose=False)
    assert math.isfinite(validated[0]["val_loss"]) and math.isfinite(tested[0]["test_loss"])
    assert set(dm.datasets) == {"train", "vald", "test"}
    latents = torch.cat(trainer.predict(model, datamodule=dm))  # type: ignore[arg-type]
    assert latents.shape == (len(dm.datasets["test"]), 32)  # every test sample, once


class SeenSamples(Callback):
    """Writes, per rank, the (seq_id, frame_id) of every training and validation sample the
    rank saw."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.seen: list[list[int]] = []
        self.validated: list[list[int]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, i: int) -> None:
        pairs = torch.stack([batch["seq_id"], batch["frame_id"]], 1).tolist()
        self.seen.extend(pairs)

    def on_validation_batch_start(
        self, trainer: pl.Trainer, module: Any, batch: Any, i: int, dataloader_idx: int = 0
    ) -> None:
        pairs = torch.stack([batch["seq_id"], batch["frame_id"]], 1).tolist()
        self.validated.extend(pairs)

    def on_fit_end(self, trainer: pl.Trainer, module: Any) -> None:
        sampler = trainer.train_dataloader.sampler
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "sampler": type(sampler).__name__,
            "seen": self.seen,
            "validated": self.validated,
        }
        path = self.out_dir / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))


def test_ddp_two_processes_prepare_once_and_share_disjointly(
    amass_tree: TreeCache, tmp_path: Path
) -> None:
    amass = amass_tree(TRAINING_FRAMES)
    data_dir = tmp_path / "vposer"
    batch_size = 32
    dm = VPoserDataModule(
        data_dir=data_dir,
        amass_dir=amass,
        splits=TRAINING_SPLITS,
        fields=["pose_body", "seq_id", "frame_id"],
        batch_size=batch_size,
        seed=3,
        prepare={"progress": False, "num_workers": 0},
    )
    out = tmp_path / "seen"
    out.mkdir()
    trainer = pl.Trainer(
        strategy="ddp_spawn",
        devices=2,
        max_epochs=1,
        num_sanity_val_steps=0,
        callbacks=[SeenSamples(out)],
        **QUIET,
    )
    trainer.fit(VPoserVAE(hidden_dim=32), datamodule=dm)

    # the three stages ran once, in one process
    log = (data_dir / "prepare.log").read_text()
    assert log.count("=== vposer_data") == 1
    for stage in ("stage I train", "stage II train", "stage III train"):
        assert log.count(stage) == 1, stage
    assert Manifest.load(data_dir).complete

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["world_size"] == 2
    assert {r["sampler"] for r in ranks} == {DistributedBatchIndexSampler.__name__}
    seen = [{tuple(p) for p in r["seen"]} for r in ranks]
    assert all(len(s) == len(r["seen"]) for s, r in zip(seen, ranks, strict=True))
    assert not seen[0] & seen[1], "the ranks' shares overlap"

    train = VPoserDataset(split_dir(data_dir, "train"), ["seq_id", "frame_id"])
    split = set(provenance(train))
    assert len(split) == len(train)  # (seq_id, frame_id) names each sample once
    union = seen[0] | seen[1]
    assert union <= split
    # what is not seen is exactly what must be dropped: len % 2 samples to split evenly, then
    # each rank's last partial batch (drop_last)
    per_rank = len(train) // 2
    assert len(split) - len(union) == len(train) % 2 + 2 * (per_rank % batch_size)
    assert len(seen[0]) == len(seen[1]) == per_rank - per_rank % batch_size

    # validation: disjoint shares, no padding duplicates, every sample of the split once
    vald = VPoserDataset(split_dir(data_dir, "vald"), ["seq_id", "frame_id"])
    validated = [[tuple(p) for p in r["validated"]] for r in ranks]
    assert len(vald) > 0 and all(validated)
    assert sorted(validated[0] + validated[1]) == sorted(provenance(vald))
    assert abs(len(validated[0]) - len(validated[1])) <= 1


def test_ddp_shares_cover_the_split_when_it_divides(amass_tree: TreeCache, tmp_path: Path) -> None:
    """Without DDP processes: the sampler the DataModule builds for each rank of a 2-process
    job; their shares are disjoint and, with nothing to drop, their union is the split."""
    data_dir = tmp_path / "vposer"
    prepare(amass_tree(6000), data_dir, TRAINING_SPLITS)
    length = len(VPoserDataset(split_dir(data_dir, "train")))
    batch = next(b for b in range(40, 1, -1) if (length // 2) % b == 0)
    shares = []
    for rank in (0, 1):
        dm = VPoserDataModule(
            data_dir=data_dir, splits=TRAINING_SPLITS, fields=["frame_id"], batch_size=batch
        )
        dm.trainer = _FakeDistributedTrainer(rank)  # type: ignore[assignment]
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, DistributedSampler)  # so Lightning keeps it
        shares.append([i for indices in loader.sampler for i in indices.tolist()])
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(length - length % 2))


class _FakeDistributedTrainer:
    """What the DataModule reads from a Trainer under 2-process DDP on CPU."""

    def __init__(self, rank: int) -> None:
        self.distributed_sampler_kwargs = {"num_replicas": 2, "rank": rank}

        class _Device:
            type = "cpu"

        class _Strategy:
            root_device = _Device()

        self.strategy = _Strategy()


def test_lightning_cli_builds_the_datamodule_from_the_example_config(
    amass_tree: TreeCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["train.py"])  # LightningCLI also looks at sys.argv
    import_examples()
    from train import main

    config = EXAMPLES / "datamodule.yaml"
    values = yaml.safe_load(config.read_text())["data"]
    amass = amass_tree(10_000)
    overrides = [
        f"--data.data_dir={tmp_path / 'vposer'}",
        f"--data.amass_dir={amass}",
        "--data.prepare.progress=false",
    ]
    cli = main(["--config", str(config), *overrides], run=False)
    dm = cli.datamodule
    assert isinstance(dm, VPoserDataModule) and isinstance(cli.model, VPoserVAE)
    assert dm.splits == values["splits"] and dm.fields == values["fields"]
    assert dm.batch_size == values["batch_size"] and dm.hparams["seed"] == values["seed"]
    assert dm.prepare_config.keep_rate == values["prepare"]["keep_rate"]
    assert dm.prepare_config.progress is False

    # and the fit subcommand trains a few steps from raw AMASS with it
    fitted = main(
        [
            "fit",
            "--config",
            str(config),
            *overrides,
            "--data.batch_size=64",
            "--model.hidden_dim=64",
            "--trainer.accelerator=cpu",
            "--trainer.max_steps=3",
            "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.enable_checkpointing=false",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path / 'runs'}",
        ]
    )
    assert fitted.trainer.global_step == 3
    assert math.isfinite(float(fitted.trainer.callback_metrics["train_loss"]))
    assert Manifest.load(tmp_path / "vposer").complete


def test_datamodule_settings_survive_a_checkpoint(tmp_path: Path) -> None:
    """save_hyperparameters: a DataModule can be rebuilt from what a checkpoint records."""
    dm = VPoserDataModule(
        data_dir=tmp_path, splits=TRAINING_SPLITS, batch_size=99, prepare={"keep_rate": 0.4}
    )
    rebuilt = VPoserDataModule(**dict(dm.hparams))
    assert rebuilt.hparams == dm.hparams and rebuilt.prepare_config == dm.prepare_config


def test_overfit_batches(amass_tree: TreeCache, tmp_path: Path) -> None:
    """Lightning's overfit_batches swaps the training sampler: batches stay batches."""
    data_dir = tmp_path / "vposer"
    prepare(amass_tree(6000), data_dir, TRAINING_SPLITS)
    dm = VPoserDataModule(
        data_dir=data_dir, splits=TRAINING_SPLITS, fields=["pose_body"], batch_size=16
    )
    sizes: list[int] = []

    class Sizes(Callback):
        def on_train_batch_start(
            self, trainer: pl.Trainer, module: Any, batch: Any, i: int
        ) -> None:
            sizes.append(batch["pose_body"].shape[0])

    trainer = pl.Trainer(overfit_batches=2, max_steps=4, callbacks=[Sizes()], **QUIET)
    trainer.fit(VPoserVAE(hidden_dim=16), datamodule=dm)
    assert sizes == [16, 16, 16, 16]
