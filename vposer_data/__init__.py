"""vposer_data: AMASS to training data (VPoser frames, motion clips), prepared once and handed
to PyTorch Lightning.

Each public name is listed once below with the module it lives in, and imported on first use,
so that preparing data (the CLI, ``prepare_vposer_datasets``) does not pay for importing
Lightning, and reading a prepared folder's description imports no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from vposer_data._version import __version__

_EXPORTS = {
    # preparing
    "prepare_vposer_datasets": "vposer_data.prepare",
    "PrepareConfig": "vposer_data.config",
    "PrepareResult": "vposer_data.prepare",
    "AMASS_SPLITS": "vposer_data.splits",
    # training
    "VPoserDataModule": "vposer_data.datamodule",
    "VPoserDataset": "vposer_data.dataset",
    # reading AMASS
    "load_sequence": "vposer_data.amass",
    "AmassSequence": "vposer_data.amass",
    # errors: every one a user can cause is a VPoserDataError
    "VPoserDataError": "vposer_data.errors",
    "ConfigError": "vposer_data.errors",
    "PrepareError": "vposer_data.errors",
    "StaleOutputError": "vposer_data.errors",
    "ManifestError": "vposer_data.manifest",
    "AmassFormatError": "vposer_data.amass",
    "NotAMotionError": "vposer_data.amass",
    "SplitError": "vposer_data.splits",
    "DatasetNotFoundError": "vposer_data.dataset",
    "DatasetFormatError": "vposer_data.dataset",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vposer_data' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
