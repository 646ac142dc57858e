"""Properties of the rotation conversions in vposer_data.rotations."""

from __future__ import annotations

import math

import numpy as np
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vposer_data.rotations import aa_to_matrot, matrot_to_aa, rotz, yaw_sxyz

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
