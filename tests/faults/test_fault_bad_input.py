"""Bad motion files: each one skipped with its reason in prepare.log and the manifest while the
rest is prepared exactly as without it (lenient), or the run stopped naming the file (strict).
Odd but valid files (gender as bytes or str, NaN in SMPL-X markers) are used, not skipped."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import (
    SPLITS,
    assert_nothing_partial,
    file_hashes,
    prepare,
    read_manifest,
    recorded_pairs,
)

from vposer_data.amass import AmassFormatError, NotAMotionError, load_sequence
from vposer_data.synthetic import write_motion_npz, write_npz

N = 60  # frames of a hand-made motion
FPS = 120.0


def smplh_arrays(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    """A valid SMPL+H motion of ``n`` frames, as AMASS stores it."""
    rng = np.random.default_rng(seed)
    return {
        "poses": rng.uniform(-1, 1, (n, 156)),
        "trans": rng.uniform(-1, 1, (n, 3)),
        "betas": rng.normal(0, 1, 16),
        "gender": np.array("female"),
        "mocap_framerate": np.array(FPS),
        "dmpls": rng.normal(0, 1, (n, 8)),
    }


def without(key: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in smplh_arrays().items() if k != key}


def with_value(key: str, index: tuple[int, ...], value: float) -> dict[str, np.ndarray]:
    arrays = smplh_arrays()
    arrays[key] = arrays[key].copy()
    arrays[key][index] = value
    return arrays


def cut_in_half(path: Path) -> None:
    write_npz(path, smplh_arrays())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@dataclass(frozen=True)
class Bad:
    """One kind of unusable motion file: how to write it and the words its reason holds."""

    id: str
    write: Callable[[Path], None]
    words: tuple[str, ...]


def arrays(values: dict[str, Any]) -> Callable[[Path], None]:
    return lambda path: write_npz(path, values)


def raw(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


BAD = [
    Bad("truncated", cut_in_half, ("not a readable .npz archive", "truncated")),
    Bad("not_a_zip", raw(b"frame,x,y,z\n0,1,2,3\n" * 20), ("not a readable .npz archive",)),
    Bad("empty", raw(b""), ("empty", "0 bytes")),
    Bad("zero_frames", arrays(smplh_arrays(n=0)), ("0 frames",)),
    Bad("missing_poses", arrays(without("poses")), ("missing key 'poses'",)),
    Bad("missing_trans", arrays(without("trans")), ("missing key 'trans'",)),
    Bad("missing_betas", arrays(without("betas")), ("missing key 'betas'",)),
    Bad("missing_gender", arrays(without("gender")), ("missing key 'gender'",)),
    Bad("missing_frame_rate", arrays(without("mocap_framerate")), ("no frame rate",)),
    Bad(
        "unknown_width",
        arrays(smplh_arrays() | {"poses": np.zeros((N, 100))}),
        ("'poses' has width 100",),
    ),
    Bad(
        "frames_disagree",
        arrays(smplh_arrays() | {"trans": np.zeros((N - 7, 3))}),
        ("disagree", "number of frames", "'trans': 53"),
    ),
    Bad(
        "nan_in_poses", arrays(with_value("poses", (5, 10), np.nan)), ("'pose_body'", "non-finite")
    ),
    Bad(
        "inf_in_poses", arrays(with_value("poses", (9, 1), np.inf)), ("'root_orient'", "non-finite")
    ),
    Bad("nan_in_trans", arrays(with_value("trans", (3, 2), np.nan)), ("'trans'", "non-finite")),
    Bad("inf_in_trans", arrays(with_value("trans", (0, 0), -np.inf)), ("'trans'", "non-finite")),
    Bad("nan_in_betas", arrays(with_value("betas", (4,), np.nan)), ("'betas'", "non-finite")),
    Bad("inf_in_betas", arrays(with_value("betas", (0,), np.inf)), ("'betas'", "non-finite")),
    Bad(
        "unknown_gender",
        arrays(smplh_arrays() | {"gender": np.array("robot")}),
        ("'gender'", "'robot'", "male, female, neutral"),
    ),
    Bad(
        "frame_rate_zero",
        arrays(smplh_arrays() | {"mocap_framerate": np.array(0.0)}),
        ("mocap_framerate", "positive frame rate"),
    ),
    Bad(
        "frame_rate_negative",
        arrays(smplh_arrays() | {"mocap_framerate": np.array(-120.0)}),
        ("mocap_framerate", "-120", "positive frame rate"),
    ),
]
BAD_IDS = [bad.id for bad in BAD]


def assert_words(message: str, words: tuple[str, ...]) -> None:
    for word in words:
        assert word.lower() in message.lower(), (word, message)


def bad_name(bad: Bad) -> str:
    return f"zz_{bad.id}_poses.npz"


# --- the reader alone -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
def test_reader_refuses_naming_the_file_and_the_problem(tmp_path: Path, bad: Bad) -> None:
    path = tmp_path / bad_name(bad)
    bad.write(path)
    with pytest.raises(AmassFormatError) as info:
        load_sequence(path)
    assert type(info.value) is AmassFormatError  # reported, never a quiet NotAMotionError
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert_words(info.value.problem, bad.words)


#: Valid motions too short to yield a sample (trim 0.1 at each end drops no frame of them):
#: name -> frames. Listed as too short, never as unusable, never a strict stop.
SHORT = {"zz_one_frame_poses.npz": 1, "zz_shorter_than_trim_poses.npz": 6}


def test_reader_takes_the_short_motions(tmp_path: Path) -> None:
    for name, frames in SHORT.items():
        write_npz(tmp_path / name, smplh_arrays(n=frames))
        assert load_sequence(tmp_path / name).num_frames == frames


def test_short_motions_are_listed_and_never_stop_a_strict_run(tmp_path: Path) -> None:
    tree = tiny_tree(tmp_path / "amass")
    for name, frames in SHORT.items():
        write_npz(tree / "CMU" / "s01" / name, smplh_arrays(n=frames))
    out = tmp_path / "out"
    result = prepare(tree, out, TINY_SPLITS, strict=True)
    record = read_manifest(out)["stages"]["stage_I"]["train"]
    listed = {item["path"]: item for item in record["too_short"]}
    assert {path: item["frames"] for path, item in listed.items()} == {
        f"CMU/s01/{name}": frames for name, frames in SHORT.items()
    }
    for item in listed.values():
        assert_words(item["reason"], ("too short", f"{item['frames']} frames", "trimming"))
    assert record["skipped"] == [] and result.skipped == {"train": 0, "vald": 0}
    assert len(record["files"]) == 2


def test_non_motion_names_without_poses_stay_quiet_non_motions(tmp_path: Path) -> None:
    """The reported 'missing poses' is for files named as motions; a shape file or another
    name without a pose key stays a non-motion (not a skip)."""
    shape = {"betas": np.zeros(16), "gender": np.array("male")}
    for name in ("shape.npz", "female_stagei.npz", "calibration.npz"):
        write_npz(tmp_path / name, shape)
        with pytest.raises(NotAMotionError):
            load_sequence(tmp_path / name)
    write_npz(tmp_path / "walk_stageii.npz", shape)
    with pytest.raises(AmassFormatError, match="missing key 'poses'") as info:
        load_sequence(tmp_path / "walk_stageii.npz")
    assert not isinstance(info.value, NotAMotionError)


# --- lenient: skipped with reasons, the rest prepared -----------------------------------------


@pytest.fixture(scope="module")
def lenient(
    small_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, Bad], Any]:
    """The small tree plus every bad file (in CMU and KIT, both in 'train'), prepared."""
    base = tmp_path_factory.mktemp("faults_lenient")
    tree = base / "amass"
    shutil.copytree(small_tree, tree)
    placed: dict[str, Bad] = {}
    for i, bad in enumerate(BAD):
        dataset = "CMU" if i % 2 else "KIT"
        subject = sorted(p for p in (tree / dataset).iterdir() if p.is_dir())[i % 2]
        bad.write(subject / bad_name(bad))
        placed[(subject / bad_name(bad)).relative_to(tree).as_posix()] = bad
    out = base / "out"
    result = prepare(tree, out)
    return tree, out, placed, result


def test_every_bad_file_is_skipped_with_its_reason_in_the_manifest(lenient) -> None:
    _tree, out, placed, result = lenient
    record = read_manifest(out)["stages"]["stage_I"]["train"]
    skipped = {item["path"]: item["reason"] for item in record["skipped"]}
    assert set(skipped) == set(placed)
    for path, bad in placed.items():
        assert_words(skipped[path], bad.words)
    assert not set(placed) & set(record["not_motions"])  # none passed over quietly
    assert result.skipped == {"train": len(BAD), "vald": 0, "test": 0}


def test_every_bad_file_is_in_the_log_with_its_reason(lenient) -> None:
    _tree, out, placed, _result = lenient
    log = (out / "prepare.log").read_text(encoding="utf-8")
    for path, bad in placed.items():
        lines = [line for line in log.splitlines() if f"skipped {path}: " in line]
        assert len(lines) == 1, (path, log)
        assert "WARNING" in lines[0]
        assert_words(lines[0], bad.words)
    assert f"({len(BAD)} skipped," in log


def test_the_rest_is_prepared_exactly_as_without_the_bad_files(
    lenient, small_reference: Path
) -> None:
    _tree, out, _placed, result = lenient
    assert sorted(result.ran) == sorted(recorded_pairs(read_manifest(small_reference)))
    assert file_hashes(out) == file_hashes(small_reference)  # every split, every field, every byte
    ours, clean = read_manifest(out)["stages"], read_manifest(small_reference)["stages"]
    for split in SPLITS:
        assert ours["stage_I"][split]["files"] == clean["stage_I"][split]["files"]
    assert_nothing_partial(out)


# --- strict: the run stops naming the file ----------------------------------------------------


def tiny_tree(root: Path) -> Path:
    """Two datasets of two good motions each: CMU for 'train', HumanEva for 'vald'."""
    rng = np.random.default_rng(5)
    betas = rng.normal(0, 1, 16)
    for dataset in ("CMU", "HumanEva"):
        for k in range(2):
            folder = root / dataset / "s01"
            folder.mkdir(parents=True, exist_ok=True)
            write_motion_npz(
                folder / f"s01_{k:02d}_poses.npz", "smplh", 90, FPS, "male", betas, rng
            )
    return root


TINY_SPLITS = {"train": ["CMU"], "vald": ["HumanEva"]}


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
def test_strict_stops_naming_the_file_and_lenient_then_completes(tmp_path: Path, bad: Bad) -> None:
    tree = tiny_tree(tmp_path / "amass")
    path = tree / "CMU" / "s01" / bad_name(bad)
    bad.write(path)
    out = tmp_path / "out"
    with pytest.raises(AmassFormatError) as info:
        prepare(tree, out, TINY_SPLITS, strict=True)
    assert type(info.value) is AmassFormatError
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert_words(info.value.problem, bad.words)
    # nothing recorded for the split, no tensor written, no temp file
    assert recorded_pairs(read_manifest(out)) == set()
    assert list((out / "stage_I" / "train").glob("*.pt")) == []
    assert_nothing_partial(out)

    # strictness is not part of the output's identity: a lenient rerun completes
    result = prepare(tree, out, TINY_SPLITS)
    assert result.skipped == {"train": 1, "vald": 0}
    assert result.samples["train"] > 0 and result.samples["vald"] > 0
    assert_nothing_partial(out)


# --- odd but valid: used, not skipped ---------------------------------------------------------


def test_gender_as_bytes_or_str_and_nan_markers_are_used(tmp_path: Path) -> None:
    tree = tmp_path / "amass"
    cmu, humaneva = tree / "CMU" / "s01", tree / "HumanEva" / "s01"
    cmu.mkdir(parents=True)
    humaneva.mkdir(parents=True)
    write_npz(cmu / "bytes_poses.npz", smplh_arrays() | {"gender": np.array(b"female")})
    write_npz(cmu / "str_poses.npz", smplh_arrays(seed=1) | {"gender": np.array("male")})
    write_npz(cmu / "padded_poses.npz", smplh_arrays(seed=2) | {"gender": np.array(b" Neutral ")})
    rng = np.random.default_rng(3)
    smplx = humaneva / "nan_markers_stageii.npz"
    write_motion_npz(smplx, "smplx", N, FPS, b"male", rng.normal(0, 1, 16), rng)
    with np.load(smplx, allow_pickle=True) as archive:  # our own file: safe to unpickle
        values = {key: archive[key] for key in archive.files}
    values["markers"] = np.full_like(values["markers"], np.nan)  # every marker occluded
    write_npz(smplx, values)

    genders = {p.name: load_sequence(p).gender for p in sorted(cmu.iterdir())}
    assert genders == {"bytes_poses.npz": "female", "padded_poses.npz": "neutral",
                       "str_poses.npz": "male"}  # fmt: skip
    assert load_sequence(smplx).family == "smplx"

    out = tmp_path / "out"
    result = prepare(tree, out, TINY_SPLITS)
    assert result.skipped == {"train": 0, "vald": 0}
    stage1 = out / "stage_I"
    codes = torch.load(stage1 / "train" / "gender.pt", weights_only=True)
    seq = torch.load(stage1 / "train" / "seq_id.pt", weights_only=True)
    # files in sorted order: bytes (female 1), padded (neutral 0), str (male -1)
    assert {int(s): int(g) for s, g in zip(seq, codes, strict=True)} == {0: 1, 1: 0, 2: -1}
    assert (stage1 / "vald" / "pose_jaw.pt").is_file()
    assert re.search(
        r"stage I vald: \d+ samples from 1 motions \(0 skipped",
        (out / "prepare.log").read_text(encoding="utf-8"),
    )


def test_a_strict_stop_does_not_first_read_the_rest_of_the_split(tmp_path: Path) -> None:
    """Stopping in Stage I (strict mode here; Ctrl-C takes the same path) does not wait for
    every remaining file of the split to be read: a file that would block forever (a FIFO,
    standing for a hung network mount) later in the split is never opened."""
    tree = tiny_tree(tmp_path / "amass")
    folder = tree / "CMU" / "s01"
    (folder / "aa_empty_poses.npz").write_bytes(b"")
    rng = np.random.default_rng(9)
    for k in range(40):
        write_motion_npz(
            folder / f"m{k:02d}_poses.npz", "smplh", 30, FPS, "male", rng.normal(0, 1, 16), rng
        )
    fifo = folder / "zz_hung_poses.npz"
    os.mkfifo(fifo)

    def release() -> None:  # frees a reader stuck on the FIFO, if there is one
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(20, release)
    timer.start()
    try:
        started = time.monotonic()
        with pytest.raises(AmassFormatError, match=r"aa_empty_poses\.npz"):
            prepare(tree, tmp_path / "out", TINY_SPLITS, strict=True, num_workers=1)
        assert time.monotonic() - started < 10
    finally:
        timer.cancel()
