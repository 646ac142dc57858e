"""Shared fixtures: small synthetic AMASS trees, one per release, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from vposer_data.synthetic import RELEASES, SyntheticSummary, write_amass_tree

#: Frames in each session tree: small enough to be fast, large enough that every dataset
#: gets at least one motion and BML gets several subjects.
SMALL_TREE_FRAMES = 8000
SMALL_TREE_SEED = 7


@pytest.fixture(scope="session")
def small_tree_frames() -> int:
    """The frame total requested for each session tree."""
    return SMALL_TREE_FRAMES


@pytest.fixture(scope="session")
def synthetic_trees(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, SyntheticSummary]]:
    """release -> (root, summary) of a small synthetic tree. Treat as read-only."""
    trees = {}
    for release in RELEASES:
        root = tmp_path_factory.mktemp(f"amass_{release}")
        summary = write_amass_tree(
            root, total_frames=SMALL_TREE_FRAMES, release=release, seed=SMALL_TREE_SEED
        )
        trees[release] = (root, summary)
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
