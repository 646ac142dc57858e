"""The manifest's records are declared (vposer_data.records): the declared form of every record
of a real prepared folder writes back exactly the JSON the folder holds, and the manifest
refuses a record of the wrong stage."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import prepare, read_manifest

from vposer_data.manifest import STAGE_I, STAGE_II, STAGE_III, Manifest
from vposer_data.records import Stage1Record, Stage2Record, Stage3Record

DECLARED = {STAGE_I: Stage1Record, STAGE_II: Stage2Record, STAGE_III: Stage3Record}


def _assert_round_trips(root: Path) -> int:
    stages = read_manifest(root)["stages"]
    checked = 0
    for stage, records in stages.items():
        for split, data in records.items():
            assert DECLARED[stage].from_json(data).to_json() == data, (stage, split)
            checked += 1
    return checked


def test_records_of_a_frame_folder_round_trip(small_reference: Path) -> None:
    assert _assert_round_trips(small_reference) == 3 * len(Manifest.load(small_reference).splits)
    final = Manifest.load(small_reference).stage3("train")
    assert final is not None and final.statistics is not None


def test_records_of_a_clip_folder_with_rate_overrides_round_trip(
    small_tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clips"
    prepare(
        small_tree,
        out,
        sampling="clips",
        target_fps=30.0,
        clip_frames=8,
        fps_overrides={"*": 60.0},
        augmentations=["matrot", "velocities"],
    )
    assert _assert_round_trips(out) > 0
    stage1 = Manifest.load(out).stage1("train")
    assert stage1 is not None and stage1.fps_overrides and stage1.inputs is not None


def test_a_record_of_another_stage_is_refused(small_reference: Path, tmp_path: Path) -> None:
    manifest = Manifest(tmp_path, read_manifest(small_reference))
    stage3 = manifest.stage3("train")
    assert stage3 is not None
    with pytest.raises(TypeError, match="Stage1Record"):
        manifest.set_record(STAGE_I, "train", stage3)
