"""Small prepared folders for the training-side tests (dataset, DataModule, Trainer, report)."""

from __future__ import annotations

import sys
from pathlib import Path

from vposer_data.config import PrepareConfig
from vposer_data.dataset import VPoserDataset
from vposer_data.prepare import prepare_vposer_datasets
from vposer_data.synthetic import write_amass_tree

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

#: Three datasets for training (BML is an alias of the tree's BioMotionLab_NTroje), one each
#: for validation and test: every split non-empty in a tree of a few thousand frames.
SMALL_SPLITS: dict[str, list[str]] = {
    "train": ["CMU", "KIT", "BML"],
    "vald": ["HumanEva"],
    "test": ["SFU"],
}
TREE_FRAMES = 12_000


def write_tree(
    root: Path, frames: int = TREE_FRAMES, release: str = "smplh", seed: int = 11
) -> Path:
    write_amass_tree(root, total_frames=frames, release=release, seed=seed)
    return root


def prepare_small(
    root: Path, frames: int = TREE_FRAMES, release: str = "smplh", **settings: object
) -> Path:
    """Write a tree under ``root/amass`` and prepare it into ``root/vposer`` (returned)."""
    amass = write_tree(root / "amass", frames=frames, release=release)
    config = PrepareConfig.from_mapping({"progress": False, "num_workers": 0, **settings})
    prepare_vposer_datasets(SMALL_SPLITS, amass, root / "vposer", config=config)
    return root / "vposer"


def provenance(dataset: VPoserDataset) -> list[tuple[int, int]]:
    """(seq_id, frame_id) of every sample of a dataset loaded with those fields, in order."""
    seq_id, frame_id = dataset.tensors["seq_id"].tolist(), dataset.tensors["frame_id"].tolist()
    return list(zip(seq_id, frame_id, strict=True))


def import_examples() -> None:
    """Make ``examples/`` importable (``vposer_model``, ``train``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
