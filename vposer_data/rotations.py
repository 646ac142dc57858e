"""The few rotation conversions the augmentations need; the inverse ones from :mod:`roma`.

Conventions: axis-angle (rotation vector) ``(..., 3)``; rotation matrices ``(..., 3, 3)``
acting on column vectors; the AMASS world is z-up; 6D rotations ``(..., 6)`` are the first two
columns of the matrix, ``[R00, R10, R20, R01, R11, R21]`` (Zhou et al., "On the Continuity of
Rotation Representations in Neural Networks", CVPR 2019); unit quaternions ``(..., 4)`` are
``(w, x, y, z)``, scalar first, with ``w >= 0`` (roma uses ``(x, y, z, w)``). Each function
computes in float64 and returns the input's dtype.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "aa_to_matrot",
    "aa_to_quat",
    "load_rotation_logs",
    "matrot_to_aa",
    "matrot_to_rot6d",
    "quat_to_aa",
    "rot6d_to_matrot",
    "rotz",
    "yaw_sxyz",
]


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


_SMALL_ANGLE = 1e-4
#: The float dtypes numpy has (not bfloat16).
_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)
_MATROT_BLOCK = 16384  # rotations per block: float64 temporaries of 128 KB


def aa_to_matrot(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (Rodrigues).

    The closed form ``R = cos(t) I + sin(t)/t [a]x + (1 - cos(t))/t^2 a a^T`` (Taylor terms near
    ``t = 0``), written out here because it is the one conversion the default pipeline needs:
    importing roma costs about a second per run (it loads ``torch._dynamo``).

    Data, not a graph node: a tensor that requires grad is refused. The square root, sine and
    cosine are torch's; the rest is numpy on contiguous float64 components, each product formed
    once and each entry rounded once to the output dtype: the same IEEE operations in the same
    order as the formula, so the same bits; in blocks whose temporaries stay in cache, this
    takes about half the time of torch on the whole batch.
    """
    if aa.shape[-1:] != (3,):
        raise ValueError(f"aa_to_matrot expects (..., 3), got shape {tuple(aa.shape)}")
    if aa.requires_grad:
        raise ValueError("aa_to_matrot computes with numpy: pass a tensor without grad")
    dtype = _out_dtype(aa)
    numpy_kind = dtype in _NUMPY_FLOATS
    flat = aa.cpu().reshape(-1, 3)
    R = torch.empty((flat.shape[0], 9), dtype=dtype if numpy_kind else torch.float64)
    out = R.numpy()
    source = flat.numpy() if flat.dtype in _NUMPY_FLOATS else None
    components = np.empty((3, min(_MATROT_BLOCK, flat.shape[0])))  # x, y, z rows, reused
    for start in range(0, flat.shape[0], _MATROT_BLOCK):  # temporaries that stay in cache
        stop = min(start + _MATROT_BLOCK, flat.shape[0])
        block = components[:, : stop - start]
        if source is not None:  # exact: every float16/32 value is a float64
            np.copyto(block, source[start:stop].T)
        else:
            np.copyto(block, flat[start:stop].to(torch.float64).numpy().T)
        _rodrigues(block, out[start:stop])
    return R.reshape(*aa.shape[:-1], 3, 3).to(device=aa.device, dtype=dtype)


def _rodrigues(components: np.ndarray, out: np.ndarray) -> None:
    """Rows ``x, y, z`` of ``(3, n)`` float64 axis-angle into ``out`` ``(n, 9)``, row-major
    matrices. Where no angle is small (the usual batch), the Taylor terms are not computed."""
    x, y, z = components
    t2 = x * x
    t2 += y * y
    t2 += z * z
    t = torch.sqrt(torch.from_numpy(t2)).numpy()
    c = torch.cos(torch.from_numpy(t)).numpy()
    small = t < _SMALL_ANGLE
    if small.any():
        safe_t = np.where(small, 1.0, t)
        sin = torch.sin(torch.from_numpy(safe_t)).numpy()
        A = np.where(small, 1 - t2 / 6, sin / safe_t)
        B = np.where(small, 0.5 - t2 / 24, (1 - c) / (safe_t * safe_t))
    else:  # the same operations on the same values (safe_t would equal t)
        A = torch.sin(torch.from_numpy(t)).numpy()
        A /= t
        B = 1 - c
        B /= np.multiply(t, t, out=t)
    Bx, By, Bz, Ax, Ay, Az = B * x, B * y, B * z, A * x, A * y, A * z
    Bxy, Bxz, Byz = Bx * y, Bx * z, By * z
    Bx *= x
    By *= y
    Bz *= z
    # row by row; each entry computed in float64 and rounded once to the output's dtype
    for k, (left, operation, right) in enumerate(
        (
            (c, np.add, Bx),
            (Bxy, np.subtract, Az),
            (Bxz, np.add, Ay),
            (Bxy, np.add, Az),
            (c, np.add, By),
            (Byz, np.subtract, Ax),
            (Bxz, np.subtract, Ay),
            (Byz, np.add, Ax),
            (c, np.add, Bz),
        )
    ):
        operation(left, right, out=out[:, k], casting="same_kind")


def load_rotation_logs() -> None:
    """Import what :func:`matrot_to_aa` needs now (roma, about a second), so that worker
    processes forked afterwards inherit it instead of each importing it on its first batch."""
    import roma  # noqa: F401


def matrot_to_aa(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)``, angle in ``[0, pi]``."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"matrot_to_aa expects (..., 3, 3), got shape {tuple(R.shape)}")
    import roma  # imported here: see aa_to_matrot

    return roma.rotmat_to_rotvec(R.to(torch.float64)).to(_out_dtype(R))


def rotz(angle: torch.Tensor) -> torch.Tensor:
    """Rotation by ``angle`` (radians, ``(...)``) about the vertical z axis: ``(..., 3, 3)``."""
    a = angle.to(torch.float64)
    c, s = torch.cos(a), torch.sin(a)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    # fmt: off
    R = torch.stack([c, -s, zero,
                     s, c, zero,
                     zero, zero, one], dim=-1)
    # fmt: on
    return R.reshape(*a.shape, 3, 3).to(_out_dtype(angle))


def yaw_sxyz(R: torch.Tensor) -> torch.Tensor:
    """Angle ``g`` about z of the static-xyz Euler decomposition ``R = Rz(g) Ry(b) Rx(a)``.

    ``g = atan2(R[..., 1, 0], R[..., 0, 0])``, in ``(-pi, pi]``; shape ``(...)``.
    """
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"yaw_sxyz expects (..., 3, 3), got shape {tuple(R.shape)}")
    R64 = R.to(torch.float64)
    return torch.atan2(R64[..., 1, 0], R64[..., 0, 0]).to(_out_dtype(R))


def matrot_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to 6D rotations ``(..., 6)``.

    The first two columns of each matrix, column after column: ``[R00, R10, R20, R01, R11, R21]``
    (Zhou et al. 2019). :func:`rot6d_to_matrot` is the inverse for rotation matrices.
    """
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"matrot_to_rot6d expects (..., 3, 3), got shape {tuple(R.shape)}")
    R64 = R.to(torch.float64)
    return R64[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6).to(_out_dtype(R))


def rot6d_to_matrot(x: torch.Tensor) -> torch.Tensor:
    """6D rotations ``(..., 6)`` to rotation matrices ``(..., 3, 3)`` by Gram-Schmidt.

    ``a = x[..., 0:3]`` and ``b = x[..., 3:6]`` are the first and second columns as laid out by
    :func:`matrot_to_rot6d`. Column 0 is ``a / |a|``; column 1 is ``b`` minus its component
    along column 0, normalised; column 2 is column 0 cross column 1. Any input whose two halves
    are nonzero and not parallel gives a rotation matrix (so network outputs need not be
    orthonormal); a zero or parallel pair gives NaN.
    """
    if x.shape[-1:] != (6,):
        raise ValueError(f"rot6d_to_matrot expects (..., 6), got shape {tuple(x.shape)}")
    x64 = x.to(torch.float64)
    a, b = x64[..., 0:3], x64[..., 3:6]
    c0 = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    b = b - (c0 * b).sum(dim=-1, keepdim=True) * c0
    c1 = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    c2 = torch.linalg.cross(c0, c1, dim=-1)
    return torch.stack([c0, c1, c2], dim=-1).to(_out_dtype(x))


#: |w| at or below this is a half-turn (angle pi): float64 cos(pi / 2) is 6.1e-17, not 0.
_HALF_TURN_W = 1e-15


def aa_to_quat(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to unit quaternions ``(..., 4)`` as ``(w, x, y, z)``, ``w >= 0``.

    ``w = cos(t/2)``, ``(x, y, z) = sin(t/2) a / t`` for angle ``t = |a|``, then put on the
    ``w >= 0`` hemisphere: an angle beyond pi gives ``w < 0`` and the quaternion is negated
    (``q`` and ``-q`` are the same rotation). A half-turn (angle pi up to float64 rounding, i.e.
    ``|w| <= 1e-15``) has two such quaternions; it gets ``w = 0`` exactly and the sign that makes
    the first nonzero of ``x, y, z`` positive, so ``a`` and ``-a`` of angle pi (the same
    rotation) give the same quaternion. (A float32 ``pi`` is 3.14159274, past pi by 9e-8: that
    is not a half-turn but a rotation the other way about ``-a``, and is treated as such.)
    """
    if aa.shape[-1:] != (3,):
        raise ValueError(f"aa_to_quat expects (..., 3), got shape {tuple(aa.shape)}")
    a = aa.to(torch.float64)
    t2 = (a * a).sum(dim=-1, keepdim=True)
    t = torch.sqrt(t2)
    small = t < _SMALL_ANGLE
    safe_t = torch.where(small, torch.ones_like(t), t)
    w = torch.cos(t / 2)
    s = torch.where(small, 0.5 - t2 / 48, torch.sin(safe_t / 2) / safe_t)  # sin(t/2) / t
    xyz = a * s
    half_turn = w.abs() <= _HALF_TURN_W
    w = torch.where(half_turn, torch.zeros_like(w), w)
    # Sign of the first nonzero of x, y, z (1 if all are zero).
    nonzero = xyz != 0
    first = torch.argmax(nonzero.to(torch.int8), dim=-1, keepdim=True)
    lead = torch.gather(xyz, -1, first)
    negate = torch.where(half_turn, lead < 0, w < 0)
    sign = 1 - 2 * negate.to(torch.float64)
    q = torch.cat([w, xyz], dim=-1) * sign + 0.0  # + 0.0: no negative zeros
    return q.to(_out_dtype(aa))


def quat_to_aa(q: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(..., 4)``, ``(w, x, y, z)``, to axis-angle ``(..., 3)``, angle in ``[0, pi]``.

    ``q`` is normalised first, and ``q`` and ``-q`` give the same result (the rotation they both
    are). At ``w = 0`` (a half-turn) the axis keeps the direction of ``(x, y, z)``. A zero
    quaternion gives NaN.
    """
    if q.shape[-1:] != (4,):
        raise ValueError(f"quat_to_aa expects (..., 4), got shape {tuple(q.shape)}")
    q64 = q.to(torch.float64)
    q64 = q64 / torch.linalg.vector_norm(q64, dim=-1, keepdim=True)
    q64 = q64 * (1 - 2 * (q64[..., :1] < 0).to(torch.float64))
    w, xyz = q64[..., :1], q64[..., 1:]
    s = torch.linalg.vector_norm(xyz, dim=-1, keepdim=True)  # sin(t/2)
    small = s < _SMALL_ANGLE
    safe_s = torch.where(small, torch.ones_like(s), s)
    safe_w = torch.where(small, w, torch.ones_like(w))  # w ~ 1 where small
    # t / sin(t/2) with t = 2 atan2(s, w); near 0, 2 atan(s/w)/s = 2/w (1 - s^2 / (3 w^2)).
    ratio = torch.where(
        small,
        2 / safe_w * (1 - s * s / (3 * safe_w * safe_w)),
        2 * torch.atan2(safe_s, w) / safe_s,
    )
    return (xyz * ratio).to(_out_dtype(q))
