"""Shared fixtures: small synthetic AMASS trees written once per session, made-up body models
written once per run, and prepared folders the tests only read. The plain functions they use
are in ``tests/helpers.py``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
from helpers import BODY_MODEL_SEED, TRAINING_FRAMES, TRAINING_SPLITS, TreeCache, prepare

from vposer_data.synthetic import RELEASES, SyntheticSummary
from vposer_data.synthetic_models import write_body_models

#: Frames and seed of the per-release trees of the split and synthetic-tree tests: small
#: enough to be fast, large enough that every dataset gets at least one motion and BML gets
#: several subjects.
SMALL_TREE_FRAMES = 8000
SMALL_TREE_SEED = 7


@pytest.fixture(scope="session")
def amass_tree(tmp_path_factory: pytest.TempPathFactory) -> TreeCache:
    """``amass_tree(frames=8000, release="smplh", seed=11)``: the root of a synthetic tree,
    written once per session for those arguments. Read-only: copy it to change it."""
    return TreeCache(tmp_path_factory)


@pytest.fixture(scope="session")
def small_tree(amass_tree: TreeCache) -> Path:
    """The default SMPL+H-era tree (8000 frames, seed 11). Read-only."""
    return amass_tree()


@pytest.fixture(scope="session")
def small_reference(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_tree`` prepared without incident (SPLITS, ``config()``). Read-only: tests copy
    it to damage it, or check that it stays untouched."""
    out = tmp_path_factory.mktemp("small_reference") / "out"
    prepare(small_tree, out)
    return out


@pytest.fixture(scope="session")
def training_dir(amass_tree: TreeCache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training-side tests' folder: a tree of TRAINING_FRAMES prepared with
    TRAINING_SPLITS and ``config()``. Read-only: tests copy it to damage it."""
    out = tmp_path_factory.mktemp("training") / "vposer"
    prepare(amass_tree(TRAINING_FRAMES), out, TRAINING_SPLITS)
    return out


@pytest.fixture(scope="session")
def small_tree_frames() -> int:
    """The frame total requested for each per-release tree."""
    return SMALL_TREE_FRAMES


@pytest.fixture(scope="session")
def synthetic_trees(amass_tree: TreeCache) -> dict[str, tuple[Path, SyntheticSummary]]:
    """release -> (root, summary) of a small synthetic tree. Read-only."""
    trees = {}
    for release in RELEASES:
        summary = amass_tree.summary(SMALL_TREE_FRAMES, release, SMALL_TREE_SEED)
        trees[release] = (Path(summary.root), summary)
    return trees


@pytest.fixture(scope="session")
def smplh_tree(synthetic_trees: dict[str, tuple[Path, SyntheticSummary]]) -> Path:
    """The SMPL+H-era tree (folder names such as ``BioMotionLab_NTroje``, ``*_poses.npz``)."""
    return synthetic_trees["smplh"][0]


@pytest.fixture(scope="session")
def smplx_tree(synthetic_trees: dict[str, tuple[Path, SyntheticSummary]]) -> Path:
    """The SMPL-X-era tree (folder names such as ``BMLrub``, ``*_stageii.npz``)."""
    return synthetic_trees["smplx"][0]


@pytest.fixture(scope="session", params=sorted(RELEASES))
def release_tree(
    request: pytest.FixtureRequest,
    synthetic_trees: dict[str, tuple[Path, SyntheticSummary]],
) -> tuple[str, Path, SyntheticSummary]:
    """(release, root, summary), once per release."""
    release = request.param
    root, summary = synthetic_trees[release]
    return release, root, summary


@pytest.fixture(scope="session")
def body_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made-up models of every family and gender in the AMASS layout, and the female ones in
    the smplx package's layout too (seed ``BODY_MODEL_SEED``). Read-only. A full set takes
    several seconds to write, so the xdist workers of one run share it: the first to get the
    lock writes it, the others find it complete."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / f"body_models_seed{BODY_MODEL_SEED}"
    done = shared / f"body_models_seed{BODY_MODEL_SEED}.done"
    with open(shared / f"body_models_seed{BODY_MODEL_SEED}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            write_body_models(root, seed=BODY_MODEL_SEED)
            write_body_models(root, genders=("female",), layouts=("smplx",), seed=BODY_MODEL_SEED)
            done.touch()
    return root
