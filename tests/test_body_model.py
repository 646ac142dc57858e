"""Body-model files and posed joints: both layouts, the restricted unpickler, missing models,
and joints against the smplx package's own linear blend skinning on made-up model files."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BODY_MODEL_SEED

from vposer_data.body_model import (
    BODY_JOINT_COUNT,
    FAMILIES,
    GENDERS,
    JOINT_NAMES_BY_FAMILY,
    NUM_JOINTS,
    BodyModelError,
    BodyModelNotFoundError,
    ChumpyModelError,
    assemble_pose,
    body_joints,
    candidate_paths,
    find_model_file,
    load_body_model,
    posed_joints,
    read_model_arrays,
    rest_joints,
    shape_direction_count,
)
from vposer_data.synthetic_models import model_arrays, model_path, write_body_models

smplx_lbs = pytest.importorskip("smplx.lbs")

#: The issue's bound on the distance to smplx.lbs.lbs, metres.
TOLERANCE = 2e-5
SEED = BODY_MODEL_SEED
AMASS_BETAS = 16


@pytest.fixture(scope="module")
def model_root(body_models_dir: Path) -> Path:
    """Every family and gender in the AMASS layout, and the female models in the smplx
    package's layout too (seed ``SEED``). Read-only."""
    return body_models_dir


def lbs_joints(raw: dict, betas: np.ndarray, pose: np.ndarray, trans: np.ndarray, dtype):
    """Joints by smplx.lbs.lbs (full skinning) from the raw arrays of a model file, + trans."""
    count = betas.shape[-1]
    posedirs = raw["posedirs"].reshape(-1, raw["posedirs"].shape[2]).T
    parents = torch.tensor(raw["kintree_table"][0].astype(np.int64))
    parents[0] = -1

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(x, dtype=np.float64), dtype=dtype)

    frames = pose.shape[0]
    _, joints = smplx_lbs.lbs(
        tensor(np.broadcast_to(betas, (frames, count))),
        tensor(pose.reshape(frames, -1)),
        tensor(raw["v_template"]),
        tensor(raw["shapedirs"][:, :, :count]),
        tensor(posedirs),
        tensor(raw["J_regressor"]),
        parents,
        tensor(raw["weights"]),
    )
    return joints.double().numpy() + trans[:, None, :]


def random_motion(family: str, frames: int, seed: int) -> dict[str, np.ndarray]:
    """AMASS-like fields of a family: poses of up to about 1.5 rad per joint."""
    rng = np.random.default_rng(seed)
    fields = {
        "root_orient": rng.normal(size=(frames, 3)),
        "pose_body": rng.normal(size=(frames, 63)) * 0.6,
        "trans": rng.normal(size=(frames, 3)),
        "betas": rng.normal(size=AMASS_BETAS) * 1.5,
    }
    if family != "smpl":
        fields["pose_hand"] = rng.normal(size=(frames, 90)) * 0.4
    if family == "smplx":
        fields["pose_jaw"] = rng.normal(size=(frames, 3)) * 0.2
        fields["pose_eye"] = rng.normal(size=(frames, 6)) * 0.2
    return fields


def pose_of(family: str, motion: dict[str, np.ndarray], num_joints: int | None = None):
    parts = ("root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye")
    return assemble_pose(
        family, **{k: motion[k] for k in parts if k in motion}, num_joints=num_joints
    )


@pytest.mark.parametrize("gender", GENDERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_joints_match_smplx_lbs(
    model_root: Path, family: str, gender: str, record_property: pytest.RecordProperty
) -> None:
    model = load_body_model(model_root, family, gender)
    motion = random_motion(family, 24, seed=FAMILIES.index(family) * 3 + GENDERS.index(gender))
    pose = pose_of(family, motion)
    ours = body_joints(model, motion["betas"], pose, motion["trans"])
    assert ours.shape == (24, NUM_JOINTS[family], 3) and ours.dtype == np.float64
    raw = read_model_arrays(model.path)
    for dtype in (torch.float64, torch.float32):
        theirs = lbs_joints(raw, motion["betas"], pose, motion["trans"], dtype)
        error = float(np.abs(ours.astype(np.float32) - theirs).max())
        record_property(f"max_joint_error_m_{family}_{gender}_{dtype}", error)
        assert error < TOLERANCE, (family, gender, dtype, error)


def test_betas_10_to_15_matter(model_root: Path) -> None:
    """SMPL+H joints use all 16 AMASS betas: dropping 10-15 (what smplx.create does) moves the
    joints by far more than the tolerance, and smplx.lbs with 16 agrees with us."""
    model = load_body_model(model_root, "smplh", "male")
    motion = random_motion("smplh", 8, seed=5)
    pose = pose_of("smplh", motion)
    full = body_joints(model, motion["betas"], pose, motion["trans"])
    ten = body_joints(model, motion["betas"][:10], pose, motion["trans"])
    assert np.abs(full - ten).max() > 100 * TOLERANCE
    theirs = lbs_joints(
        read_model_arrays(model.path), motion["betas"], pose, motion["trans"], torch.float64
    )
    assert np.abs(full - theirs).max() < TOLERANCE
    with pytest.raises(ValueError, match="17 betas but the smplh model"):
        rest_joints(model, np.zeros(17))


@pytest.mark.parametrize("family", ["smplh", "smplx"])
def test_smplx_create_agrees(model_root: Path, family: str) -> None:
    """The smplx package's own model classes, loading the smplx-layout file, with the AMASS
    fields passed as their parts (flat hand mean, no PCA): the same joints. This pins the
    order :func:`assemble_pose` puts the AMASS fields in."""
    smplx = pytest.importorskip("smplx")
    motion = random_motion(family, 6, seed=9)
    layer = smplx.create(
        str(model_root),
        model_type=family,
        gender="female",
        ext="npz",
        num_betas=AMASS_BETAS,
        use_pca=False,
        flat_hand_mean=True,
        batch_size=6,
    ).double()

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(motion[key])

    hands = {"left_hand_pose": t("pose_hand")[:, :45], "right_hand_pose": t("pose_hand")[:, 45:]}
    face = {}
    if family == "smplx":
        face = {
            "jaw_pose": t("pose_jaw"),
            "leye_pose": t("pose_eye")[:, :3],
            "reye_pose": t("pose_eye")[:, 3:],
        }
    # smplx's release keeps 10 of a 16-beta SMPL+H model (the truncation the issue is about)
    betas = motion["betas"][: layer.num_betas]
    assert layer.num_betas == (10 if family == "smplh" else AMASS_BETAS)
    with torch.no_grad():
        output = layer(
            betas=torch.from_numpy(betas)[None].expand(6, -1),
            global_orient=t("root_orient"),
            body_pose=t("pose_body"),
            transl=t("trans"),
            **hands,
            **face,
        )
    model = load_body_model(model_root, family, "female")
    assert model.path.name == "model.npz"  # the AMASS layout is found first: same arrays
    ours = body_joints(model, betas, pose_of(family, motion), motion["trans"])
    theirs = output.joints[:, : NUM_JOINTS[family]].numpy()
    assert np.abs(ours - theirs).max() < TOLERANCE


def test_body_joints_are_the_first_22(model_root: Path) -> None:
    """Asking for the 22 body joints needs only root_orient and pose_body, and gives the
    first 22 of every joint."""
    model = load_body_model(model_root, "smplx", "neutral")
    motion = random_motion("smplx", 10, seed=2)
    every = body_joints(model, motion["betas"], pose_of("smplx", motion), motion["trans"])
    body_pose = assemble_pose(
        "smplx",
        root_orient=motion["root_orient"],
        pose_body=motion["pose_body"],
        num_joints=BODY_JOINT_COUNT,
    )
    body = body_joints(model, motion["betas"], body_pose, motion["trans"])
    assert body.shape == (10, 22, 3)
    np.testing.assert_array_equal(body, every[:, :22])


def test_blocks_and_per_frame_betas(model_root: Path) -> None:
    """Blocks of frames give the same joints as one block; per-frame betas the same as each
    frame alone."""
    model = load_body_model(model_root, "smplh", "female")
    motion = random_motion("smplh", 37, seed=4)
    pose = pose_of("smplh", motion)
    rest = rest_joints(model, motion["betas"])
    whole = posed_joints(rest, model.parents, pose, motion["trans"])
    blocked = posed_joints(rest, model.parents, pose, motion["trans"], block_frames=5)
    np.testing.assert_array_equal(whole, blocked)
    betas = np.random.default_rng(0).normal(size=(37, AMASS_BETAS))
    per_frame = posed_joints(rest_joints(model, betas), model.parents, pose, block_frames=8)
    for frame in (0, 17, 36):
        alone = posed_joints(
            rest_joints(model, betas[frame]), model.parents, pose[frame : frame + 1]
        )
        np.testing.assert_allclose(per_frame[frame], alone[0], rtol=0, atol=1e-12)


def test_rest_per_motion_and_a_joint_subset(model_root: Path) -> None:
    """Rest joints per motion named by ``rest_index`` give the per-frame result; a subset of
    joints gives those joints (and their ancestors) as the whole tree does."""
    model = load_body_model(model_root, "smplh", "male")
    motion = random_motion("smplh", 40, seed=5)
    pose = pose_of("smplh", motion)
    betas = np.random.default_rng(1).normal(size=(3, AMASS_BETAS))
    index = np.repeat([2, 0, 1, 2], 10)
    per_motion = rest_joints(model, betas)
    indexed = posed_joints(
        per_motion, model.parents, pose, motion["trans"], rest_index=index, block_frames=7
    )
    per_frame = posed_joints(per_motion[index], model.parents, pose, motion["trans"])
    np.testing.assert_allclose(indexed, per_frame, rtol=0, atol=1e-12)
    feet = posed_joints(per_motion[0], model.parents, pose, joints=(7, 11))
    whole = posed_joints(per_motion[0], model.parents, pose)
    used = [0, 1, 2, 4, 5, 7, 8, 11]  # the feet asked for and their ancestors
    np.testing.assert_allclose(feet[:, used], whole[:, used], rtol=0, atol=1e-12)
    assert not feet[:, 3].any()  # spine1: not an ancestor, not computed


def test_rotation_matrices_match_the_rotations_module() -> None:
    """Rodrigues from the half angle, against vposer_data.rotations (torch), at zero, tiny,
    ordinary and near half-turn angles."""
    from vposer_data.body_model import rotation_matrices
    from vposer_data.rotations import aa_to_matrot

    rng = np.random.default_rng(2)
    axes = rng.normal(size=(6, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-12, 1e-6, 0.3, 2.0, np.pi - 1e-7])
    aa = np.concatenate([axes * a for a in angles])
    ours = rotation_matrices(aa)
    theirs = aa_to_matrot(torch.from_numpy(aa)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(rotation_matrices(np.zeros(3)), np.eye(3))


def test_zero_pose_gives_rest_joints(model_root: Path) -> None:
    model = load_body_model(model_root, "smpl", "male")
    betas = np.linspace(-1, 1, 10)
    rest = rest_joints(model, betas)
    trans = np.array([[0.5, -1.0, 2.0]])
    posed = posed_joints(rest, model.parents, np.zeros((1, 24, 3)), trans)
    np.testing.assert_allclose(posed[0], rest + trans, rtol=0, atol=1e-12)
    # betas 0 give J_regressor · v_template, the made-up skeleton
    np.testing.assert_allclose(rest_joints(model, np.zeros(4)), model.joint_template, atol=0)


def test_assemble_pose_order_and_checks() -> None:
    frames = 3
    fields = {
        "root_orient": np.full((frames, 3), 1.0),
        "pose_body": np.full((frames, 63), 2.0),
        "pose_jaw": np.full((frames, 3), 3.0),
        "pose_eye": np.full((frames, 6), 4.0),
        "pose_hand": np.full((frames, 90), 5.0),
    }
    pose = assemble_pose("smplx", **fields)
    assert pose.shape == (frames, 55, 3)
    expected = [1] + [2] * 21 + [3] + [4] * 2 + [5] * 30  # root, body, jaw, eyes, hands
    np.testing.assert_array_equal(pose[0, :, 0], expected)
    smplh = assemble_pose("smplh", root_orient=fields["root_orient"], pose_body=fields["pose_body"])
    assert smplh.shape == (frames, 52, 3) and not smplh[:, 22:].any()  # hands flat when absent
    smpl = assemble_pose(
        "smpl", root_orient=fields["root_orient"], pose_body=fields["pose_body"],
        pose_hand=np.full((frames, 6), 7.0),
    )  # fmt: skip
    np.testing.assert_array_equal(smpl[0, 22:, 0], [7, 7])
    with pytest.raises(ValueError, match=r"pose_hand for smpl must have shape \(3, 6\)"):
        assemble_pose("smpl", **{k: fields[k] for k in ("root_orient", "pose_body", "pose_hand")})
    with pytest.raises(ValueError, match="smplh has no pose_jaw"):
        assemble_pose(
            "smplh", root_orient=fields["root_orient"], pose_body=fields["pose_body"],
            pose_jaw=fields["pose_jaw"],
        )  # fmt: skip
    assert [len(JOINT_NAMES_BY_FAMILY[f]) for f in FAMILIES] == [24, 52, 55]


# -- files -------------------------------------------------------------------------------------


def test_both_layouts_read_the_same_model(model_root: Path, tmp_path: Path) -> None:
    """The AMASS and smplx layouts of the same arrays give the same model; the identity is
    the file's SHA-256, the same wherever the file is copied."""
    for family in FAMILIES:
        amass = load_body_model(model_root, family, "female")
        alone = tmp_path / family
        target = model_path(alone, family, "female", "smplx")
        target.parent.mkdir(parents=True)
        shutil.copy(model_path(model_root, family, "female", "smplx"), target)
        smplx_layout = load_body_model(alone, family, "female")
        assert smplx_layout.path == target
        for name in ("v_template", "shapedirs", "J_regressor", "parents", "joint_shapedirs"):
            np.testing.assert_array_equal(getattr(amass, name), getattr(smplx_layout, name))
        assert smplx_layout.sha256 != amass.sha256  # the smplx layout adds its loader's keys
        copy = tmp_path / "copy" / family / "female" / "model.npz"
        copy.parent.mkdir(parents=True)
        shutil.copy(amass.path, copy)
        assert load_body_model(tmp_path / "copy", family, "female").sha256 == amass.sha256


def test_shape_directions_of_smplx_exclude_expressions(model_root: Path) -> None:
    model = load_body_model(model_root, "smplx", "male")
    assert model.num_shape_directions == 300  # of 400: 300 shape + 100 expression
    assert [shape_direction_count("smplx", w) for w in (400, 20, 10)] == [300, 10, 10]
    assert shape_direction_count("smplh", 16) == 16


def test_missing_model_lists_every_path(model_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_body_models(root, families=("smplh",), genders=("male",))
    with pytest.raises(BodyModelNotFoundError) as caught:
        find_model_file(root, "smplh", "female")
    message = str(caught.value)
    for path in candidate_paths(root, "smplh", "female"):
        assert str(path) in message
    assert "smplh/female/model.npz" in message and "SMPLH_FEMALE.npz" in message
    assert isinstance(caught.value, FileNotFoundError)
    assert find_model_file(root, "smplh", "male") == root / "smplh" / "male" / "model.npz"


def test_a_model_of_another_family_is_refused(model_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "smplh" / "male" / "model.npz"
    target.parent.mkdir(parents=True)
    shutil.copy(model_path(model_root, "smpl", "male", "amass"), target)
    with pytest.raises(BodyModelError, match=r"'J_regressor' has shape \(24, 6890\), expected"):
        load_body_model(tmp_path, "smplh", "male")


def test_object_arrays_are_not_unpickled(model_root: Path, tmp_path: Path) -> None:
    """An .npz whose J_regressor is a pickled object is refused (allow_pickle=False) with the
    fix; object arrays of keys not needed (SMPL-X's joint2num) are never read."""
    assert load_body_model(model_root, "smplx", "female").J_regressor.shape == (55, 10475)
    arrays = model_arrays("smpl", "male")
    arrays["J_regressor"] = np.array({"a sparse": "matrix"})
    path = tmp_path / "smpl" / "male" / "model.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, **arrays)
    with pytest.raises(BodyModelError, match=r"pickled object.*toarray\(\)"):
        load_body_model(tmp_path, "smpl", "male")


# -- pickles -------------------------------------------------------------------------------------


def _write_pickle(root: Path, family: str, gender: str, data: object, protocol: int) -> Path:
    path = root / family / f"{family.upper()}_{gender.upper()}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_and_sparse_pickle_is_read(model_root: Path, tmp_path: Path, protocol: int) -> None:
    """A .pkl of numpy arrays, a scipy sparse J_regressor and strings (as SMPL's are once
    cleaned of chumpy) reads to the same model as the .npz."""
    sparse = pytest.importorskip("scipy.sparse")
    arrays = model_arrays("smpl", "neutral", SEED)
    del arrays["posedirs"]  # not read; and 10 shape directions, as SMPL 1.0 has: a small file
    arrays["shapedirs"] = arrays["shapedirs"][:, :, :10]
    data = dict(arrays, J_regressor=sparse.csc_matrix(arrays["J_regressor"]), bs_style="lbs")
    data["scale"] = np.float64(1.0)  # a numpy scalar
    path = _write_pickle(tmp_path, "smpl", "neutral", data, protocol)
    from_pickle = load_body_model(tmp_path, "smpl", "neutral")
    from_npz = load_body_model(model_root, "smpl", "neutral")
    assert from_pickle.path == path
    np.testing.assert_array_equal(from_pickle.J_regressor, from_npz.J_regressor)
    np.testing.assert_allclose(
        from_pickle.joint_shapedirs, from_npz.joint_shapedirs[..., :10], rtol=0, atol=1e-15
    )  # the same products, summed in another order for another count of directions


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_naming_another_global_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    data = {"v_template": np.zeros((6890, 3)), "evil": _RunsCode(marker)}
    _write_pickle(tmp_path, "smpl", "male", data, 2)
    with pytest.raises(BodyModelError, match=r"names (posix|os|nt)\.system.*refused") as caught:
        load_body_model(tmp_path, "smpl", "male")
    assert not isinstance(caught.value, ChumpyModelError)
    assert not marker.exists()


def test_chumpy_pickle_is_refused_with_a_recipe_that_converts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pickle of chumpy objects is refused naming chumpy, without importing it; the recipe
    in the message, run where "chumpy" is importable, makes an .npz that is then read."""
    fake = types.ModuleType("chumpy.ch")

    class Ch:  # stands for chumpy.ch.Ch: an array-like object
        def __init__(self, value: np.ndarray) -> None:
            self.value = value

        def __array__(self, dtype=None, copy=None):
            return np.asarray(self.value, dtype=dtype)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    fake.Ch = Ch  # type: ignore[attr-defined]
    arrays = model_arrays("smpl", "female")
    arrays["shapedirs"] = arrays["shapedirs"][:, :, :10]  # a small file: SMPL 1.0's 10
    arrays["posedirs"] = np.zeros(1)  # not read
    chumpy_keys = ("v_template", "shapedirs", "posedirs", "weights")
    data = {k: Ch(v) if k in chumpy_keys else v for k, v in arrays.items()}
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
        patch.setitem(sys.modules, "chumpy.ch", fake)
        path = _write_pickle(tmp_path, "smpl", "female", data, 2)
    assert "chumpy" not in sys.modules
    with pytest.raises(ChumpyModelError, match=r"chumpy\.ch\.Ch") as caught:
        load_body_model(tmp_path, "smpl", "female")
    assert "chumpy" not in sys.modules  # refused before anything of it was imported
    message = str(caught.value)
    recipe = "\n".join(
        line[4:] for line in message.splitlines() if line.startswith("    ")
    )  # the indented lines are the code
    assert str(path.with_suffix(".npz")) in recipe
    with monkeypatch.context() as patch:  # an environment "with chumpy"
        patch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
        patch.setitem(sys.modules, "chumpy.ch", fake)
        exec(recipe, {})
    converted = load_body_model(tmp_path, "smpl", "female")
    assert converted.path == path.with_suffix(".npz")
    np.testing.assert_array_equal(converted.v_template, arrays["v_template"])


def test_damaged_files_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "smplh" / "male"
    folder.mkdir(parents=True)
    (folder / "model.npz").write_bytes(b"")
    with pytest.raises(BodyModelError, match="empty"):
        load_body_model(tmp_path, "smplh", "male")
    (folder / "model.npz").write_bytes(b"not a zip archive at all")
    with pytest.raises(BodyModelError, match=r"not an \.npz"):
        load_body_model(tmp_path, "smplh", "male")
    pkl = tmp_path / "smplh" / "SMPLH_FEMALE.pkl"
    pkl.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(BodyModelError, match="holds a list"):
        load_body_model(tmp_path, "smplh", "female")
