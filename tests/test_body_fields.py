"""The body-model fields in the pipeline: joints against smplx.lbs.lbs for every family and
gender, frames and clips, with and without each pose-changing augmentation; contacts and
floor_z as labels of the source motion; model resolution, identity and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import BODY_MODEL_SEED, load_split, prepare, read_manifest

from vposer_data.contacts import foot_contacts, mirror_contacts
from vposer_data.sampling import trim_bounds
from vposer_data.skeleton import NUM_JOINTS
from vposer_data.synthetic import write_motion_npz
from vposer_data.synthetic_models import model_arrays

smplx_lbs = pytest.importorskip("smplx.lbs")

#: The issue's bound on the distance to smplx.lbs.lbs, metres.
TOLERANCE = 2e-5
MODEL_SEED = BODY_MODEL_SEED
SPLITS = {"train": ["CMU"], "vald": ["HumanEva"], "test": ["SFU"]}
GENDER_NAMES = {-1: "male", 0: "neutral", 1: "female"}
FAMILY_KEYS = {
    "smpl": ("root_orient", "pose_body"),
    "smplh": ("root_orient", "pose_body", "pose_hand"),
    "smplx": ("root_orient", "pose_body", "pose_jaw", "pose_eye", "pose_hand"),
}
POSE_CHANGING = {
    "mirror": {"name": "mirror", "p": 0.5},
    "random_zrot": "random_zrot",
    "noise": {"name": "noise", "fields": ["root_orient", "pose_body"], "sigma": 0.05},
    "remove_zrot": "remove_zrot",
}
#: The largest distance to smplx.lbs.lbs seen by this module's tests (printed at the end).
LARGEST: dict[str, float] = {"error": 0.0}


def write_family_tree(
    root: Path,
    family: str,
    fps: float = 120.0,
    frames: int = 150,
    datasets: tuple[str, ...] = ("CMU", "HumanEva", "SFU"),
) -> Path:
    """Per dataset one motion of each gender, 16 betas far from zero (betas 10-15 move the
    joints), at ``fps``."""
    rng = np.random.default_rng([7, len(family), len(datasets[0])])
    suffix = "_stageii.npz" if family == "smplx" else "_poses.npz"
    for dataset in datasets:
        for k, gender in enumerate(("male", "female", "neutral")):
            path = root / dataset / f"s{k}" / f"m{k}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            betas = rng.normal(0, 1.5, 16)
            write_motion_npz(path, family, frames + 20 * k, fps, gender, betas, rng)
    return root


@pytest.fixture(scope="module")
def models(body_models_dir: Path) -> Path:
    """Every family and gender, AMASS layout (seed ``MODEL_SEED``). Read-only."""
    return body_models_dir


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> a tree of that family's files. Read-only."""
    return {
        family: write_family_tree(tmp_path_factory.mktemp(f"tree_{family}"), family)
        for family in ("smpl", "smplh", "smplx")
    }


def body_config(models: Path, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "body_model_dir": str(models),
        "augmentations": [{"name": "joints", "set": "all"}, "contacts"],
    }
    values.update(changes)
    return values


def lbs_joints(family: str, gender: str, served: dict[str, np.ndarray]) -> np.ndarray:
    """smplx.lbs.lbs's posed joints (+ trans) for served rows of one model, float64. Only the
    vertices the joint regressor uses are skinned: the joints do not depend on the others."""
    raw = model_arrays(family, gender, MODEL_SEED)
    support = np.flatnonzero(np.abs(raw["J_regressor"]).sum(axis=0))
    betas = served["betas"].astype(np.float64)
    count = betas.shape[1]
    rows = betas.shape[0]
    pose = np.zeros((rows, NUM_JOINTS[family], 3))
    first = 0
    for key in FAMILY_KEYS[family]:
        value = served[key].astype(np.float64).reshape(rows, -1, 3)
        pose[:, first : first + value.shape[1]] = value
        first += value.shape[1]
    if family == "smpl":
        first += 2  # SMPL's hand joints: not served, flat
    assert first == NUM_JOINTS[family]
    parents = torch.tensor(raw["kintree_table"][0].astype(np.int64))
    parents[0] = -1
    num_pose = (NUM_JOINTS[family] - 1) * 9

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(x, dtype=np.float64))

    _, joints = smplx_lbs.lbs(
        t(betas),
        t(pose.reshape(rows, -1)),
        t(raw["v_template"][support]),
        t(raw["shapedirs"][support][:, :, :count]),
        torch.zeros(num_pose, support.size * 3, dtype=torch.float64),
        t(raw["J_regressor"][:, support]),
        parents,
        t(raw["weights"][support]),
    )
    return joints.numpy() + served["trans"].astype(np.float64)[:, None, :]


def check_joints(out: Path, split: str, family: str) -> set[str]:
    """Every row's joints against smplx.lbs.lbs; returns the genders seen."""
    data = {name: t.numpy() for name, t in load_split(out, split).items()}
    joints = data["joints"]
    clips = joints.ndim == 4
    steps = joints.shape[1] if clips else 1
    genders = np.array([GENDER_NAMES[int(c)] for c in data["gender"]])
    seen = set()
    for gender in set(genders):
        rows = np.flatnonzero(genders == gender)
        served = {}
        for key in (*FAMILY_KEYS[family], "trans"):
            value = data[key][rows]
            served[key] = value.reshape(len(rows) * steps, -1)
        served["betas"] = np.repeat(data["betas"][rows], steps, axis=0)
        theirs = lbs_joints(family, gender, served)
        ours = joints[rows].reshape(len(rows) * steps, -1, 3).astype(np.float64)
        error = float(np.abs(ours - theirs).max())
        LARGEST["error"] = max(LARGEST["error"], error)
        assert error < TOLERANCE, (family, gender, error)
        seen.add(gender)
    return seen


@pytest.fixture(scope="module", autouse=True)
def _report_largest_error() -> Any:
    yield
    print(
        f"\nlargest joint distance to smplx.lbs.lbs in test_body_fields: {LARGEST['error']:.3g} m"
    )


@pytest.mark.parametrize("family", ["smpl", "smplh", "smplx"])
@pytest.mark.parametrize(("sampling", "augmented"), [("frames", "none"), ("clips", "all")])
def test_joints_match_smplx_lbs(
    tmp_path: Path, models: Path, trees: dict[str, Path], family: str, sampling: str, augmented: str
) -> None:
    pose_changing = list(POSE_CHANGING.values()) if augmented == "all" else []
    changes: dict[str, Any] = {}
    if sampling == "clips":
        changes = {"sampling": "clips", "target_fps": 30, "clip_frames": 8}
    out = tmp_path / "out"
    augmentations = [*pose_changing, {"name": "joints", "set": "all"}, "contacts", "matrot"]
    prepare(
        trees[family], out, SPLITS, **body_config(models, augmentations=augmentations), **changes
    )
    joints = load_split(out, "train")["joints"]
    assert joints.shape[-2:] == (NUM_JOINTS[family], 3) and joints.dtype == torch.float32
    assert check_joints(out, "train", family) == {"male", "female", "neutral"}
    if augmented == "all":  # the other splits hold their source poses
        check_joints(out, "vald", family)


CLIPS = {"sampling": "clips", "target_fps": 30, "clip_frames": 8}


@pytest.fixture(scope="module")
def plain_clips(tmp_path_factory: pytest.TempPathFactory, models: Path, trees: dict[str, Path]):
    """The SMPL+H tree as clips with joints and no pose-changing augmentation. Read-only."""
    out = tmp_path_factory.mktemp("plain") / "out"
    augmentations = [{"name": "joints", "set": "all"}, "contacts", "matrot"]
    prepare(
        trees["smplh"], out, SPLITS, **body_config(models, augmentations=augmentations), **CLIPS
    )
    return out


def test_joints_of_clips_without_augmentation(
    plain_clips: Path, models: Path, trees: dict[str, Path]
) -> None:
    check_joints(plain_clips, "train", "smplh")


@pytest.mark.parametrize("name", sorted(POSE_CHANGING))
def test_joints_follow_each_pose_changing_augmentation(
    tmp_path: Path, models: Path, trees: dict[str, Path], plain_clips: Path, name: str
) -> None:
    out = tmp_path / "out"
    augmentations = [POSE_CHANGING[name], {"name": "joints", "set": "all"}]
    prepare(
        trees["smplh"],
        out,
        SPLITS,
        **body_config(models, augmentations=augmentations),
        **CLIPS,
    )
    check_joints(out, "train", "smplh")
    # the augmentation moved the joints with the poses
    changed = load_split(out, "train")["joints"] - load_split(plain_clips, "train")["joints"]
    assert float(changed.abs().max()) > 1e-3


def test_body_set_is_the_first_22_joints(
    tmp_path: Path, models: Path, trees: dict[str, Path]
) -> None:
    every, body = tmp_path / "all", tmp_path / "body"
    prepare(trees["smplx"], every, SPLITS, **body_config(models))
    prepare(trees["smplx"], body, SPLITS, **body_config(models, augmentations=["joints"]))
    served = load_split(body, "train")["joints"]
    assert served.shape[1:] == (22, 3)
    assert torch.equal(served, load_split(every, "train")["joints"][:, :22])


def test_betas_10_to_15_move_the_joints(
    tmp_path: Path, models: Path, trees: dict[str, Path]
) -> None:
    """SMPL+H files hold 16 betas; the joints use them all (smplx.create keeps 10)."""
    out = tmp_path / "out"
    prepare(trees["smplh"], out, SPLITS, **body_config(models))
    data = {name: t.numpy() for name, t in load_split(out, "train").items()}
    assert data["betas"].shape[1] == 16
    rows = np.flatnonzero(data["gender"] == -1)
    served = {key: data[key][rows] for key in (*FAMILY_KEYS["smplh"], "trans")}
    served["betas"] = data["betas"][rows][:, :10]
    ten = lbs_joints("smplh", "male", served)
    assert float(np.abs(data["joints"][rows] - ten).max()) > 100 * TOLERANCE


# --------------------------------------------------------------------------- contacts


def source_labels(tree: Path, family: str, path: str, fps: float, trim: float = 0.1):
    """An independent computation: smplx.lbs joints of the trimmed source motion, the rule."""
    with np.load(tree / path) as npz:
        poses, trans = npz["poses"], npz["trans"]
        betas = npz["betas"]
        gender = str(npz["gender"])
    start, stop = trim_bounds(poses.shape[0], trim)
    served = {
        "root_orient": poses[start:stop, :3],
        "pose_body": poses[start:stop, 3:66],
        "trans": trans[start:stop],
        "betas": np.repeat(betas[None], stop - start, axis=0),
    }
    if family == "smplh":
        served["pose_hand"] = poses[start:stop, 66:156]
    if family == "smplx":
        served.update(
            pose_jaw=poses[start:stop, 66:69],
            pose_eye=poses[start:stop, 69:75],
            pose_hand=poses[start:stop, 75:165],
        )
    joints = lbs_joints(family, gender, served)
    floor_z, contacts = foot_contacts(joints, fps)
    return start, floor_z, contacts


@pytest.mark.parametrize("sampling", ["frames", "clips"])
def test_contacts_are_the_source_motions_labels(
    tmp_path: Path, models: Path, sampling: str
) -> None:
    """Per sample, the labels of its source frame, computed over the whole trimmed motion at
    its own rate (mirrored samples with left and right swapped), at 60, 120 and 59.94 Hz."""
    tree = tmp_path / "tree"
    rates = {"R60": 60.0, "R120": 120.0, "R5994": 59.94}
    for dataset, fps in rates.items():
        write_family_tree(tree, "smplh", fps=fps, frames=160, datasets=(dataset,))
    splits = {"train": list(rates)}
    changes: dict[str, Any] = {}
    if sampling == "clips":
        changes = {"sampling": "clips", "target_fps": 30, "clip_frames": 8}
    out = tmp_path / "out"
    augmentations = [{"name": "mirror", "p": 0.5}, "contacts", "joints"]
    prepare(tree, out, splits, **body_config(models, augmentations=augmentations), **changes)
    data = {name: t.numpy() for name, t in load_split(out, "train").items()}
    files = read_manifest(out)["stages"]["stage_I"]["train"]["files"]
    assert sorted({entry["fps"] for entry in files}) == [59.94, 60.0, 120.0]
    mirrored_rows = 0
    for seq, entry in enumerate(files):
        rows = np.flatnonzero(data["seq_id"] == seq)
        start, floor_z, contacts = source_labels(tree, "smplh", entry["path"], entry["fps"])
        assert np.allclose(data["floor_z"][rows], floor_z, rtol=0, atol=1e-6)
        frames = data["frame_id"][rows]
        expected = contacts[frames - start]
        with np.load(tree / entry["path"]) as npz:  # mirrored: the body pose changed
            source_body = npz["poses"][frames, 3:66].astype(np.float32)
        flipped = np.any(data["pose_body"][rows] != source_body, axis=-1)
        if sampling == "clips":
            assert np.all(flipped == flipped[:, :1])  # a clip is mirrored whole
            flipped = flipped[:, 0]
        shape = (-1,) + (1,) * (expected.ndim - 1)
        expected = np.where(flipped.reshape(shape), mirror_contacts(expected), expected)
        assert np.array_equal(data["contacts"][rows], expected)
        mirrored_rows += int(flipped.sum())
    assert data["contacts"].dtype == np.uint8 and data["contacts"].any()
    if sampling == "frames":
        assert 0 < mirrored_rows < data["seq_id"].shape[0]


@pytest.mark.parametrize("sampling", ["random", "fps"])
def test_contacts_take_the_rate_an_erratum_fixes(
    tmp_path: Path, models: Path, sampling: str
) -> None:
    """BMLhandball's files state a wrong rate (really 240 Hz, AMASS_FPS_ERRATA, on by default):
    the contacts' speeds use the true rate under every sampling, the default random one too,
    and the override is recorded."""
    tree = write_family_tree(
        tmp_path / "tree", "smplh", fps=60.0, frames=160, datasets=("BMLhandball",)
    )
    out = tmp_path / "out"
    changes: dict[str, Any] = {"sampling": "fps", "target_fps": 30} if sampling == "fps" else {}
    prepare(
        tree,
        out,
        {"train": ["BMLhandball"]},
        **body_config(models, augmentations=["contacts"]),
        **changes,
    )
    data = {name: t.numpy() for name, t in load_split(out, "train").items()}
    record = read_manifest(out)["stages"]["stage_I"]["train"]
    assert {entry["fps"] for entry in record["files"]} == {240.0}
    assert len(record["fps_overrides"]) == len(record["files"])
    differs = 0
    for seq, entry in enumerate(record["files"]):
        rows = np.flatnonzero(data["seq_id"] == seq)
        frames = data["frame_id"][rows]
        start, _, contacts = source_labels(tree, "smplh", entry["path"], 240.0)
        assert np.array_equal(data["contacts"][rows], contacts[frames - start])
        _, _, stated = source_labels(tree, "smplh", entry["path"], 60.0)
        differs += not np.array_equal(stated[frames - start], contacts[frames - start])
    assert differs  # the stated rate would have given other contacts
