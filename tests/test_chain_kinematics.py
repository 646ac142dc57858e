"""The contact joints posed along the legs only (Stage I's floor and contacts) against the
whole tree's forward kinematics, and the pieces both use: sin and cos through torch, Rodrigues
written into reused buffers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vposer_data.body_model import (
    FAMILIES,
    _sin_cos,
    assemble_pose,
    load_body_model,
    posed_joints,
    rest_joints,
    rodrigues_components,
)
from vposer_data.chain_kinematics import (
    LegMotion,
    contact_joint_positions,
    contact_joint_positions_of_motions,
)
from vposer_data.skeleton import CONTACT_JOINTS


@pytest.fixture(scope="module")
def model_root(body_models_dir: Path) -> Path:
    return body_models_dir


def motion(frames: int, seed: int) -> dict[str, np.ndarray]:
    """Root and body rotations of up to a few radians, with zero and tiny angles mixed in."""
    rng = np.random.default_rng(seed)
    root = rng.normal(size=(frames, 3)) * 1.5
    body = rng.normal(size=(frames, 63)) * 0.8
    root[::7] = 0.0
    body[1::5, :9] *= 1e-9
    return {"root_orient": root, "pose_body": body, "trans": rng.normal(size=(frames, 3))}


def whole_tree(rest: np.ndarray, parents, fields: dict[str, np.ndarray]) -> np.ndarray:
    """The contact joints by posing every joint (the reference)."""
    pose = assemble_pose(
        "smpl", root_orient=fields["root_orient"], pose_body=fields["pose_body"], num_joints=22
    )
    return posed_joints(rest, parents, pose, fields["trans"])[:, list(CONTACT_JOINTS)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("gender", ["female", "male"])
def test_contact_joints_are_the_whole_trees(model_root: Path, family: str, gender: str) -> None:
    model = load_body_model(model_root, family, gender)
    betas = np.random.default_rng(1).normal(size=16 if family != "smplx" else 10)
    rest = rest_joints(model, betas)
    fields = motion(53, seed=FAMILIES.index(family))
    expected = whole_tree(rest, model.parents, fields)
    for block in (53, 8, 1):  # one block, several, one frame each
        ours = contact_joint_positions(rest, model.parents, **fields, block_frames=block)
        assert ours.shape == (53, 4, 3) and ours.dtype == np.float64
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_motions_posed_together_are_each_posed_alone(model_root: Path) -> None:
    """A Stage I item's motions posed in shared blocks (pieces of several motions in one block,
    a motion across blocks, other models and betas, a model whose tree needs the whole-tree
    path): each motion's positions as posed alone and as the whole tree poses them (to
    rounding: a value's place in a block decides whether a vector loop or its scalar tail
    computes it, so the items must be the same files whatever the number of workers)."""
    models = [load_body_model(model_root, f, g) for f in FAMILIES for g in ("female", "male")]
    rng = np.random.default_rng(3)
    motions, references = [], []
    for index, frames in enumerate([5, 40, 1, 23, 17, 64, 2]):
        model = models[index % len(models)]
        rest = rest_joints(model, rng.normal(size=model.num_shape_directions))
        parents = model.parents
        if index == 3:  # a tree without the SMPL legs: the right hip under the left one
            parents = parents.copy()
            parents[2] = 1
        fields = motion(frames, seed=index)
        motions.append(LegMotion(rest, parents, **fields))
        references.append(whole_tree(rest, parents, fields))
    for block in (4096, 16, 7):
        together = contact_joint_positions_of_motions(motions, block_frames=block)
        for one, alone, reference in zip(motions, together, references, strict=True):
            single = contact_joint_positions(*one, block_frames=4096)
            np.testing.assert_allclose(alone, single, rtol=0, atol=1e-13)
            np.testing.assert_allclose(alone, reference, rtol=0, atol=1e-12)


def test_left_and_right_legs_are_their_own(model_root: Path) -> None:
    """Bending only the left knee moves only the left ankle and foot (columns 0 and 1)."""
    model = load_body_model(model_root, "smplh", "female")
    rest = rest_joints(model, np.zeros(16))
    still = {
        "root_orient": np.zeros((2, 3)),
        "pose_body": np.zeros((2, 63)),
        "trans": np.zeros((2, 3)),
    }
    bent = {key: value.copy() for key, value in still.items()}
    bent["pose_body"][1, 3 * 3] = 1.0  # joint 4, the left knee, about x
    before = contact_joint_positions(rest, model.parents, **still)
    after = contact_joint_positions(rest, model.parents, **bent)
    moved = np.abs(after - before).max(axis=2)[1]
    assert moved[0] > 0.01 and moved[1] > 0.01
    np.testing.assert_array_equal(moved[2:], 0.0)


def test_a_tree_with_other_legs_is_posed_joint_by_joint(model_root: Path) -> None:
    """A tree whose legs are not the SMPL ones (here the left ankle hangs off the right knee)
    still gives its own tree's joints."""
    model = load_body_model(model_root, "smpl", "male")
    rest = rest_joints(model, np.zeros(10))
    parents = model.parents.copy()
    parents[7] = 5
    fields = motion(19, seed=9)
    ours = contact_joint_positions(rest, parents, **fields)
    np.testing.assert_allclose(ours, whole_tree(rest, parents, fields), rtol=0, atol=1e-12)
    standard = contact_joint_positions(rest, model.parents, **fields)
    assert np.abs(ours[:, 0] - standard[:, 0]).max() > 0.01


def test_shapes_are_checked() -> None:
    rest = np.zeros((24, 3))
    parents = np.arange(24) - 1
    good = {
        "root_orient": np.zeros((4, 3)),
        "pose_body": np.zeros((4, 63)),
        "trans": np.zeros((4, 3)),
    }
    for key, bad in (("pose_body", np.zeros((4, 66))), ("trans", np.zeros((3, 3)))):
        with pytest.raises(ValueError, match=key):
            contact_joint_positions(rest, parents, **{**good, key: bad})
    with pytest.raises(ValueError, match="rest joints"):
        contact_joint_positions(np.zeros((8, 3)), parents, **good)


def test_sin_cos_in_pieces_land_in_place() -> None:
    """More angles than one piece given to torch, in a shape whose size is not a multiple of
    it: every sine and cosine where its angle was (within an ulp of numpy's)."""
    angles = np.random.default_rng(3).uniform(-7, 7, size=(5, 7001))
    sin, cos = _sin_cos(angles)
    assert sin.shape == cos.shape == angles.shape
    np.testing.assert_allclose(sin, np.sin(angles), rtol=0, atol=2e-16 * 8)
    np.testing.assert_allclose(cos, np.cos(angles), rtol=0, atol=2e-16 * 8)


def test_rodrigues_components_are_rotations() -> None:
    """Each matrix orthonormal with determinant 1, and rotating its own axis leaves it."""
    aa = np.random.default_rng(4).normal(size=(3, 3, 50)) * 2
    matrices = np.moveaxis(rodrigues_components(aa), -1, 1)  # (3, 50, 3, 3)
    eye = np.broadcast_to(np.eye(3), matrices.shape)
    np.testing.assert_allclose(matrices @ np.swapaxes(matrices, -1, -2), eye, atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-14)
    axes = np.moveaxis(aa, -1, 1)[..., None]  # (3, 50, 3, 1)
    np.testing.assert_allclose(matrices @ axes, axes, atol=1e-14)


def test_joints_of_a_batch_mixing_families(model_root: Path) -> None:
    """The joints augmentation poses each sample with its own motion's family and gender
    (families looked up once per split, by seq_id), as body_joints does row by row."""
    import torch

    from vposer_data.augment.joints import SplitModels, joints
    from vposer_data.body_model import body_joints
    from vposer_data.model_files import find_model_file, model_sha256
    from vposer_data.models_used import BodyModels, ModelFile

    files = {}
    for family in ("smplx", "smplh"):
        for gender in ("female", "male"):
            path = find_model_file(model_root, family, gender)
            files[f"{family}/{gender}"] = ModelFile(family, gender, str(path), model_sha256(path))
    families = ["smplx", "smplh", "smplx", "smplh"]  # by seq_id; sorted names differ in order
    body = SplitModels(BodyModels(files, "file"), families)
    rng = np.random.default_rng(5)
    seq = np.array([0, 1, 2, 3, 1, 0])
    gender = np.array([1, -1, -1, 1, -1, 1])  # female 1, male -1, per motion
    betas = rng.normal(size=(4, 10))[seq]
    fields = motion(6, seed=11)
    batch = {
        "root_orient": torch.from_numpy(fields["root_orient"].astype(np.float32)),
        "pose_body": torch.from_numpy(fields["pose_body"].astype(np.float32)),
        "trans": torch.from_numpy(fields["trans"].astype(np.float32)),
        "betas": torch.from_numpy(betas.astype(np.float32)),
        "seq_id": torch.from_numpy(seq),
        "gender": torch.from_numpy(gender),
    }
    served = joints(batch, set="body", body=body)["joints"].numpy()
    names = {1: "female", -1: "male"}
    for row in range(6):
        model = load_body_model(model_root, families[seq[row]], names[int(gender[row])])
        pose = assemble_pose(
            model.family,
            root_orient=batch["root_orient"].numpy()[row : row + 1],
            pose_body=batch["pose_body"].numpy()[row : row + 1],
            num_joints=22,
        )
        expected = body_joints(
            model,
            batch["betas"].numpy()[row].astype(np.float64),
            pose,
            batch["trans"].numpy()[row : row + 1].astype(np.float64),
        )
        np.testing.assert_allclose(served[row], expected[0], rtol=0, atol=1e-5)
