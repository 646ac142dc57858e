"""What many test modules share: small synthetic AMASS trees, the quiet small-batch
configuration, one way to prepare, and ways to look at what a preparation left on disk
(checksums, snapshots, temp files, manifest records, split tensors).

The session-scoped fixtures built on these (a cache of read-only trees, a prepared reference)
are in ``tests/conftest.py``; what only the fault tests need (children to fork and kill) is in
``tests/faults/fault_helpers.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import zlib
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch

from vposer_data.atomic import TEMP_MARK
from vposer_data.config import PrepareConfig
from vposer_data.dataset import VPoserDataset
from vposer_data.manifest import LOCK_NAME
from vposer_data.prepare import PrepareResult, prepare_vposer_datasets
from vposer_data.synthetic import SyntheticSummary, write_amass_tree

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

#: A small split mapping over datasets present in both releases of the synthetic tree.
SPLITS: dict[str, list[str]] = {"train": ["CMU", "KIT"], "vald": ["HumanEva"], "test": ["SFU"]}
#: The training-side tests' mapping: three datasets for training (BML is an alias of the
#: SMPL+H tree's BioMotionLab_NTroje), one each for validation and test.
TRAINING_SPLITS: dict[str, list[str]] = {
    "train": ["CMU", "KIT", "BML"],
    "vald": ["HumanEva"],
    "test": ["SFU"],
}
#: The default small tree: every split of SPLITS non-empty, a run of a second or so.
TREE_FRAMES = 8000
TREE_SEED = 11
#: The training-side tests' tree: enough samples for several batches of every split.
TRAINING_FRAMES = 12_000


def write_tree(
    root: Path, frames: int = TREE_FRAMES, release: str = "smplh", seed: int = TREE_SEED
) -> Path:
    """A synthetic AMASS tree of ``frames`` frames written under ``root`` (returned). For a
    tree the test only reads, use the ``amass_tree`` fixture instead (written once)."""
    write_amass_tree(root, total_frames=frames, release=release, seed=seed)
    return root


#: The seed of the made-up body models the ``body_models_dir`` fixture writes.
BODY_MODEL_SEED = 3


class TreeCache:
    """Synthetic AMASS trees written once per session, one per (frames, release, seed): the
    ``amass_tree`` fixture. Read-only: a test that changes a tree copies it first."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._written: dict[tuple[int, str, int], SyntheticSummary] = {}

    def summary(
        self, frames: int = TREE_FRAMES, release: str = "smplh", seed: int = TREE_SEED
    ) -> SyntheticSummary:
        key = (frames, release, seed)
        if key not in self._written:
            root = self._factory.mktemp(f"amass_{release}_{frames}_seed{seed}")
            self._written[key] = write_amass_tree(
                root, total_frames=frames, release=release, seed=seed
            )
        return self._written[key]

    def __call__(
        self, frames: int = TREE_FRAMES, release: str = "smplh", seed: int = TREE_SEED
    ) -> Path:
        return Path(self.summary(frames, release, seed).root)


def config(**changes: Any) -> PrepareConfig:
    """Quiet, in-process, with batches small enough that every split of a small tree has
    several."""
    values: dict[str, Any] = {"progress": False, "batch_size": 128, "num_workers": 0}
    values.update(changes)
    return PrepareConfig(**values)


def prepare(
    tree: Path | None,
    out: Path,
    splits: Mapping[str, list[str]] | None = None,
    overwrite: bool = False,
    logger: Any = None,
    **changes: Any,
) -> PrepareResult:
    """``prepare_vposer_datasets`` with SPLITS (unless given) and ``config(**changes)``."""
    return prepare_vposer_datasets(
        SPLITS if splits is None else splits,
        tree,
        out,
        logger=logger,
        config=config(**changes),
        overwrite=overwrite,
    )


def exact_tick_count(start: int, stop: int, fps: float, target_fps: float) -> int:
    """How many ticks a ``target_fps`` clock has over the kept frames ``[start, stop)`` of a
    ``fps`` motion, in exact rational arithmetic on the float rates (not the package's float
    formula): tick j is j / target_fps seconds after ``start``'s time, and ticks run up to
    the last kept frame's time, with the 1e-9 tick the clock allows for rounding."""
    if stop <= start:
        return 0
    last = Fraction(stop - 1 - start) * Fraction(target_fps) / Fraction(fps)
    return math.floor(last + Fraction(1, 10**9)) + 1


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_hashes(root: Path, sub: str = "stage_III") -> dict[str, str]:
    """Relative path -> SHA-256 of every file below ``root/sub``."""
    return {
        p.relative_to(root).as_posix(): sha256(p)
        for p in sorted((root / sub).rglob("*"))
        if p.is_file()
    }


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Relative path -> (size, mtime_ns, SHA-256) of every file below ``root`` but the lock
    file, which the lock library truncates (and so re-stamps) on every acquisition."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, sha256(p))
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if TEMP_MARK in p.name)


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a prepared folder ({} where there is none yet)."""
    path = root / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def recorded_pairs(manifest: Mapping[str, Any]) -> set[str]:
    """``stage/split`` for every record in a manifest."""
    return {
        f"{stage}/{split}"
        for stage, records in manifest.get("stages", {}).items()
        for split in records
    }


def _checksum_matches(path: Path, meta: Mapping[str, Any]) -> bool:
    """The recorded checksum (SHA-256 of final files, CRC-32 of intermediates), recomputed
    here independently of the package."""
    if "sha256" in meta:
        return sha256(path) == meta["sha256"]
    if "crc32" in meta:
        return f"{zlib.crc32(path.read_bytes()):08x}" == meta["crc32"]
    return True


def record_problems(root: Path) -> list[str]:
    """Every file the manifest records must be on disk whole: its recorded size and (where
    recorded) checksum. A partial file recorded as done is a problem."""
    problems = []
    for stage, records in read_manifest(root).get("stages", {}).items():
        for split, record in records.items():
            if stage == "stage_II":
                h5 = root / stage / record["file"]
                if not h5.is_file() or h5.stat().st_size != record["bytes"]:
                    problems.append(f"{h5}: recorded {record['bytes']} bytes, not so on disk")
                continue
            for name, meta in record["fields"].items():
                pt = root / stage / split / f"{name}.pt"
                if not pt.is_file() or pt.stat().st_size != meta["bytes"]:
                    problems.append(f"{pt}: recorded {meta['bytes']} bytes, not so on disk")
                elif not _checksum_matches(pt, meta):
                    problems.append(f"{pt}: checksum differs from the record")
    return problems


def assert_nothing_partial(root: Path) -> None:
    """No temp file left, and nothing recorded that is not whole on disk."""
    assert temp_files(root) == []
    assert record_problems(root) == []


def load_split(out: Path, split: str) -> dict[str, torch.Tensor]:
    """Every Stage III tensor of a split, by field name."""
    folder = out / "stage_III" / split
    return {p.stem: torch.load(p, weights_only=True) for p in sorted(folder.glob("*.pt"))}


def provenance(dataset: VPoserDataset) -> list[tuple[int, int]]:
    """(seq_id, frame_id) of every sample of a dataset loaded with those fields, in order."""
    seq_id, frame_id = dataset.tensors["seq_id"].tolist(), dataset.tensors["frame_id"].tolist()
    return list(zip(seq_id, frame_id, strict=True))


def import_examples() -> None:
    """Make ``examples/`` importable (``vposer_model``, ``train``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
