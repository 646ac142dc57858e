"""Properties of the rotation conversions in vposer_data.rotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vposer_data.rotations import (
    aa_to_matrot,
    aa_to_quat,
    matrot_to_aa,
    matrot_to_rot6d,
    quat_to_aa,
    rot6d_to_matrot,
    rotz,
    yaw_sxyz,
)

PROPERTY = settings(deadline=None, max_examples=60)


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Independent reference: axis-angle (..., 3) -> (..., 3, 3), float64."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]
    K = np.zeros((*aa.shape[:-1], 3, 3))
    K[..., 0, 1], K[..., 0, 2] = -aa[..., 2], aa[..., 1]
    K[..., 1, 0], K[..., 1, 2] = aa[..., 2], -aa[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -aa[..., 1], aa[..., 0]
    safe = np.where(theta < 1e-12, 1.0, theta)
    a = np.where(theta < 1e-12, 1.0, np.sin(theta) / safe)
    b = np.where(theta < 1e-12, 0.5, (1 - np.cos(theta)) / safe**2)
    return np.eye(3) + a * K + b * (K @ K)


@st.composite
def rotvecs(draw: st.DrawFn, max_angle: float = math.pi - 1e-3, max_n: int = 8) -> np.ndarray:
    """(n, 3) rotation vectors with angles in [0, max_angle], including tiny ones."""
    n = draw(st.integers(1, max_n))
    axes = draw(hnp.arrays(np.float64, (n, 3), elements=st.floats(-1, 1)))
    norms = np.linalg.norm(axes, axis=1, keepdims=True)
    axes = np.where(norms < 1e-6, np.array([[0.0, 0.0, 1.0]]), axes / np.maximum(norms, 1e-6))
    angle_elems = st.one_of(st.floats(0, max_angle), st.floats(0, 1e-5))
    angles = draw(hnp.arrays(np.float64, (n, 1), elements=angle_elems))
    return axes * angles


@PROPERTY
@given(rotvecs())
def test_aa_matrot_round_trip(aa: np.ndarray) -> None:
    x = torch.from_numpy(aa)
    back = matrot_to_aa(aa_to_matrot(x))
    torch.testing.assert_close(back, x, atol=1e-9, rtol=0)


@PROPERTY
@given(rotvecs(max_angle=math.pi))
def test_matrot_is_rotation(aa: np.ndarray) -> None:
    R = aa_to_matrot(torch.from_numpy(aa))
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        torch.linalg.det(R), torch.ones(R.shape[0], dtype=torch.float64), atol=1e-12, rtol=0
    )


@PROPERTY
@given(rotvecs(max_angle=math.pi))
def test_matrot_matches_rodrigues(aa: np.ndarray) -> None:
    R = aa_to_matrot(torch.from_numpy(aa)).numpy()
    np.testing.assert_allclose(R, rodrigues(aa), atol=1e-10)


def test_dtype_and_batch_shape_preserved() -> None:
    aa = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    R = aa_to_matrot(aa)
    assert R.shape == (2, 5, 3, 3) and R.dtype == torch.float32
    back = matrot_to_aa(R)
    assert back.shape == (2, 5, 3) and back.dtype == torch.float32
    assert yaw_sxyz(R).shape == (2, 5) and yaw_sxyz(R).dtype == torch.float32
    assert rotz(torch.zeros(2, 5)).shape == (2, 5, 3, 3)
    assert aa_to_matrot(torch.zeros(0, 3)).shape == (0, 3, 3)
    assert matrot_to_aa(torch.zeros(0, 3, 3)).shape == (0, 3)


@PROPERTY
@given(st.floats(-10, 10), st.floats(-10, 10))
def test_rotz(a: float, b: float) -> None:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    Ra = rotz(ta)
    torch.testing.assert_close(Ra, aa_to_matrot(torch.tensor([0.0, 0.0, a], dtype=torch.float64)))
    torch.testing.assert_close(Ra @ rotz(tb), rotz(ta + tb))
    # z is the rotation axis: the vertical is fixed.
    e_z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(Ra @ e_z, e_z)


@PROPERTY
@given(
    st.floats(-math.pi + 1e-6, math.pi - 1e-6),
    st.floats(-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3),
    st.floats(-math.pi + 1e-6, math.pi - 1e-6),
)
def test_yaw_sxyz_recovers_z_angle(roll: float, pitch: float, yaw: float) -> None:
    f64 = torch.float64
    R = (
        rotz(torch.tensor(yaw, dtype=f64))
        @ aa_to_matrot(torch.tensor([0.0, pitch, 0.0], dtype=f64))
        @ aa_to_matrot(torch.tensor([roll, 0.0, 0.0], dtype=f64))
    )
    assert abs(float(yaw_sxyz(R)) - yaw) < 1e-9
    # Same convention as roma's extrinsic 'xyz' Euler angles.
    torch.testing.assert_close(
        roma.rotmat_to_euler("xyz", R), torch.tensor([roll, pitch, yaw], dtype=f64)
    )


# --- 6D rotations -------------------------------------------------------------------------------


def test_rot6d_layout_on_hand_built_matrices() -> None:
    M = torch.arange(9, dtype=torch.float64).reshape(3, 3)  # M[r, c] = 3 r + c
    assert matrot_to_rot6d(M).tolist() == [0.0, 3.0, 6.0, 1.0, 4.0, 7.0]  # R00 R10 R20 R01 R11 R21
    # A quarter turn about z: columns (0, 1, 0) and (-1, 0, 0).
    Rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert matrot_to_rot6d(Rz).tolist() == [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
    torch.testing.assert_close(rot6d_to_matrot(matrot_to_rot6d(Rz)), Rz)


@PROPERTY
@given(rotvecs(max_angle=math.pi))
def test_rot6d_round_trip(aa: np.ndarray) -> None:
    R = aa_to_matrot(torch.from_numpy(aa))
    six = matrot_to_rot6d(R)
    assert six.shape == (aa.shape[0], 6)
    torch.testing.assert_close(rot6d_to_matrot(six), R, atol=1e-12, rtol=0)


@st.composite
def six_vectors(draw: st.DrawFn) -> np.ndarray:
    """(n, 6) with both halves of norm >= 0.1 and at least ~6 degrees apart."""
    n = draw(st.integers(1, 8))
    x = draw(hnp.arrays(np.float64, (n, 6), elements=st.floats(-10, 10)))
    a, b = x[:, :3], x[:, 3:]
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    sin = np.linalg.norm(np.cross(a, b), axis=1) / np.maximum(na * nb, 1e-300)
    keep = (na >= 0.1) & (nb >= 0.1) & (sin >= 0.1)
    x = x[keep]
    return x if len(x) else np.array([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])


@PROPERTY
@given(six_vectors())
def test_rot6d_to_matrot_is_gram_schmidt(x: np.ndarray) -> None:
    six = torch.from_numpy(x)
    R = rot6d_to_matrot(six)
    # roma takes the two columns as a (..., 3, 2) matrix.
    reference = roma.special_gramschmidt(six.reshape(-1, 2, 3).transpose(-1, -2))
    torch.testing.assert_close(R, reference, atol=1e-12, rtol=0)
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(len(x), dtype=torch.float64))
    # The first column keeps the direction of the first half.
    a = six[:, :3] / torch.linalg.vector_norm(six[:, :3], dim=1, keepdim=True)
    torch.testing.assert_close(R[:, :, 0], a, atol=1e-12, rtol=0)


# --- quaternions --------------------------------------------------------------------------------


def wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 1:], q[..., :1]], dim=-1)


def xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 3:], q[..., :3]], dim=-1)


@st.composite
def axis_angles(draw: st.DrawFn, angles: st.SearchStrategy[float], max_n: int = 8) -> np.ndarray:
    """(n, 3) rotation vectors: random unit axes times angles drawn from ``angles``."""
    n = draw(st.integers(1, max_n))
    axes = draw(hnp.arrays(np.float64, (n, 3), elements=st.floats(-1, 1)))
    norms = np.linalg.norm(axes, axis=1, keepdims=True)
    axes = np.where(norms < 1e-3, np.array([[0.0, 0.0, 1.0]]), axes / np.maximum(norms, 1e-3))
    angle = draw(hnp.arrays(np.float64, (n, 1), elements=angles))
    return axes * angle


NEAR_PI = st.one_of(st.floats(math.pi - 1e-6, math.pi), st.just(math.pi))


def test_quat_hand_built() -> None:
    f64 = torch.float64
    aa = torch.tensor(
        [
            [0.0, 0.0, 0.0],
            [math.pi / 2, 0.0, 0.0],
            [math.pi, 0.0, 0.0],
            [-math.pi, 0.0, 0.0],
            [0.0, -math.pi, 0.0],
            [0.0, 0.0, 3 * math.pi / 2],
        ],
        dtype=f64,
    )
    h = math.sqrt(0.5)
    expected = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [h, h, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [h, 0.0, 0.0, -h],  # 3pi/2 about z is -pi/2 about z
        ],
        dtype=f64,
    )
    q = aa_to_quat(aa)
    torch.testing.assert_close(q, expected, atol=1e-15, rtol=0)
    assert (q[2:5, 0] == 0).all()  # half-turns: w exactly 0
    assert not torch.signbit(q[q == 0]).any()  # no negative zeros


@PROPERTY
@given(rotvecs())
def test_aa_to_quat_matches_roma(aa: np.ndarray) -> None:
    x = torch.from_numpy(aa)
    q = aa_to_quat(x)
    reference = xyzw_to_wxyz(roma.rotvec_to_unitquat(x))
    reference = reference * torch.sign(reference[:, :1])  # angles < pi: w > 0
    torch.testing.assert_close(q, reference, atol=1e-14, rtol=0)


@PROPERTY
@given(axis_angles(st.floats(0, 4 * math.pi)))
def test_quat_is_the_same_rotation_with_w_nonnegative(aa: np.ndarray) -> None:
    x = torch.from_numpy(aa)
    q = aa_to_quat(x)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(
        torch.linalg.vector_norm(q, dim=1), torch.ones(len(aa), dtype=torch.float64)
    )
    torch.testing.assert_close(
        roma.unitquat_to_rotmat(wxyz_to_xyzw(q)), roma.rotvec_to_rotmat(x), atol=1e-12, rtol=0
    )


@PROPERTY
@given(rotvecs())
def test_quat_round_trip(aa: np.ndarray) -> None:
    x = torch.from_numpy(aa)
    q = aa_to_quat(x)
    torch.testing.assert_close(quat_to_aa(q), x, atol=1e-12, rtol=0)
    # q and -q are one rotation; scale does not matter either.
    torch.testing.assert_close(quat_to_aa(-3.0 * q), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        quat_to_aa(q), roma.unitquat_to_rotvec(wxyz_to_xyzw(q)), atol=1e-12, rtol=0
    )


@PROPERTY
@given(axis_angles(st.floats(0, 1e-5)))
def test_quat_near_zero_angle(aa: np.ndarray) -> None:
    x = torch.from_numpy(aa)
    q = aa_to_quat(x)
    reference = xyzw_to_wxyz(roma.rotvec_to_unitquat(x))
    torch.testing.assert_close(q, reference, atol=1e-17, rtol=1e-14)
    torch.testing.assert_close(quat_to_aa(q), x, atol=1e-18, rtol=1e-12)


@PROPERTY
@given(axis_angles(NEAR_PI))
def test_quat_near_pi(aa: np.ndarray) -> None:
    x = torch.from_numpy(aa)
    q = aa_to_quat(x)
    assert (q[:, 0] >= 0).all()
    back = quat_to_aa(q)
    # Same rotation; the angle stays within float rounding of the original.
    torch.testing.assert_close(aa_to_matrot(back), aa_to_matrot(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        torch.linalg.vector_norm(back, dim=1),
        torch.linalg.vector_norm(x, dim=1),
        atol=1e-12,
        rtol=0,
    )
    torch.testing.assert_close(
        roma.unitquat_to_rotmat(wxyz_to_xyzw(q)), roma.rotvec_to_rotmat(x), atol=1e-12, rtol=0
    )


@PROPERTY
@given(axis_angles(st.just(math.pi)))
def test_half_turn_rule(aa: np.ndarray) -> None:
    x = torch.from_numpy(aa)
    q = aa_to_quat(x)
    torch.testing.assert_close(aa_to_quat(-x), q, atol=0, rtol=0)  # a and -a: one rotation
    assert (q[:, 0] == 0).all()
    for row in q[:, 1:]:
        assert row[row != 0][0] > 0  # first nonzero of x, y, z is positive


def test_quat_dtype_shape_and_errors() -> None:
    aa = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    q = aa_to_quat(aa)
    assert q.shape == (2, 5, 4) and q.dtype == torch.float32
    back = quat_to_aa(q)
    assert back.shape == (2, 5, 3) and back.dtype == torch.float32
    torch.testing.assert_close(back, aa, atol=1e-5, rtol=0)
    R = aa_to_matrot(aa)
    assert matrot_to_rot6d(R).shape == (2, 5, 6) and matrot_to_rot6d(R).dtype == torch.float32
    assert rot6d_to_matrot(matrot_to_rot6d(R)).dtype == torch.float32
    assert aa_to_quat(torch.zeros(0, 3)).shape == (0, 4)
    assert quat_to_aa(torch.zeros(0, 4)).shape == (0, 3)
    assert matrot_to_rot6d(torch.zeros(0, 3, 3)).shape == (0, 6)
    assert rot6d_to_matrot(torch.zeros(0, 6)).shape == (0, 3, 3)
    for fn, bad in (
        (aa_to_quat, (4,)),
        (quat_to_aa, (3,)),
        (matrot_to_rot6d, (3, 2)),
        (rot6d_to_matrot, (9,)),
    ):
        with pytest.raises(ValueError, match=fn.__name__):
            fn(torch.zeros(bad))


def _textbook_aa_to_matrot(aa: torch.Tensor) -> torch.Tensor:
    """The closed form as first written (strided components, one stack, one cast): the
    bits every prepared folder so far holds, which the faster form must reproduce."""
    x, y, z = aa.to(torch.float64).unbind(-1)
    t2 = x * x + y * y + z * z
    t = torch.sqrt(t2)
    small = t < 1e-4
    safe_t = torch.where(small, torch.ones_like(t), t)
    c = torch.cos(t)
    A = torch.where(small, 1 - t2 / 6, torch.sin(safe_t) / safe_t)
    B = torch.where(small, 0.5 - t2 / 24, (1 - c) / (safe_t * safe_t))
    # fmt: off
    R = torch.stack([c + B * x * x, B * x * y - A * z, B * x * z + A * y,
                     B * x * y + A * z, c + B * y * y, B * y * z - A * x,
                     B * x * z - A * y, B * y * z + A * x, c + B * z * z], dim=-1)
    # fmt: on
    return R.reshape(*aa.shape[:-1], 3, 3).to(aa.dtype)


@settings(max_examples=60, deadline=None)
@given(
    aa=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=3, max_side=40).map(lambda s: (*s, 3)),
        elements=st.one_of(
            st.floats(-7, 7), st.floats(-1e-3, 1e-3), st.sampled_from([0.0, math.pi, -1e-5])
        ),
    ),
    single=st.booleans(),
)
def test_aa_to_matrot_gives_the_bits_of_the_textbook_form(aa: np.ndarray, single: bool) -> None:
    tensor = torch.from_numpy(aa).to(torch.float32 if single else torch.float64)
    fast = aa_to_matrot(tensor)
    assert fast.dtype == tensor.dtype and fast.is_contiguous()
    assert torch.equal(fast, _textbook_aa_to_matrot(tensor))


def test_aa_to_matrot_bits_at_batch_size() -> None:
    aa = torch.randn(8192, 21, 3, generator=torch.Generator().manual_seed(3)) * 2
    aa[:50] *= 1e-5  # the small-angle branch
    assert torch.equal(aa_to_matrot(aa), _textbook_aa_to_matrot(aa))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.int64])
def test_aa_to_matrot_keeps_a_floating_dtype_and_gives_float_for_integers(
    dtype: torch.dtype,
) -> None:
    aa = torch.tensor([[0, 0, 1], [1, 0, 0]], dtype=dtype)
    R = aa_to_matrot(aa)
    assert R.dtype == (dtype if dtype.is_floating_point else torch.get_default_dtype())
    assert torch.equal(R, _textbook_aa_to_matrot(aa.to(R.dtype)))


def test_aa_to_matrot_refuses_a_graph_node() -> None:
    with pytest.raises(ValueError, match="without grad"):
        aa_to_matrot(torch.zeros(2, 3, requires_grad=True))
