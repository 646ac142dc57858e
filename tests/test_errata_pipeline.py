"""Frame-rate errata and named exclusions through prepare, the command line and info, on a
synthetic tree holding the files real AMASS has that they are about."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vposer_data import ConfigError, PrepareConfig, StaleOutputError, prepare_vposer_datasets
from vposer_data.cli import main as cli_main
from vposer_data.errata import AMASS_FPS_ERRATA, EXCLUDE_TREADMILL
from vposer_data.manifest import split_dir
from vposer_data.synthetic import write_amass_tree, write_motion_npz

QUIET = {"progress": False, "num_workers": 0}


@pytest.fixture(scope="module", params=["smplh", "smplx"])
def tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp(f"errata_{request.param}")
    write_amass_tree(root, total_frames=8000, release=request.param, errata_examples=True)
    return root


def stage1(out: Path, split: str) -> dict[str, Any]:
    data = json.loads((out / "manifest.json").read_text())
    return data["stages"]["stage_I"][split]


def test_bmlhandball_is_clocked_at_240_hz_and_the_override_is_recorded(
    tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, logger="vposer_data")
    config = PrepareConfig(sampling="fps", target_fps=30, **QUIET)
    prepare_vposer_datasets({"train": ["BMLhandball"], "test": ["SSM"]}, tree, out, config=config)
    record = stage1(out, "train")
    assert {f["fps"] for f in record["files"]} == {240.0}
    assert {(o["file_fps"], o["fps"], o["pattern"]) for o in record["fps_overrides"]} == {
        (120.0, 240.0, "BMLhandball")
    }
    assert len(record["fps_overrides"]) == len(record["files"]) == 2
    # the frames follow the 240 Hz clock: every 8th frame for 30 Hz (every 4th at the file's
    # 120 Hz), from the first frame left by trimming a tenth at each end to the last
    import torch

    frame_id = torch.load(split_dir(out, "train") / "frame_id.pt", weights_only=True)
    seq_id = torch.load(split_dir(out, "train") / "seq_id.pt", weights_only=True)
    for seq, item in enumerate(record["files"]):
        cut = item["frames"] // 10
        expected = np.arange(cut, item["frames"] - cut, 8)
        assert np.array_equal(frame_id[seq_id == seq].numpy(), expected)
    # SSM: the two subjects with errata at 59 Hz, whatever the release calls the folder
    ssm = stage1(out, "test")
    fixed = {o["path"].split("/")[1]: o["fps"] for o in ssm["fps_overrides"]}
    assert fixed == {"20160930_50032": 59.0, "20161014_50033": 59.0}
    assert all(f["fps"] != 59.0 for f in ssm["files"] if "20161014_50031" in f["path"])
    warnings = [r.getMessage() for r in caplog.records if "frame rate overridden" in r.getMessage()]
    assert len(warnings) == 2  # once per dataset
    assert any("120 -> 240 Hz" in w and "BMLhandball" in w for w in warnings)
    log = (out / "prepare.log").read_text()
    assert "frame rate overridden for 2 of 2 files" in log


def test_an_empty_mapping_disables_the_errata_and_random_sampling_ignores_them(
    tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "off"
    config = PrepareConfig(sampling="fps", target_fps=30, fps_overrides={}, **QUIET)
    prepare_vposer_datasets({"train": ["BMLhandball"]}, tree, out, config=config)
    assert {f["fps"] for f in stage1(out, "train")["files"]} == {120.0}
    assert stage1(out, "train")["fps_overrides"] == []
    assert "fps_overrides" not in PrepareConfig().identity()  # rates unused by random sampling
    assert PrepareConfig(sampling="fps", target_fps=30).identity()["fps_overrides"] == dict(
        AMASS_FPS_ERRATA
    )


def test_a_file_without_a_rate_that_an_override_covers_needs_no_default_fps(
    tmp_path: Path,
) -> None:
    amass = tmp_path / "amass"
    path = amass / "BMLhandball" / "S01" / "m_poses.npz"
    path.parent.mkdir(parents=True)
    write_motion_npz(path, "smplh", 600, 120.0, "male", np.zeros(16), np.random.default_rng(1))
    with np.load(path) as data:
        values = {k: data[k] for k in data.files if k != "mocap_framerate"}
    np.savez(path, **values)
    out = tmp_path / "out"
    config = PrepareConfig(sampling="fps", target_fps=30, **QUIET)
    prepare_vposer_datasets({"train": ["BMLhandball"]}, amass, out, config=config)
    (item,) = stage1(out, "train")["files"]
    assert item["fps"] == 240.0 and stage1(out, "train")["skipped"] == []


def test_the_treadmill_preset_excludes_exactly_the_matching_files(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    config = PrepareConfig(exclude=["treadmill"], **QUIET)
    result = prepare_vposer_datasets({"train": ["BMLrub"]}, tree, out, config=config)
    record = stage1(out, "train")
    excluded = {Path(e["path"]).name.split("_")[1]: e["reason"] for e in record["excluded"]}
    assert set(excluded) == {"treadmill", "normal"}
    assert all("HuMoR" in reason for reason in excluded.values())
    kept = {Path(f["path"]).name for f in record["files"]}
    assert not any("_treadmill_" in n or "_normal_" in n for n in kept)
    assert any("_circle_walk" in n for n in kept) and any("_throwing_" in n for n in kept)
    assert result.skipped["train"] == 0 and record["skipped"] == []  # not counted as bad
    capsys.readouterr()
    assert cli_main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "excluded by name (exclude): 2" in text and "treadmill" in text
    assert "excluded" in (out / "prepare.log").read_text()
    # the same folder, asked for without the exclusion, is a named difference
    with pytest.raises(StaleOutputError, match="exclude"):
        prepare_vposer_datasets({"train": ["BMLrub"]}, tree, out, config=PrepareConfig(**QUIET))


def test_exclusions_from_the_command_line(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    skating = json.dumps({"pattern": "HDM05/**/dg/HDM_dg_07-01*", "reason": "inline skating"})
    args = ["prepare", "--amass-dir", str(tree), "--out", str(out), "--no-progress"]
    splits = json.dumps({"train": ["HDM05"]})
    assert cli_main([*args, "--splits", splits, "--exclude", skating]) == 0
    record = stage1(out, "train")
    assert [Path(e["path"]).name[:13] for e in record["excluded"]] == ["HDM_dg_07-01_"]
    assert record["excluded"][0]["reason"] == "inline skating"


def test_bad_exclusions_and_overrides_name_the_entry() -> None:
    with pytest.raises(ConfigError, match="'skating' is not a preset"):
        PrepareConfig(exclude=["skating"])
    with pytest.raises(ConfigError, match="exclusion #0"):
        PrepareConfig(exclude=[{"pattern": "HDM05/x"}])
    with pytest.raises(ConfigError, match="fps_overrides"):
        PrepareConfig(fps_overrides={"BMLhandball": -240})
    assert PrepareConfig(exclude=list(EXCLUDE_TREADMILL)).exclude == EXCLUDE_TREADMILL


def test_fps_overrides_from_the_command_line(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["prepare", "--amass-dir", str(tree), "--out", str(out), "--no-progress"]
    splits = json.dumps({"train": ["BMLhandball"]})
    overrides = json.dumps({"BMLhandball/S01_Expert": 200})
    given = ["--splits", splits, "--target-fps", "25", "--fps-overrides", overrides]
    assert cli_main([*args, *given]) == 0
    rates = {f["path"].split("/")[1]: f["fps"] for f in stage1(out, "train")["files"]}
    assert rates == {"S01_Expert": 200.0, "S02_Novice": 120.0}  # the given mapping replaces
