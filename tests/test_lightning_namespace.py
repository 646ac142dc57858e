"""The DataModule for the unified ``lightning`` package (``import lightning.pytorch as pl``):
the same class body as ``vposer_data.VPoserDataModule``, accepted by a
``lightning.pytorch.Trainer`` and by its LightningCLI. Skipped where ``lightning`` is not
installed (it is in the ``test`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning
import torch

pl = pytest.importorskip("lightning.pytorch")

from vposer_data import VPoserDataModule  # noqa: E402
from vposer_data.lightning import VPoserDataModule as LightningDataModule  # noqa: E402

QUIET = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


class PoseAutoencoder(pl.LightningModule):
    """A tiny lightning.pytorch model over pose_body."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(63, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 63)
        )

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pose = batch["pose_body"]
        return torch.nn.functional.mse_loss(self.net(pose), pose)

    def training_step(self, batch: dict[str, torch.Tensor], index: int) -> torch.Tensor:
        return self._loss(batch)

    def validation_step(self, batch: dict[str, torch.Tensor], index: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_one_class_body_in_both_namespaces() -> None:
    assert issubclass(LightningDataModule, pl.LightningDataModule)
    assert not issubclass(LightningDataModule, pytorch_lightning.LightningDataModule)
    assert issubclass(VPoserDataModule, pytorch_lightning.LightningDataModule)
    for name in ("__init__", "prepare_data", "setup", "train_dataloader", "val_dataloader"):
        assert getattr(LightningDataModule, name) is getattr(VPoserDataModule, name), name
    assert LightningDataModule.__doc__ == VPoserDataModule.__doc__


def test_a_lightning_pytorch_trainer_fits_and_validates(training_dir: Path) -> None:
    dm = LightningDataModule(data_dir=training_dir, fields=["pose_body"], batch_size=64)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2, **QUIET)
    trainer.fit(PoseAutoencoder(), datamodule=dm)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["val_loss"])
    assert dm.hparams["batch_size"] == 64  # save_hyperparameters works from the shared body


def test_lightning_pytorch_cli_builds_it(training_dir: Path) -> None:
    pytest.importorskip("jsonargparse")
    from lightning.pytorch.cli import LightningCLI

    cli = LightningCLI(
        PoseAutoencoder,
        LightningDataModule,
        args=[f"--data.data_dir={training_dir}", "--data.batch_size=32"],
        run=False,
    )
    assert isinstance(cli.datamodule, LightningDataModule) and cli.datamodule.batch_size == 32
