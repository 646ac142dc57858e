"""The fault suite's guarantees for clip folders (``sampling="clips"``), on the larger tree with
random per-clip augmentations, two passes and small Stage II batches (several per split):

- deterministic: the same bytes (every Stage III file and ``statistics.pt``) for 0 and 2
  workers and for a tree listed in reverse order;
- resumable: SIGKILL at seeded points in each stage, then a rerun, ends byte-identical to an
  uninterrupted run, with nothing partial left or recorded;
- stale is loud: each clip setting changed over a clip folder is refused, naming only that
  setting; settings clips do not use, or that do not change the data, reuse the folder;
- Ctrl-C at seeded points exits cleanly (130, one line, no traceback) and a rerun resumes to
  the same bytes.

Runs are forked from the session's zygote and timed from their own log lines, as in
test_fault_sigkill and test_fault_sigint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from fault_helpers import (
    BIG_SPLITS,
    ForkedRun,
    Segment,
    Zygote,
    landed_in,
    partial_final_splits,
    press_ctrl_c,
    schedule,
    segments,
    survivors,
    timed_events,
    wait_for,
)
from helpers import (
    assert_nothing_partial,
    file_hashes,
    prepare,
    read_manifest,
    record_problems,
    recorded_pairs,
    sha256,
    snapshot,
    temp_files,
)
from test_guarantees import copy_tree_reversed, listing_order

from vposer_data.errors import StaleOutputError
from vposer_data.manifest import STAGES
from vposer_data.prepare import PrepareResult
from vposer_data.statistics import STATISTICS_NAME
from vposer_data.summary import verify

T = 16
AUGMENTATIONS: list[Any] = [
    {"name": "mirror", "p": 0.5},
    "random_zrot",
    {"name": "noise", "sigma": 0.01},
    "matrot",
    "velocities",
]
#: Clips of 16 ticks at 30 Hz, randomly augmented twice, 64 rows per Stage II batch.
CLIP_CONFIG: dict[str, Any] = {
    "sampling": "clips",
    "target_fps": 30,
    "clip_frames": T,
    "augmentations": AUGMENTATIONS,
    "augment_passes": 2,
    "batch_size": 64,
    "progress": False,
    "num_workers": 2,
}
#: The same settings as command-line flags (for the Ctrl-C runs, which exercise the command).
CLIP_FLAGS = [
    "--sampling", "clips", "--target-fps", "30", "--clip-frames", str(T),
    *(a for x in AUGMENTATIONS for a in ("--augment", x if isinstance(x, str) else json.dumps(x))),
    "--augment-passes", "2", "--batch-size", "64", "--num-workers", "2", "--no-progress",
]  # fmt: skip
ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in BIG_SPLITS}
INTERRUPTED = "Interrupted; completed stages are kept and the next run resumes."


def clip_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every Stage III file and of the output root's ``statistics.pt``."""
    hashes = file_hashes(root)
    stats = root / STATISTICS_NAME
    if stats.exists():
        hashes[STATISTICS_NAME] = sha256(stats)
    return hashes


def prepare_clips(tree: Path, out: Path, **changes: Any) -> PrepareResult:
    return prepare(tree, out, BIG_SPLITS, **{**CLIP_CONFIG, **changes})


@pytest.fixture(scope="module")
def clip_reference_dir(big_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``big_tree`` prepared as clips without incident, in-process, without workers.
    Read-only."""
    out = tmp_path_factory.mktemp("faults_clip_reference") / "out"
    prepare_clips(big_tree, out, num_workers=0)
    return out


@pytest.fixture(scope="module")
def clip_reference(clip_reference_dir: Path) -> dict[str, str]:
    """What every clip run of ``big_tree`` must end with."""
    hashes = clip_hashes(clip_reference_dir)
    assert STATISTICS_NAME in hashes
    return hashes


@pytest.fixture(scope="module")
def clip_segments(
    big_tree: Path,
    clip_reference: dict[str, str],
    zygote: Zygote,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Segment]:
    """The stages' segments of two uninterrupted forked clip runs (each its shortest), whose
    output (2 DataLoader workers, in a forked child) is checked against the reference."""
    root = tmp_path_factory.mktemp("faults_clip_timing")
    timings = []
    for k in range(2):
        out = root / f"timing{k}"
        timings.append(segments(timed_events(start_clip_run(zygote, big_tree, out))))
        assert clip_hashes(out) == clip_reference
        shutil.rmtree(out)
    parts = [min(column, key=lambda s: s.seconds) for column in zip(*timings, strict=True)]
    assert [s.stage for s in parts] == [s for s in STAGES for _ in BIG_SPLITS]
    return parts


def start_clip_run(zygote: Zygote, tree: Path, out: Path) -> ForkedRun:
    job = {"amass": str(tree), "out": str(out), "splits": BIG_SPLITS, "config": CLIP_CONFIG}
    return zygote.start({**job, "timing": True})


# --------------------------------------------------------------------------- deterministic


def test_clip_reference_is_clips_in_several_batches(
    clip_reference_dir: Path, clip_reference: dict[str, str]
) -> None:
    """The reference really is what the other tests claim: clips of T frames with velocities,
    two passes, several Stage II batches per split, statistics recorded."""
    manifest = read_manifest(clip_reference_dir)
    assert manifest["complete"]
    for split in BIG_SPLITS:
        record = manifest["stages"]["stage_III"][split]
        assert record["samples"] > 64, (split, record["samples"])  # several batches
        assert {"trans_vel", "root_angvel", "canon_yaw", "pose_body_matrot"} <= set(
            record["fields"]
        )
        assert f"stage_III/{split}/pose_body.pt" in clip_reference
    pose = torch.load(clip_reference_dir / "stage_III/train/pose_body.pt", weights_only=True)
    assert pose.shape[1:] == (T, 63)
    assert "statistics" in manifest["stages"]["stage_III"]["train"]
    assert verify(clip_reference_dir) == []


def test_clip_bytes_do_not_depend_on_workers_or_listing_order(
    big_tree: Path,
    clip_reference: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_workers = tmp_path / "workers2"
    prepare_clips(big_tree, with_workers, num_workers=2)
    assert clip_hashes(with_workers) == clip_reference

    copy = tmp_path / "reversed_copy"
    copy_tree_reversed(big_tree, copy)
    real_walk = os.walk

    def reversed_walk(top: Any, *args: Any, **kwargs: Any) -> Any:
        for dirpath, dirnames, filenames in real_walk(top, *args, **kwargs):
            dirnames.reverse()  # in place: the walk descends in reverse order too
            yield dirpath, dirnames, filenames[::-1]

    normal = listing_order(copy)
    monkeypatch.setattr(os, "walk", reversed_walk)
    assert listing_order(copy) != normal  # the listing really differs now
    reversed_out = tmp_path / "reversed"
    prepare_clips(copy, reversed_out, num_workers=2)
    monkeypatch.undo()
    assert clip_hashes(reversed_out) == clip_reference


# --------------------------------------------------------------------------- SIGKILL

KILL_SEED = 2468
KILLS_PER_STAGE = 2


def test_clip_run_killed_at_seeded_points_then_rerun_equals_uninterrupted_run(
    big_tree: Path,
    clip_reference: dict[str, str],
    clip_segments: list[Segment],
    zygote: Zygote,
    tmp_path: Path,
) -> None:
    points = schedule(clip_segments, random.Random(KILL_SEED), KILLS_PER_STAGE)
    landed: Counter[str] = Counter()
    for i, (segment, delay) in enumerate(points):
        out = tmp_path / f"kill{i:02d}"
        run = start_clip_run(zygote, big_tree, out)
        wait_for(run, segment.after)
        time.sleep(delay)
        members = run.members()
        run.kill()
        run.wait(timeout=30)
        assert survivors(members) == [], "processes of the killed run are still running"

        stage = landed_in(out, BIG_SPLITS)
        landed[stage] += 1
        assert record_problems(out) == [], (i, stage)  # nothing partial recorded
        assert partial_final_splits(out, clip_reference) == [], (i, stage)
        stats = out / STATISTICS_NAME
        if stats.exists():  # written whole under a temp name, or not at all
            assert sha256(stats) == clip_reference[STATISTICS_NAME], (i, stage)
        recorded = recorded_pairs(read_manifest(out))

        result = prepare_clips(big_tree, out, num_workers=2 if i % 2 else 0)
        assert set(result.ran) == ALL_PAIRS - recorded, (i, stage)  # only what was missing
        assert clip_hashes(out) == clip_reference, (i, stage)
        assert temp_files(out) == [], (i, stage)
        assert verify(out) == [], (i, stage)
        shutil.rmtree(out)

    print(f"\nclip SIGKILL points: {len(points)}; landed per stage {dict(sorted(landed.items()))}")
    assert sum(landed[s] for s in STAGES) >= len(points) - 2, landed
    assert all(landed[s] >= 1 for s in STAGES), landed


# --------------------------------------------------------------------------- stale settings


@pytest.fixture
def clip_folder(clip_reference_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the clip reference."""
    out = tmp_path / "out"
    shutil.copytree(clip_reference_dir, out)
    return out


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("clip_frames", 8),
        ("clip_stride", 8),
        ("canonicalize", False),
        ("target_fps", 25),
        ("batch_size", 128),  # random augmentations draw per batch: part of the identity
    ],
)
def test_a_changed_clip_setting_is_stale_and_named(
    big_tree: Path, clip_folder: Path, setting: str, value: Any
) -> None:
    before = snapshot(clip_folder)
    with pytest.raises(StaleOutputError) as info:
        prepare_clips(big_tree, clip_folder, **{setting: value})
    message = str(info.value)
    assert type(info.value) is StaleOutputError
    assert f"{clip_folder} holds data prepared with other settings" in message
    differences = [line.strip() for line in message.splitlines() if ": existing " in line]
    named = {line.split(":", 1)[0]: line for line in differences}
    # the default stride is clip_frames, so changing clip_frames changes the stride too
    expected = {"clip_frames", "clip_stride"} if setting == "clip_frames" else {setting}
    assert set(named) == expected, message
    assert named[setting].endswith(f"requested {value}"), message
    assert snapshot(clip_folder) == before  # not a byte, not a time stamp changed


@pytest.mark.parametrize(
    "changes",
    [
        {"keep_rate": 0.5},  # random sampling only
        {"hdf5_compression": "gzip"},
        {"num_workers": 0, "strict": True},
    ],
    ids=["keep_rate", "hdf5_compression", "workers_strict"],
)
def test_settings_clips_do_not_use_reuse_the_clip_folder(
    big_tree: Path, clip_folder: Path, changes: dict[str, Any]
) -> None:
    before = snapshot(clip_folder)
    result = prepare_clips(big_tree, clip_folder, **changes)
    assert result.ran == []
    assert snapshot(clip_folder) == before


# --------------------------------------------------------------------------- Ctrl-C

INT_SEED = 1357
INT_PER_STAGE = 1


def test_ctrl_c_in_a_clip_run_then_resume(
    big_tree: Path,
    clip_reference_dir: Path,
    clip_reference: dict[str, str],
    clip_segments: list[Segment],
    zygote: Zygote,
    tmp_path: Path,
) -> None:
    def start(out: Path) -> ForkedRun:
        argv = ["-v", "prepare", "--amass-dir", str(big_tree), "--out", str(out)]
        argv += ["--splits", json.dumps(BIG_SPLITS), *CLIP_FLAGS]
        return zygote.start({"cli": argv})

    points = schedule(clip_segments, random.Random(INT_SEED), INT_PER_STAGE)
    landed: Counter[str] = Counter()
    for i, (segment, delay) in enumerate(points):
        out = tmp_path / f"int{i:02d}"
        run = start(out)
        outcome, output = press_ctrl_c(run, segment.after, delay)
        stage = landed_in(out, BIG_SPLITS)
        landed[stage] += 1
        if outcome["rc"] is None:  # Ctrl-C while the command parsed its arguments
            assert not (out / "manifest.json").exists(), output
        elif stage == "done":
            assert outcome["rc"] in (0, 130), output
        else:
            assert outcome["rc"] == 130, (i, stage, output)
            assert INTERRUPTED in output, output
        assert "Traceback" not in output and "Exception ignored" not in output, output
        assert_nothing_partial(out)
        assert partial_final_splits(out, clip_reference) == [], (i, stage)
        manifest = read_manifest(out)
        if manifest:  # the command's flags are the reference's settings
            assert manifest["settings"] == read_manifest(clip_reference_dir)["settings"]
        recorded = recorded_pairs(manifest)

        result = prepare_clips(big_tree, out)
        assert set(result.ran) == ALL_PAIRS - recorded, (i, stage)
        assert clip_hashes(out) == clip_reference, (i, stage)
        assert_nothing_partial(out)
        shutil.rmtree(out)
    print(f"\nclip SIGINT points: {len(points)}; landed per stage {dict(sorted(landed.items()))}")
    assert sum(landed[s] for s in STAGES) >= 2, landed
