"""vposer_data: AMASS to VPoser training data, prepared once and handed to PyTorch Lightning."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names and the module each lives in. Imported on first use, so that preparing data
# (the CLI, prepare_vposer_datasets) does not pay for importing Lightning.
_EXPORTS = {
    "AMASS_SPLITS": "vposer_data.splits",
    "AmassFormatError": "vposer_data.amass",
    "AmassSequence": "vposer_data.amass",
    "NotAMotionError": "vposer_data.amass",
    "load_sequence": "vposer_data.amass",
    "SplitError": "vposer_data.splits",
    "resolve_split_files": "vposer_data.splits",
    "write_amass_tree": "vposer_data.synthetic",
    "PrepareConfig": "vposer_data.config",
    "prepare_vposer_datasets": "vposer_data.prepare",
    "VPoserDataset": "vposer_data.dataset",
    "VPoserDataModule": "vposer_data.datamodule",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from vposer_data.amass import AmassFormatError as AmassFormatError
    from vposer_data.amass import AmassSequence as AmassSequence
    from vposer_data.amass import NotAMotionError as NotAMotionError
    from vposer_data.amass import load_sequence as load_sequence
    from vposer_data.config import PrepareConfig as PrepareConfig
    from vposer_data.datamodule import VPoserDataModule as VPoserDataModule
    from vposer_data.dataset import VPoserDataset as VPoserDataset
    from vposer_data.prepare import prepare_vposer_datasets as prepare_vposer_datasets
    from vposer_data.splits import AMASS_SPLITS as AMASS_SPLITS
    from vposer_data.splits import SplitError as SplitError
    from vposer_data.splits import resolve_split_files as resolve_split_files
    from vposer_data.synthetic import write_amass_tree as write_amass_tree


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vposer_data' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
