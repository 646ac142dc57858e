"""Properties of the Stage II augmentations in vposer_data.augment."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vposer_data.augment.ops import (
    POSE_FIELDS,
    Batch,
    apply_augmentations,
    matrot,
    mirror,
    noise,
    random_zrot,
    remove_zrot,
)
from vposer_data.augment.registry import (
    AUGMENTATIONS,
    MATROT_FIELD,
    AugmentSpec,
    is_random,
    output_fields,
    parse_augmentations,
)
from vposer_data.rotations import aa_to_matrot, rotz, yaw_sxyz

PROPERTY = settings(deadline=None, max_examples=40)
F64 = torch.float64
# Reflection across the sagittal plane (SMPL body x is left-right; AMASS world x too).
M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=F64))


def make_batch(n: int, seed: int = 0, scale: float = 1.0) -> Batch:
    """A random SMPL-X-like Stage I batch, float32 poses, plus the pass-through fields."""
    g = torch.Generator().manual_seed(seed)
    batch = {f: scale * torch.randn(n, w, generator=g) for f, w in POSE_FIELDS.items()}
    batch["trans"] = torch.randn(n, 3, generator=g)
    batch["betas"] = torch.randn(n, 16, generator=g)
    batch["gender"] = torch.randint(-1, 2, (n, 1), generator=g).float()
    batch["seq_id"] = torch.randint(0, 100, (n, 1), generator=g)
    batch["frame_id"] = torch.arange(n).unsqueeze(1)
    return batch


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clone(batch: Batch) -> Batch:
    return {k: v.clone() for k, v in batch.items()}


def assert_batches_equal(a: Batch, b: Batch) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


def root_matrix(batch: Batch) -> torch.Tensor:
    return aa_to_matrot(batch["root_orient"].to(F64))


@st.composite
def float32_batches(draw: st.DrawFn) -> Batch:
    """Batches with arbitrary finite float32 values (signed zeros, subnormals, huge)."""
    n = draw(st.integers(0, 4))
    elements = st.floats(width=32, allow_nan=False, allow_infinity=False)
    fields = {**POSE_FIELDS, "trans": 3, "betas": 10}
    present = draw(st.sets(st.sampled_from(sorted(fields)), min_size=1))
    return {
        f: torch.from_numpy(draw(hnp.arrays(np.float32, (n, fields[f]), elements=elements)))
        for f in sorted(present)
    }


@st.composite
def root_batches(draw: st.DrawFn, away_from_gimbal_lock: bool = False) -> Batch:
    """Small batches from a drawn seed; optionally with |pitch| < pi/2 - 0.05."""
    n = draw(st.integers(1, 16))
    batch = make_batch(n, seed=draw(st.integers(0, 2**31 - 1)))
    if away_from_gimbal_lock:
        # Build the root from Euler angles so that the decomposition is well conditioned.
        angles = torch.rand(n, 3, generator=gen(draw(st.integers(0, 2**31 - 1))), dtype=F64)
        roll, yaw = (angles[:, 0] - 0.5) * 2 * math.pi, (angles[:, 2] - 0.5) * 2 * math.pi
        pitch = (angles[:, 1] - 0.5) * (math.pi - 0.1)
        R = roma.euler_to_rotmat("xyz", torch.stack([roll, pitch, yaw], dim=1))
        batch["root_orient"] = roma.rotmat_to_rotvec(R).float()
    return batch


# --------------------------------------------------------------------------- matrot


def test_matrot_layout_matches_roma_per_joint() -> None:
    batch = make_batch(7, seed=1, scale=1.5)
    out = matrot(batch)
    m = out[MATROT_FIELD]
    assert m.shape == (7, 189) and m.dtype == torch.float32
    pose = batch["pose_body"].to(F64)
    for j in range(21):
        expected = roma.rotvec_to_rotmat(pose[:, 3 * j : 3 * j + 3]).reshape(7, 9)
        torch.testing.assert_close(m[:, 9 * j : 9 * j + 9].to(F64), expected, atol=1e-6, rtol=0)
    # Row-major: element (r, c) of joint j is at column 9 j + 3 r + c.
    R5 = roma.rotvec_to_rotmat(pose[:, 15:18])
    torch.testing.assert_close(m[:, 9 * 5 + 3 * 1 + 2].to(F64), R5[:, 1, 2], atol=1e-6, rtol=0)
    for k in batch:
        assert out[k] is batch[k]


@PROPERTY
@given(root_batches())
def test_matrot_rows_orthonormal_det_one(batch: Batch) -> None:
    R = matrot(batch)[MATROT_FIELD].to(F64).reshape(-1, 21, 3, 3)
    eye = torch.eye(3, dtype=F64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:2], dtype=F64))


def test_matrot_draws_no_randomness() -> None:
    g = gen(3)
    state = g.get_state()
    matrot(make_batch(4), g)
    assert torch.equal(g.get_state(), state)


def test_matrot_needs_pose_body() -> None:
    with pytest.raises(ValueError, match="pose_body"):
        matrot({"root_orient": torch.zeros(2, 3)})


# --------------------------------------------------------------------------- remove_zrot


@PROPERTY
@given(root_batches(away_from_gimbal_lock=True))
def test_remove_zrot_zero_yaw_keeps_pitch_and_roll(batch: Batch) -> None:
    out = remove_zrot(batch, gen())
    before = roma.rotmat_to_euler("xyz", root_matrix(batch))
    after = roma.rotmat_to_euler("xyz", root_matrix(out))
    torch.testing.assert_close(
        yaw_sxyz(root_matrix(out)), torch.zeros_like(after[:, 2]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(after[:, :2], before[:, :2], atol=1e-5, rtol=0)
    assert out["root_orient"].dtype == torch.float32
    for k in batch.keys() - {"root_orient"}:
        assert out[k] is batch[k]


@PROPERTY
@given(root_batches())
def test_remove_zrot_idempotent(batch: Batch) -> None:
    once = remove_zrot(batch)
    twice = remove_zrot(once)
    torch.testing.assert_close(root_matrix(twice), root_matrix(once), atol=1e-5, rtol=0)


@PROPERTY
@given(root_batches(away_from_gimbal_lock=True))
def test_remove_zrot_matches_euler_recipe(batch: Batch) -> None:
    """As the original remove_Zrot: Euler sxyz angles, set the z angle to 0, back."""
    euler = roma.rotmat_to_euler("xyz", root_matrix(batch))
    euler[:, 2] = 0
    expected = roma.euler_to_rotmat("xyz", euler)
    torch.testing.assert_close(root_matrix(remove_zrot(batch)), expected, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- random_zrot


@PROPERTY
@given(root_batches(), st.integers(0, 2**31 - 1))
def test_random_zrot_keeps_tilt_and_rotates_trans(batch: Batch, seed: int) -> None:
    out = random_zrot(batch, gen(seed))
    R, R2 = root_matrix(batch), root_matrix(out)
    # Body up (SMPL y) in the world: its angle with world z is unchanged; in fact the whole
    # bottom row of R (the z components of the body axes) is unchanged by a z-rotation.
    up, up2 = R[:, :, 1], R2[:, :, 1]
    torch.testing.assert_close(up2[:, 2], up[:, 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(R2[:, 2, :], R[:, 2, :], atol=1e-5, rtol=0)
    # R2 = Rz(theta) R; trans is rotated by the same Rz(theta).
    D = R2 @ R.transpose(-1, -2)
    Rz = rotz(torch.atan2(D[:, 1, 0], D[:, 0, 0]))
    torch.testing.assert_close(D, Rz, atol=1e-5, rtol=0)
    expected_trans = (Rz @ batch["trans"].to(F64).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out["trans"].to(F64), expected_trans, atol=1e-5, rtol=1e-5)
    assert out["trans"].dtype == batch["trans"].dtype
    for k in batch.keys() - {"root_orient", "trans"}:
        assert out[k] is batch[k]


def test_random_zrot_angles_cover_the_circle() -> None:
    batch = make_batch(2000, seed=2)
    batch["root_orient"] = torch.zeros(2000, 3)
    out = random_zrot(batch, gen(5))
    theta = torch.remainder(yaw_sxyz(root_matrix(out)), 2 * math.pi)
    counts = torch.histc(theta, bins=8, min=0, max=2 * math.pi)
    assert counts.min() > 180 and counts.max() < 320, counts


def test_random_zrot_without_trans() -> None:
    batch = make_batch(3)
    del batch["trans"]
    out = random_zrot(batch, gen())
    assert "trans" not in out


# --------------------------------------------------------------------------- mirror


@PROPERTY
@given(float32_batches())
def test_mirror_twice_is_identity(batch: Batch) -> None:
    once = mirror(batch, gen(1))
    twice = mirror(once, gen(2))
    assert_batches_equal(twice, batch)
    for k, v in twice.items():  # bit-exact, signed zeros included
        assert torch.equal(v.view(torch.int32), batch[k].view(torch.int32)), k


BODY_PAIRS = [(1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21)]


@pytest.mark.parametrize("pair", BODY_PAIRS)
@pytest.mark.parametrize("from_left", [True, False])
def test_mirror_swaps_body_pairs(pair: tuple[int, int], from_left: bool) -> None:
    src, dst = pair if from_left else pair[::-1]
    pose = torch.zeros(1, 63)
    pose[0, 3 * (src - 1) : 3 * src] = torch.tensor([0.1, 0.2, 0.3])
    out = mirror({"pose_body": pose}, gen())["pose_body"]
    expected = torch.zeros(1, 63)
    expected[0, 3 * (dst - 1) : 3 * dst] = torch.tensor([0.1, -0.2, -0.3])
    assert torch.equal(out, expected)


@pytest.mark.parametrize("joint", [3, 6, 9, 12, 15])
def test_mirror_keeps_spine_joints_in_place(joint: int) -> None:
    pose = torch.zeros(1, 63)
    pose[0, 3 * (joint - 1) : 3 * joint] = torch.tensor([0.1, 0.2, 0.3])
    out = mirror({"pose_body": pose}, gen())["pose_body"]
    assert torch.equal(out[0, 3 * (joint - 1) : 3 * joint], torch.tensor([0.1, -0.2, -0.3]))
    assert torch.count_nonzero(out) == 3


def test_mirror_hands_eyes_jaw_root_trans() -> None:
    values = torch.tensor([0.1, 0.2, 0.3])
    hand = torch.zeros(1, 90)
    hand[0, 3 * 4 : 3 * 5] = values  # left hand joint 4
    eye = torch.zeros(1, 6)
    eye[0, :3] = values  # left eye
    batch = {
        "pose_hand": hand,
        "pose_eye": eye,
        "pose_jaw": values[None].clone(),
        "root_orient": values[None].clone(),
        "trans": torch.tensor([[1.0, 2.0, 3.0]]),
        "betas": torch.ones(1, 10),
    }
    out = mirror(batch, gen())
    reflected = torch.tensor([0.1, -0.2, -0.3])
    expected_hand = torch.zeros(1, 90)
    expected_hand[0, 45 + 3 * 4 : 45 + 3 * 5] = reflected  # right hand joint 4
    assert torch.equal(out["pose_hand"], expected_hand)
    assert torch.equal(out["pose_eye"], torch.cat([torch.zeros(3), reflected])[None])
    assert torch.equal(out["pose_jaw"], reflected[None])
    assert torch.equal(out["root_orient"], reflected[None])
    assert torch.equal(out["trans"], torch.tensor([[-1.0, 2.0, 3.0]]))
    assert out["betas"] is batch["betas"]


@PROPERTY
@given(root_batches())
def test_mirror_is_conjugation_by_the_reflection(batch: Batch) -> None:
    """Each reflected joint rotation is M R M, M = diag(-1, 1, 1)."""
    out = mirror(batch, gen())
    torch.testing.assert_close(root_matrix(out), M @ root_matrix(batch) @ M, atol=1e-5, rtol=0)
    jaw = aa_to_matrot(batch["pose_jaw"].to(F64))
    torch.testing.assert_close(
        aa_to_matrot(out["pose_jaw"].to(F64)), M @ jaw @ M, atol=1e-5, rtol=0
    )


def test_mirror_probability() -> None:
    batch = make_batch(4000, seed=4)
    assert_batches_equal(mirror(batch, gen(), p=0.0), batch)
    out = mirror(batch, gen(), p=0.3)
    flipped = ~torch.isclose(out["trans"][:, 0], batch["trans"][:, 0])
    assert abs(flipped.float().mean().item() - 0.3) < 0.03
    # Each sample is mirrored as a whole: every field or none.
    fully = mirror(batch, gen())
    for field in ("root_orient", "pose_body", "pose_hand", "pose_eye", "pose_jaw", "trans"):
        expected = torch.where(flipped[:, None], fully[field], batch[field])
        assert torch.equal(out[field], expected), field


# --------------------------------------------------------------------------- noise


def test_noise_sigma_zero_changes_nothing() -> None:
    batch = make_batch(50)
    out = noise(batch, gen(), fields=tuple(POSE_FIELDS), sigma=0.0)
    assert_batches_equal(out, batch)


def test_noise_std_and_fields() -> None:
    batch = make_batch(20000, seed=6)
    out = noise(batch, gen(7), fields=("pose_body", "pose_jaw"), sigma=0.05)
    for field in ("pose_body", "pose_jaw"):
        delta = (out[field] - batch[field]).to(F64)
        assert abs(delta.std().item() - 0.05) < 0.05 * 0.03, field
        assert abs(delta.mean().item()) < 0.002, field
    for field in batch.keys() - {"pose_body", "pose_jaw"}:
        assert out[field] is batch[field]


def test_noise_skips_absent_fields() -> None:
    batch = {"pose_body": torch.zeros(3, 63)}
    out = noise(batch, gen(), fields=("pose_hand", "pose_body"), sigma=0.1)
    assert set(out) == {"pose_body"} and not torch.equal(out["pose_body"], batch["pose_body"])


# --------------------------------------------------------------------------- all of them

ALL_SPECS = parse_augmentations(
    [
        {"name": "mirror", "p": 0.5},
        {"name": "noise", "fields": ["pose_body", "root_orient", "pose_hand"], "sigma": 0.02},
        "remove_zrot",
        "random_zrot",
        "matrot",
    ]
)


def test_same_seed_same_output_different_seed_different() -> None:
    batch = make_batch(64, seed=8)
    a = apply_augmentations(batch, ALL_SPECS, gen(11))
    b = apply_augmentations(batch, ALL_SPECS, gen(11))
    c = apply_augmentations(batch, ALL_SPECS, gen(12))
    assert_batches_equal(a, b)
    for field in ("root_orient", "pose_body", "pose_hand", "trans", MATROT_FIELD):
        assert not torch.equal(a[field], c[field]), field


@PROPERTY
@given(st.integers(0, 2**31 - 1), st.integers(0, 8))
def test_inputs_never_mutated(seed: int, n: int) -> None:
    batch = make_batch(n, seed=seed)
    keep = clone(batch)
    keys = list(batch)
    for name in AUGMENTATIONS:
        if AUGMENTATIONS[name].needs_clips or AUGMENTATIONS[name].needs_body_model:
            continue  # frames here; clips in test_clips_pipeline, joints in test_body_fields
        out = apply_augmentations(batch, parse_augmentations([name]), gen(seed))
        assert list(batch) == keys
        assert_batches_equal(batch, keep)
        for field in POSE_FIELDS:
            assert out[field].dtype == torch.float32
    apply_augmentations(batch, ALL_SPECS, gen(seed))
    assert_batches_equal(batch, keep)


def test_apply_nothing_and_default() -> None:
    batch = make_batch(5)
    out = apply_augmentations(batch, (), gen())
    assert out is not batch
    assert_batches_equal(out, batch)
    out = apply_augmentations(batch, parse_augmentations(None), gen())
    # The default keeps every source value and only adds the body rotation matrices.
    assert set(out) == {*batch, MATROT_FIELD}
    for k in batch:
        assert out[k] is batch[k]


def test_apply_validates_specs_built_by_hand() -> None:
    with pytest.raises(ValueError, match="unknown augmentation 'bogus'"):
        apply_augmentations(make_batch(2), [AugmentSpec("bogus")], gen())
    with pytest.raises(ValueError, match="stale"):
        apply_augmentations(make_batch(2), [AugmentSpec("matrot"), AugmentSpec("mirror")], gen())


# --------------------------------------------------------------------------- configuration


def test_parse_defaults_and_normalization() -> None:
    assert parse_augmentations(None) == (AugmentSpec("matrot", ()),)
    assert parse_augmentations([]) == ()
    (spec,) = parse_augmentations(["noise"])
    assert spec == AugmentSpec("noise", (("fields", ("pose_body",)), ("sigma", 0.01)))
    (spec,) = parse_augmentations([{"sigma": 0.02, "name": "noise", "fields": ["pose_hand"]}])
    assert spec.params == (("fields", ("pose_hand",)), ("sigma", 0.02))
    assert hash(spec) == hash(AugmentSpec("noise", spec.params))
    assert parse_augmentations([{"name": "mirror", "p": 1}])[0].params == (("p", 1.0),)
    assert parse_augmentations("mirror") == parse_augmentations(["mirror"])


def test_spec_dict_round_trip() -> None:
    for spec in ALL_SPECS:
        d = spec.as_dict()
        assert d["name"] == spec.name
        again = json.loads(json.dumps(d))
        assert again == d
        assert parse_augmentations([again]) == (spec,)
        assert parse_augmentations([spec]) == (spec,)


def test_registry_is_complete() -> None:
    assert set(AUGMENTATIONS) == {
        "matrot",
        "noise",
        "remove_zrot",
        "random_zrot",
        "mirror",
        "rot6d",
        "quat",
        "velocities",
        "joints",
        "contacts",
    }
    for name in AUGMENTATIONS:
        assert parse_augmentations([name])[0].name == name


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["rotate"], r"unknown augmentation 'rotate'.*matrot, mirror, noise, quat, random_zrot"),
        ([{"sigma": 1}], r"unknown augmentation None"),
        (
            [{"name": "noise", "sgima": 0.1}],
            r"no parameter 'sgima'; valid parameters: fields, sigma",
        ),
        ([{"name": "matrot", "p": 0.1}], r"no parameter 'p'; valid parameters: none"),
        ([{"name": "noise", "sigma": -0.1}], r"'sigma' must be .*>= 0.*-0.1"),
        ([{"name": "noise", "sigma": float("nan")}], r"'sigma'"),
        ([{"name": "noise", "sigma": "0.1"}], r"'sigma'"),
        ([{"name": "noise", "fields": ["betas"]}], r"'betas'.*not a pose field.*pose_body"),
        ([{"name": "noise", "fields": []}], r"non-empty"),
        ([{"name": "noise", "fields": ["pose_body", "pose_body"]}], r"twice"),
        ([{"name": "mirror", "p": 1.5}], r"'p' must be .*\[0.0, 1.0\].*1.5"),
        ([{"name": "mirror", "p": True}], r"'p'"),
        ([42], r"#0 must be a name"),
    ],
)
def test_parse_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_augmentations(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "late",
    ["mirror", "remove_zrot", "random_zrot", "noise", {"name": "noise", "fields": "pose_body"}],
)
def test_pose_changes_after_matrot_refused(late: object) -> None:
    with pytest.raises(ValueError, match=r"after 'matrot'.*stale"):
        parse_augmentations(["matrot", late])  # type: ignore[list-item]
    parse_augmentations([late, "matrot"])  # type: ignore[list-item]


def test_output_fields() -> None:
    fields = ["root_orient", "pose_body", "trans", "betas"]
    assert output_fields(fields, ()) == fields
    assert output_fields(fields, parse_augmentations(None)) == [*fields, MATROT_FIELD]
    assert output_fields(fields, ALL_SPECS) == [*fields, MATROT_FIELD]
    assert output_fields([*fields, MATROT_FIELD], ["matrot"]) == [*fields, MATROT_FIELD]
    batch = make_batch(3)
    assert output_fields(list(batch), ALL_SPECS) == list(
        apply_augmentations(batch, ALL_SPECS, gen())
    )
    with pytest.raises(ValueError, match="needs field 'pose_body'"):
        output_fields(["root_orient"], ["matrot"])
    with pytest.raises(ValueError, match="needs field 'root_orient'"):
        output_fields(["pose_body"], ["random_zrot"])


def test_registry_says_which_augmentations_draw_at_random() -> None:
    assert not is_random(parse_augmentations(["remove_zrot", "matrot"]))
    assert not is_random(parse_augmentations([{"name": "noise", "sigma": 0}, "matrot"]))
    assert not is_random(parse_augmentations([{"name": "mirror", "p": 1}]))
    assert is_random(parse_augmentations([{"name": "mirror", "p": 0.5}]))
    assert is_random(parse_augmentations(["noise"]))
    assert is_random(parse_augmentations(["random_zrot", "matrot"]))


def test_rot6d_and_quat_augmentations_follow_the_stated_layouts() -> None:
    """``<field>_rot6d``: per joint [R00, R10, R20, R01, R11, R21]; ``<field>_quat``: per
    joint (w, x, y, z) with w >= 0, against roma (whose order is x, y, z, w)."""
    from vposer_data.augment.ops import quat, rot6d

    batch = make_batch(5)
    out = quat(rot6d(batch, fields=("pose_body", "root_orient")), fields=("pose_hand",))
    R = aa_to_matrot(batch["pose_body"].to(F64).reshape(5, 21, 3))
    six = out["pose_body_rot6d"].reshape(5, 21, 6).to(F64)
    expected = torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)
    assert torch.allclose(six, expected, atol=1e-6)
    assert out["root_orient_rot6d"].shape == (5, 6)
    q = out["pose_hand_quat"].reshape(5, 30, 4).to(F64)
    reference = roma.rotvec_to_unitquat(batch["pose_hand"].to(F64).reshape(5, 30, 3))
    reference = torch.cat([reference[..., 3:], reference[..., :3]], dim=-1)  # xyzw -> wxyz
    reference = torch.where(reference[..., :1] < 0, -reference, reference)
    assert torch.allclose(q, reference, atol=1e-6) and bool((q[..., 0] >= 0).all())
    clips = {k: v.reshape(5, 1, -1).expand(5, 3, -1) for k, v in batch.items()}
    clip_out = rot6d(clips)
    assert clip_out["pose_body_rot6d"].shape == (5, 3, 126)
    assert torch.equal(clip_out["pose_body_rot6d"][:, 1], out["pose_body_rot6d"])
    assert output_fields(list(batch), ["rot6d", {"name": "quat", "fields": ["pose_hand"]}])[
        -2:
    ] == ["pose_body_rot6d", "pose_hand_quat"]
