"""Helpers for the pipeline tests (test_prepare, test_guarantees, test_cli_prepare).

Small synthetic AMASS trees, a quiet small-batch configuration, and ways to look at what a
preparation left on disk: checksums, modification times, temp files, manifest records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vposer_data.atomic import TEMP_MARK
from vposer_data.config import PrepareConfig
from vposer_data.prepare import PrepareResult, prepare_vposer_datasets
from vposer_data.synthetic import write_amass_tree

#: A small split mapping over datasets present in both releases of the synthetic tree.
SPLITS: dict[str, list[str]] = {"train": ["CMU", "KIT"], "vald": ["HumanEva"], "test": ["SFU"]}
TREE_FRAMES = 8000
LOCK_NAME = ".vposer_data.lock"
GENDER_CODES = {"male": -1, "neutral": 0, "female": 1}


def config(**changes: Any) -> PrepareConfig:
    """Quiet, with batches small enough that every split of a small tree has several."""
    values: dict[str, Any] = {"progress": False, "batch_size": 128, "num_workers": 0}
    values.update(changes)
    return PrepareConfig(**values)


def make_tree(
    root: Path, frames: int = TREE_FRAMES, release: str = "smplh", seed: int = 11
) -> Path:
    write_amass_tree(root, total_frames=frames, release=release, seed=seed)
    return root


def prepare(
    tree: Path | None,
    out: Path,
    splits: dict[str, list[str]] | None = None,
    overwrite: bool = False,
    logger: Any = None,
    **changes: Any,
) -> PrepareResult:
    return prepare_vposer_datasets(
        splits or SPLITS, tree, out, logger=logger, config=config(**changes), overwrite=overwrite
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_hashes(root: Path, sub: str = "stage_III") -> dict[str, str]:
    """Relative path -> SHA-256 of every file below ``root/sub``."""
    base = root / sub
    return {
        p.relative_to(root).as_posix(): sha256(p) for p in sorted(base.rglob("*")) if p.is_file()
    }


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file below ``root`` except the lock file,
    which the lock library truncates (and so re-stamps) on every acquisition."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if TEMP_MARK in p.name)


def read_manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def recorded_pairs(manifest: dict[str, Any]) -> set[str]:
    """``stage/split`` for every record in a manifest."""
    return {
        f"{stage}/{split}"
        for stage, records in manifest.get("stages", {}).items()
        for split in records
    }


def record_problems(root: Path) -> list[str]:
    """Every recorded output must exist with its recorded size (and checksum, where one is
    recorded): nothing half-written may count as done."""
    path = root / "manifest.json"
    if not path.exists():
        return []
    manifest = read_manifest(root)
    problems = []
    for stage, records in manifest.get("stages", {}).items():
        for split, record in records.items():
            if stage == "stage_II":
                h5 = root / stage / record["file"]
                if not h5.is_file() or h5.stat().st_size != record["bytes"]:
                    problems.append(f"{h5}: recorded {record['bytes']} bytes, not on disk so")
                continue
            for name, meta in record["fields"].items():
                pt = root / stage / split / f"{name}.pt"
                if not pt.is_file() or pt.stat().st_size != meta["bytes"]:
                    problems.append(f"{pt}: recorded {meta['bytes']} bytes, not on disk so")
                elif sha256(pt) != meta["sha256"]:
                    problems.append(f"{pt}: checksum differs from the record")
    return problems


def load_split(out: Path, split: str) -> dict[str, torch.Tensor]:
    folder = out / "stage_III" / split
    return {p.stem: torch.load(p, weights_only=True) for p in sorted(folder.glob("*.pt"))}


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an AMASS file, without its object arrays (never unpickled)."""
    arrays = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError:  # an object array (SMPL-X marker labels)
                continue
    return arrays


def copy_tree_reversed(src: Path, dst: Path) -> None:
    """The same files, created in reverse sorted order (directories too), so that a file system
    that lists entries in creation order lists them differently from ``src``."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    for path in reversed(files):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def listing_order(root: Path) -> list[str]:
    """The order ``os.walk`` (as the split resolver uses) meets the files in."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        found += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    return found
