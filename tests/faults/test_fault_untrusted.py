"""Files crafted to run code when unpickled: a pickle named ``*_stageii.npz``, an ``.npz`` whose
``poses`` is an object array, a Stage III ``.pt`` swapped for a pickle. The code never runs
(its marker file never appears) and the file is refused with a clear reason."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import assert_nothing_partial, file_hashes, prepare, read_manifest

from vposer_data.amass import AmassFormatError, load_sequence
from vposer_data.dataset import DatasetFormatError, VPoserDataset
from vposer_data.synthetic import write_motion_npz, write_npz


class Payload:
    """Unpickling this creates ``marker`` (a harmless stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def smplh_arrays(n: int = 60) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "poses": rng.uniform(-1, 1, (n, 156)),
        "trans": rng.uniform(-1, 1, (n, 3)),
        "betas": rng.normal(0, 1, 16),
        "gender": np.array("male"),
        "mocap_framerate": np.array(120.0),
    }


def write_pickle_named_npz(path: Path, marker: Path) -> None:
    """A pickle (protocol 4) of what looks like an AMASS dict, named as an SMPL-X motion."""
    with path.open("wb") as f:
        pickle.dump({"poses": Payload(marker), "trans": np.zeros((2, 3))}, f, protocol=4)


def write_object_poses_npz(path: Path, marker: Path) -> None:
    """An .npz whose ``poses`` is an object array of payloads."""
    poses = np.empty(60, dtype=object)
    for i in range(poses.size):
        poses[i] = Payload(marker)
    write_npz(path, smplh_arrays() | {"poses": poses})


def test_the_payload_does_run_when_unpickled(tmp_path: Path) -> None:
    """The control: without the guards, these files would run code."""
    marker = tmp_path / "control"
    write_pickle_named_npz(tmp_path / "x_stageii.npz", marker)
    pickle.loads((tmp_path / "x_stageii.npz").read_bytes())
    assert marker.exists()
    marker.unlink()
    write_object_poses_npz(tmp_path / "y_poses.npz", marker)
    with np.load(tmp_path / "y_poses.npz", allow_pickle=True) as archive:
        archive["poses"]
    assert marker.exists()


def test_reader_refuses_a_pickle_named_npz_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "walk_stageii.npz"
    write_pickle_named_npz(path, marker)
    with pytest.raises(AmassFormatError) as info:
        load_sequence(path)
    assert type(info.value) is AmassFormatError
    assert info.value.path == str(path)
    assert "holds pickled data, which is never loaded" in info.value.problem
    assert not marker.exists()


def test_reader_refuses_an_object_array_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "walk_poses.npz"
    write_object_poses_npz(path, marker)
    with pytest.raises(AmassFormatError) as info:
        load_sequence(path)
    assert type(info.value) is AmassFormatError
    assert "key 'poses' is an object array, which is never unpickled" in info.value.problem
    assert not marker.exists()


def test_a_payload_in_a_key_never_read_is_harmless(tmp_path: Path) -> None:
    """SMPL-X files carry an object array (``markers_latent_vids``) that is never read: a
    payload there does not run and the motion is used."""
    marker = tmp_path / "marker"
    path = tmp_path / "walk_stageii.npz"
    rng = np.random.default_rng(1)
    write_motion_npz(path, "smplx", 60, 120.0, "female", rng.normal(0, 1, 16), rng)
    object_keys = ("markers_latent_vids", "latent_labels", "labels")
    with np.load(path, allow_pickle=False) as archive:
        values = {k: archive[k] for k in archive.files if k not in object_keys}
    values["markers_latent_vids"] = np.array([Payload(marker)], dtype=object)
    write_npz(path, values)
    assert load_sequence(path).num_frames == 60
    assert not marker.exists()


@pytest.fixture
def hostile_tree(small_tree: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """The small tree with both hostile files in CMU (train); rel path -> expected reason."""
    tree = tmp_path / "amass"
    shutil.copytree(small_tree, tree)
    marker = tmp_path / "marker"
    subject = sorted(p for p in (tree / "CMU").iterdir() if p.is_dir())[0]
    write_pickle_named_npz(subject / "aa_pickle_poses.npz", marker)
    write_object_poses_npz(subject / "ab_object_poses.npz", marker)
    reasons = {
        (subject / "aa_pickle_poses.npz").relative_to(tree).as_posix(): "holds pickled data",
        (subject / "ab_object_poses.npz").relative_to(tree).as_posix(): "object array",
    }
    return tree, marker, reasons


def test_prepare_skips_hostile_files_without_running_them(
    hostile_tree: tuple[Path, Path, dict[str, str]], tmp_path: Path, small_reference: Path
) -> None:
    tree, marker, reasons = hostile_tree
    out = tmp_path / "out"
    result = prepare(tree, out)
    assert not marker.exists()
    skipped = {
        s["path"]: s["reason"] for s in read_manifest(out)["stages"]["stage_I"]["train"]["skipped"]
    }
    assert set(skipped) == set(reasons)
    for path, words in reasons.items():
        assert words in skipped[path]
    log = (out / "prepare.log").read_text(encoding="utf-8")
    for path in reasons:
        assert f"skipped {path}: " in log
    assert result.skipped["train"] == 2
    assert file_hashes(out) == file_hashes(small_reference)  # the rest as if they were not there
    assert_nothing_partial(out)


def test_strict_prepare_refuses_the_hostile_file_without_running_it(
    hostile_tree: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    tree, marker, reasons = hostile_tree
    with pytest.raises(AmassFormatError) as info:
        prepare(tree, tmp_path / "out", strict=True)
    first = sorted(reasons)[0]  # files are read in sorted order
    assert info.value.path == str(tree / first)
    assert reasons[first] in str(info.value)
    assert not marker.exists()
    assert_nothing_partial(tmp_path / "out")


# --- a Stage III tensor swapped for a pickle --------------------------------------------------


@pytest.mark.parametrize("form", ["torch.save", "plain pickle"])
def test_dataset_refuses_a_pt_swapped_for_a_pickle(
    small_reference: Path, tmp_path: Path, form: str
) -> None:
    out = tmp_path / "out"
    shutil.copytree(small_reference, out)
    split = out / "stage_III" / "train"
    marker = tmp_path / "marker"
    target = split / "pose_body.pt"
    if form == "torch.save":  # a torch zip archive whose data.pkl holds the payload
        torch.save({"pose_body": Payload(marker)}, target)
    else:
        target.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    assert VPoserDataset(out / "stage_III" / "vald").fields  # other splits still load

    with pytest.raises(DatasetFormatError) as info:
        VPoserDataset(split)
    message = str(info.value)
    assert str(target) in message
    if form == "torch.save":
        assert "refused, it holds more than plain tensors" in message
        assert "io.open" in message or "builtins.open" in message  # names what was refused
    else:
        assert "not a readable torch.save file" in message
    assert not marker.exists()

    # the mechanism itself: torch.load(weights_only=True) refuses, the payload never runs
    with pytest.raises((pickle.UnpicklingError, RuntimeError)):
        torch.load(target, weights_only=True)
    assert not marker.exists()
