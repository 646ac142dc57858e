"""The made-up model files: the real files' keys, shapes and dtypes, a human-sized skeleton,
deterministic bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vposer_data.body_model import (
    FAMILIES,
    JOINT_NAMES_BY_FAMILY,
    JOINT_PARENTS_BY_FAMILY,
    NUM_JOINTS,
    NUM_VERTICES,
)
from vposer_data.synthetic_models import (
    SHAPEDIRS_WIDTH,
    model_arrays,
    model_path,
    write_body_models,
)

SMPLX_LOADER_KEYS = {
    "hands_componentsl": (45, 45),
    "hands_componentsr": (45, 45),
    "hands_meanl": (45,),
    "hands_meanr": (45,),
    "lmk_faces_idx": (51,),
    "lmk_bary_coords": (51, 3),
    "dynamic_lmk_faces_idx": (79, 17),
    "dynamic_lmk_bary_coords": (79, 17, 3),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_keys_shapes_and_dtypes_are_the_real_ones(family: str) -> None:
    joints, vertices = NUM_JOINTS[family], NUM_VERTICES[family]
    arrays = model_arrays(family, "neutral", seed=1)
    expected = {
        "v_template": ((vertices, 3), np.float64),
        "shapedirs": ((vertices, 3, SHAPEDIRS_WIDTH[family]), np.float64),
        "J_regressor": ((joints, vertices), np.float64),
        "kintree_table": ((2, joints), np.int64),
        "weights": ((vertices, joints), np.float64),
        "posedirs": ((vertices, 3, 9 * (joints - 1)), np.float64),
        "f": ((13776 if family != "smplx" else 20908, 3), np.uint32),
        "J": ((joints, 3), np.float64),
    }
    for key, (shape, dtype) in expected.items():
        assert arrays[key].shape == shape and arrays[key].dtype == dtype, key
    assert arrays["kintree_table"][0, 0] == 2**32 - 1  # the root, as the real files store it
    assert arrays["kintree_table"][0, 1:].tolist() == list(JOINT_PARENTS_BY_FAMILY[family][1:])
    assert arrays["f"].max() < vertices
    regressor = arrays["J_regressor"]
    assert (regressor >= 0).all() and np.allclose(regressor.sum(axis=1), 1.0)
    assert np.allclose(arrays["weights"].sum(axis=1), 1.0)
    # the regressed rest joints are the made-up skeleton
    np.testing.assert_allclose(regressor @ arrays["v_template"], arrays["J"], atol=1e-12)
    smplx_layout = model_arrays(family, "neutral", seed=1, layout="smplx")
    for key in expected.keys() - {"J"}:  # the same model in both layouts
        np.testing.assert_array_equal(smplx_layout[key], arrays[key])
    if family != "smpl":
        extra = {k: v for k, v in SMPLX_LOADER_KEYS.items() if family == "smplx" or "hand" in k}
        for key, shape in extra.items():
            assert smplx_layout[key].shape == shape, key


@pytest.mark.parametrize("family", FAMILIES)
def test_the_skeleton_is_human_sized(family: str) -> None:
    names = JOINT_NAMES_BY_FAMILY[family]
    for gender, (low, high) in {"male": (1.45, 1.7), "female": (1.35, 1.6)}.items():
        joints = model_arrays(family, gender)["J"]
        height = joints[:, 1].max() - joints[:, 1].min()  # y up: feet to head joint
        assert low < height < high, (gender, height)
        feet = [names.index(n) for n in ("left_foot", "right_foot")]
        assert set(np.argsort(joints[:, 1])[:2]) == set(feet)  # the feet are lowest
        assert joints[names.index("left_wrist"), 0] > 0.5  # T-pose, the model's left is +x
        assert joints[names.index("right_wrist"), 0] < -0.5


def test_the_first_16_shape_directions_move_the_joints() -> None:
    arrays = model_arrays("smplh", "male")
    moved = np.einsum("jv,vcs->sjc", arrays["J_regressor"], arrays["shapedirs"])
    per_direction = np.abs(moved).max(axis=(1, 2))
    assert (per_direction[:16] > 1e-3).all()
    smplx = model_arrays("smplx", "male")["shapedirs"]
    assert not smplx[:, :, 16:300].any() and smplx[:, :, 300:310].any()  # then expressions


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def digests(root: Path, seed: int, layouts: tuple[str, ...]) -> list[str]:
        paths = write_body_models(root, ("smpl",), ("male",), layouts, seed)
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]

    first = digests(tmp_path / "a", 0, ("amass", "smplx"))
    assert first[0] != first[1]  # the smplx layout adds keys
    assert digests(tmp_path / "b", 0, ("amass",)) == first[:1]
    assert digests(tmp_path / "c", 1, ("amass",)) != first[:1]
    assert model_path(tmp_path / "a", "smpl", "male", "smplx").name == "SMPL_MALE.npz"
    with pytest.raises(ValueError, match="no synthetic model"):
        model_arrays("smplh", "other")
