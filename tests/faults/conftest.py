"""Session fixtures of the fault tests: clean synthetic AMASS trees and their uninterrupted
outputs (read-only; tests that damage something copy them first)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import (
    BIG_CONFIG,
    BIG_FRAMES,
    BIG_SEED,
    BIG_SPLITS,
    SMALL_FRAMES,
    SMALL_SEED,
    Zygote,
    hashes,
    prepare,
)

from vposer_data.config import PrepareConfig
from vposer_data.prepare import prepare_vposer_datasets
from vposer_data.synthetic import write_amass_tree


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SMPL+H-era tree of 8000 frames. Read-only."""
    root = tmp_path_factory.mktemp("faults_small_amass")
    write_amass_tree(root, total_frames=SMALL_FRAMES, release="smplh", seed=SMALL_SEED)
    return root


@pytest.fixture(scope="session")
def small_reference(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_tree`` prepared without incident (SPLITS, ``config()``). Read-only."""
    out = tmp_path_factory.mktemp("faults_small_reference") / "out"
    prepare(small_tree, out)
    return out


@pytest.fixture(scope="session")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SMPL+H-era tree of 40,000 frames. Read-only."""
    root = tmp_path_factory.mktemp("faults_big_amass")
    write_amass_tree(root, total_frames=BIG_FRAMES, release="smplh", seed=BIG_SEED)
    return root


@pytest.fixture(scope="session")
def big_reference_dir(big_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``big_tree`` prepared without incident (BIG_SPLITS, BIG_CONFIG). Read-only."""
    out = tmp_path_factory.mktemp("faults_big_reference") / "out"
    prepare_vposer_datasets(BIG_SPLITS, big_tree, out, config=PrepareConfig(**BIG_CONFIG))
    return out


@pytest.fixture(scope="session")
def big_reference(big_reference_dir: Path) -> dict[str, str]:
    """Stage III hashes of ``big_reference_dir``: what every interrupted run must end with."""
    return hashes(big_reference_dir)


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    """A child that has imported torch and the package, forking fresh runs on demand."""
    forker = Zygote(tmp_path_factory.mktemp("faults_fifos"))
    try:
        yield forker
    finally:
        forker.close()
