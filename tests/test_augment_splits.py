"""``augment_splits``: the pose-changing augmentations (mirror, random_zrot, noise,
remove_zrot) and the passes apply to the training split by default; validation and test keep
their source poses, and the derived fields (matrot, ...) are in every split (issue 22)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SPLITS, load_split, prepare, read_manifest

from vposer_data import ConfigError, PrepareConfig, StaleOutputError
from vposer_data.augment.ops import apply_augmentations
from vposer_data.augment.registry import parse_augmentations
from vposer_data.summary import summarize

MIRROR = ["mirror", "matrot"]


@pytest.fixture(scope="module")
def plain(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("augment_splits") / "plain"
    prepare(small_tree, out)
    return out


@pytest.fixture(scope="module")
def mirrored(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("augment_splits") / "mirrored"
    prepare(small_tree, out, augmentations=MIRROR)
    return out


def _source_poses(tree: Path, out: Path, split: str) -> np.ndarray:
    """Each sample's pose_body read from its AMASS file and frame, cast to float32."""
    files = read_manifest(out)["stages"]["stage_I"][split]["files"]
    tensors = load_split(out, split)
    rows = []
    for seq, frame in zip(tensors["seq_id"].tolist(), tensors["frame_id"].tolist(), strict=True):
        with np.load(tree / files[seq]["path"], allow_pickle=False) as npz:
            rows.append(npz["poses"][frame, 3:66])
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("split", ["vald", "test"])
def test_mirror_leaves_validation_and_test_as_their_source_frames(
    small_tree: Path, mirrored: Path, plain: Path, split: str
) -> None:
    poses = load_split(mirrored, split)["pose_body"].numpy()
    assert np.array_equal(poses, _source_poses(small_tree, mirrored, split))
    ours, reference = load_split(mirrored, split), load_split(plain, split)
    assert ours.keys() == reference.keys() and "pose_body_matrot" in ours
    for name in ours:  # every field, matrot included: the folder without mirror's
        assert torch.equal(ours[name], reference[name]), name


def test_mirror_mirrors_every_training_sample(mirrored: Path, plain: Path) -> None:
    ours, source = load_split(mirrored, "train"), load_split(plain, "train")
    expected = apply_augmentations(
        {k: v for k, v in source.items() if k != "pose_body_matrot"},
        parse_augmentations(MIRROR),
        torch.Generator().manual_seed(0),  # p=1: nothing is drawn
    )
    for name in ("root_orient", "pose_body", "pose_body_matrot", "trans"):
        assert torch.equal(ours[name], expected[name]), name
    assert not torch.equal(ours["pose_body"], source["pose_body"])


def test_info_says_which_splits_were_augmented(mirrored: Path, plain: Path) -> None:
    assert "mirror applied to train only (vald, test: source poses)" in summarize(mirrored)
    assert "augmentations: no pose-changing one" in summarize(plain)


def test_passes_apply_to_the_augmented_splits_only(small_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "passes"
    noisy = [{"name": "noise", "sigma": 0.01}, "matrot"]
    result = prepare(small_tree, out, augmentations=noisy, augment_passes=2)
    stage1 = read_manifest(out)["stages"]["stage_I"]
    assert result.samples["train"] == 2 * stage1["train"]["samples"]
    assert result.samples["vald"] == stage1["vald"]["samples"]


def test_augment_splits_is_part_of_the_identity(small_tree: Path, mirrored: Path) -> None:
    with pytest.raises(StaleOutputError, match=r"augment_splits: existing \['train'\], requested"):
        prepare(small_tree, mirrored, augmentations=MIRROR, augment_splits=["train", "vald"])
    # without a pose-changing augmentation it changes nothing, and is left out
    assert "augment_splits" not in PrepareConfig().identity()
    assert PrepareConfig(augment_splits=["vald"]).identity() == PrepareConfig().identity()


def test_augment_splits_must_name_splits_of_the_mapping(small_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="augment_splits=\\('training',\\): the split mapping"):
        prepare(small_tree, tmp_path / "o", augmentations=MIRROR, augment_splits=["training"])
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="augment_splits=\\(\\): names no split"):
        PrepareConfig(augmentations=MIRROR, augment_splits=[])
    assert set(SPLITS) >= set(PrepareConfig().augment_splits)
