"""SIGKILL and Ctrl-C while the body-model fields are made (contacts in Stage I's readers,
joints in Stage II's workers), at points drawn by a seeded schedule: the rerun resumes and its
Stage III output is byte-identical to an uninterrupted run's."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    BIG_CONFIG,
    BIG_SPLITS,
    ForkedRun,
    Zygote,
    press_ctrl_c,
    schedule,
    shortest_segments,
    survivors,
    wait_for,
)
from helpers import assert_nothing_partial, file_hashes, prepare, read_manifest, recorded_pairs

from vposer_data.manifest import STAGES
from vposer_data.synthetic_models import write_body_models

ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in BIG_SPLITS}
AUGMENTATIONS: list[Any] = [{"name": "joints", "set": "all"}, "contacts", "matrot"]
#: Kills per stage where the fields are made: Stage I (contacts) and Stage II (joints).
POINTS = 2


@pytest.fixture(scope="module")
def body_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("body_models")
    write_body_models(root, families=("smplh",))
    return root


@pytest.fixture(scope="module")
def body_config(body_models: Path) -> dict[str, Any]:
    return {**BIG_CONFIG, "augmentations": AUGMENTATIONS, "body_model_dir": str(body_models)}


@pytest.fixture(scope="module")
def body_reference(
    big_tree: Path, body_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    out = tmp_path_factory.mktemp("body_reference") / "out"
    prepare(big_tree, out, BIG_SPLITS, **body_config)
    assert "joints" in read_manifest(out)["stages"]["stage_III"]["train"]["fields"]
    return file_hashes(out)


def _points(start: Any, tmp_path: Path, seed: int) -> list[Any]:
    parts = shortest_segments(start, tmp_path, 1)
    points = schedule(parts, random.Random(seed), POINTS)
    return [p for p in points if p[0].stage in ("stage_I", "stage_II")]


def test_sigkill_while_making_joints_and_contacts_then_rerun(
    big_tree: Path,
    body_config: dict[str, Any],
    body_reference: dict[str, str],
    zygote: Zygote,
    tmp_path: Path,
) -> None:
    def start(out: Path) -> ForkedRun:
        job = {"amass": str(big_tree), "out": str(out), "splits": BIG_SPLITS}
        return zygote.start({**job, "config": body_config, "timing": True})

    points = _points(start, tmp_path, 77)
    assert len(points) == 2 * POINTS
    for i, (segment, delay) in enumerate(points):
        out = tmp_path / f"kill{i}"
        run = start(out)
        wait_for(run, segment.after)
        time.sleep(delay)
        members = run.members()
        run.kill()
        run.wait(timeout=30)
        assert survivors(members) == []
        recorded = recorded_pairs(read_manifest(out)) if (out / "manifest.json").exists() else set()
        result = prepare(big_tree, out, BIG_SPLITS, **body_config)
        assert set(result.ran) == ALL_PAIRS - recorded, i
        assert file_hashes(out) == body_reference, i
        assert_nothing_partial(out)


def test_ctrl_c_while_making_joints_and_contacts_then_resume(
    big_tree: Path,
    body_models: Path,
    body_config: dict[str, Any],
    body_reference: dict[str, str],
    zygote: Zygote,
    tmp_path: Path,
) -> None:
    def start(out: Path) -> ForkedRun:
        argv = [
            "-v", "prepare", "--amass-dir", str(big_tree), "--out", str(out),
            "--splits", json.dumps(BIG_SPLITS), "--num-workers", "2", "--batch-size", "1024",
            "--no-progress", "--body-model-dir", str(body_models),
            *(
                a
                for spec in AUGMENTATIONS
                for a in ("--augment", spec if isinstance(spec, str) else json.dumps(spec))
            ),
        ]  # fmt: skip
        return zygote.start({"cli": argv})

    points = _points(start, tmp_path, 78)
    for i, (segment, delay) in enumerate(points):
        out = tmp_path / f"int{i}"
        run = start(out)
        outcome, output = press_ctrl_c(run, segment.after, delay)
        assert outcome["rc"] in (130, None), output
        assert "Traceback" not in output and "Exception ignored" not in output, output
        recorded = recorded_pairs(read_manifest(out)) if (out / "manifest.json").exists() else set()
        assert_nothing_partial(out)
        result = prepare(big_tree, out, BIG_SPLITS, **body_config)
        assert set(result.ran) == ALL_PAIRS - recorded, i
        assert file_hashes(out) == body_reference, i
