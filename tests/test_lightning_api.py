"""The one place the package reads Lightning's private API: the Trainer's
``use_distributed_sampler``, which Lightning keeps only on its accelerator connector. This
fails when a Lightning release within the pinned range moves it (for pytorch_lightning, and for
the unified ``lightning`` package when it is installed)."""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType

import pytest

from vposer_data.datamodule import _uses_distributed_sampler


def _lightning_packages() -> list[ModuleType]:
    packages = [importlib.import_module("pytorch_lightning")]
    with contextlib.suppress(ImportError):
        packages.append(importlib.import_module("lightning.pytorch"))
    return packages


@pytest.mark.parametrize("package", _lightning_packages(), ids=lambda p: p.__name__)
@pytest.mark.parametrize("value", [True, False])
def test_use_distributed_sampler_is_read_back(package: ModuleType, value: bool) -> None:
    trainer = package.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        use_distributed_sampler=value,
    )
    assert trainer._accelerator_connector.use_distributed_sampler is value
    assert _uses_distributed_sampler(trainer) is value
