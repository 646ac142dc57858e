"""Changed AMASS inputs under an existing output are loud, not silently reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vposer_data.config import PrepareConfig
from vposer_data.errors import PrepareError, StaleOutputError
from vposer_data.prepare import prepare_vposer_datasets
from vposer_data.synthetic import write_amass_tree, write_motion_npz

SPLITS = {"train": ["CMU"], "vald": ["HumanEva"]}
CONFIG = PrepareConfig(progress=False, num_workers=0)


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, Path]:
    amass = tmp_path / "amass"
    write_amass_tree(amass, total_frames=6000, seed=3)
    out = tmp_path / "out"
    prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    return amass, out


def _first_motion(folder: Path) -> Path:
    return sorted(folder.rglob("*_poses.npz"))[0]


def test_unchanged_inputs_are_reused(prepared: tuple[Path, Path]) -> None:
    amass, out = prepared
    assert prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG).ran == []


def test_an_added_motion_file_is_named_and_overwrite_includes_it(
    prepared: tuple[Path, Path],
) -> None:
    amass, out = prepared
    before = prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG).samples["train"]
    rng = np.random.default_rng(0)
    subject = _first_motion(amass / "CMU").parent
    added = subject / "zz_added_poses.npz"
    write_motion_npz(added, "smplh", 600, 120.0, "male", rng.normal(size=16), rng)
    with pytest.raises(
        StaleOutputError, match=r"split 'train'.*1 added \(e\.g\. CMU/.*zz_added_poses"
    ):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    result = prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG, overwrite=True)
    assert result.samples["train"] > before
    # without amass_dir, the prepared data is used as it is
    assert prepare_vposer_datasets(SPLITS, None, out, config=CONFIG).ran == []


def test_removed_and_replaced_files_are_named(prepared: tuple[Path, Path]) -> None:
    amass, out = prepared
    victim = _first_motion(amass / "HumanEva")
    victim.unlink()
    with pytest.raises(StaleOutputError, match=r"split 'vald'.*1 removed \(e\.g\. HumanEva/"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def test_a_file_replaced_by_another_of_the_same_name_is_noticed(
    prepared: tuple[Path, Path],
) -> None:
    amass, out = prepared
    target = _first_motion(amass / "CMU")
    rng = np.random.default_rng(1)
    write_motion_npz(target, "smplh", 321, 120.0, "male", rng.normal(size=16), rng)
    with pytest.raises(StaleOutputError, match="files replaced"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def test_a_vanished_amass_dir_says_to_pass_none(prepared: tuple[Path, Path]) -> None:
    amass, out = prepared
    shutil.rmtree(amass)
    with pytest.raises(PrepareError, match="amass_dir=None"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    assert prepare_vposer_datasets(SPLITS, None, out, config=CONFIG).ran == []
