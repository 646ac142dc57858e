"""What a new user meets around a run (issue 22): inputs are checked before anything is
created, and ``prepare.log`` says when a run was interrupted or stopped, and what the next run
resumed from."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from helpers import SPLITS, prepare

from vposer_data import AmassFormatError, SplitError, VPoserDataModule
from vposer_data.prepare import LOG_NAME


@pytest.mark.parametrize(
    "splits, amass",
    [
        ({**SPLITS, "vald": ["HumanEva", "NoSuchDataset"]}, "tree"),
        (SPLITS, "missing"),
        ({**SPLITS, "test": ["SFU", "CMU"]}, "tree"),  # CMU twice
    ],
    ids=["unknown-dataset", "missing-amass-dir", "dataset-twice"],
)
def test_bad_inputs_create_nothing(
    small_tree: Path, tmp_path: Path, splits: dict[str, list[str]], amass: str
) -> None:
    tree = small_tree if amass == "tree" else tmp_path / "no_amass"
    fresh, empty = tmp_path / "fresh" / "out", tmp_path / "empty"
    empty.mkdir()
    for out in (fresh, empty):
        with pytest.raises(SplitError):
            prepare(tree, out, splits)
    assert not fresh.parent.exists()
    assert list(empty.iterdir()) == []  # no manifest.json, prepare.log or lock file
    with pytest.raises(SplitError):  # nor through the DataModule
        VPoserDataModule(data_dir=fresh, amass_dir=tree, splits=splits).prepare_data()
    assert not fresh.parent.exists()


def test_an_interrupted_run_and_its_resumption_are_in_the_log(
    small_tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    def ctrl_c_in_stage_ii(line: str) -> None:
        if line.startswith("stage II"):  # every Stage I split is recorded by now
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        prepare(small_tree, out, logger=ctrl_c_in_stage_ii)
    log = (out / LOG_NAME).read_text()
    assert (
        "run interrupted (Ctrl-C); kept (recorded in the manifest): stage_I/train, "
        "stage_I/vald, stage_I/test; the next run resumes from there"
    ) in log

    prepare(small_tree, out)
    runs = (out / LOG_NAME).read_text().split("=== vposer_data")
    assert len(runs) == 3  # before the first header, then one part per run
    assert "resuming the preparation started" not in runs[1]
    assert (
        "already recorded: stage_I/train, stage_I/vald, stage_I/test; to do: stage_II/train, "
        "stage_II/vald, stage_II/test, stage_III/train, stage_III/vald, stage_III/test"
    ) in runs[2]
    assert "run interrupted" not in runs[2] and "done: samples per split" in runs[2]


def test_a_run_stopped_by_an_error_says_so_in_the_log(small_tree: Path, tmp_path: Path) -> None:
    tree = tmp_path / "amass"
    shutil.copytree(small_tree, tree)
    damaged = sorted((tree / "SFU").rglob("*_poses.npz"))[0]
    damaged.write_bytes(damaged.read_bytes()[:200])  # the test split: read last
    out = tmp_path / "out"
    with pytest.raises(AmassFormatError):
        prepare(tree, out, strict=True)
    log = (out / LOG_NAME).read_text()
    assert "run stopped by AmassFormatError: " in log
    assert "kept (recorded in the manifest): stage_I/train, stage_I/vald;" in log
