"""Temporal clips: which source frames make each clip, how a clip is put in a canonical pose,
and the per-clip rigid helpers (rotation about the vertical, velocities) augmentations need.

Pure, exact kernels; no I/O. Index arithmetic is numpy (int64). Rotations follow
:mod:`vposer_data.rotations`: axis-angle ``(..., 3)``, matrices acting on column vectors, the
AMASS world z-up; computed in float64, returned in the input's dtype.

**The clock.** After trimming (:func:`vposer_data.sampling.trim_bounds`) a motion has frames
``[start, stop)`` at ``fps`` Hz. It has ``floor((stop - 1 - start) / fps * target_fps + 1e-9) + 1``
ticks (:func:`vposer_data.sampling.tick_count`, the clock :func:`~vposer_data.sampling.clock_frames`
also uses); tick ``j`` is the source frame
nearest to ``j / target_fps`` seconds after ``start``, by the file's own float rate (never
``int(fps / target_fps)`` steps). Clip ``k`` is ticks ``k*stride ... k*stride + T - 1``; a tail
that does not fill a clip is dropped, and a motion with fewer than ``T`` ticks has no clip.

**Canonical clips.** A clip is moved rigidly, about the world vertical and horizontally, so that
its first frame faces +y with ``trans`` x = y = 0 (see :func:`canonicalize`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vposer_data.fields import ROOT_ORIENT, TRANS
from vposer_data.rotations import aa_to_matrot, aa_to_quat, matrot_to_aa, quat_to_aa, rotz
from vposer_data.sampling import tick_count, tick_frames

__all__ = [
    "VERTICAL_THRESHOLD",
    "canonical_yaw",
    "canonicalize",
    "clip_count",
    "clip_frames",
    "root_angular_velocity",
    "rotate_clips_about_z",
    "tick_count",
    "tick_frames",
    "trans_velocity",
    "uncanonicalize",
]

# --------------------------------------------------------------------------- the clock


def _check_window(T: int, stride: int) -> None:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"clip length T must be an integer >= 1, got {T!r}")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"clip stride must be an integer >= 1, got {stride!r}")


def clip_count(ticks: int, T: int, stride: int) -> int:
    """Number of clips of ``T`` ticks, starting every ``stride`` ticks, that fit in ``ticks``:
    ``(ticks - T) // stride + 1`` when ``ticks >= T``, else 0 (a motion too short for one clip,
    which the caller reports). Tail ticks that do not fill a clip are dropped."""
    _check_window(T, stride)
    if ticks < 0:
        raise ValueError(f"ticks must be >= 0, got {ticks!r}")
    return 0 if ticks < T else (int(ticks) - int(T)) // int(stride) + 1


def clip_frames(
    num_frames: int, trim: float, fps: float, target_fps: float, T: int, stride: int
) -> np.ndarray:
    """The source frame of every clip frame, ``(n_clips, T)`` int64: row ``k`` is ticks
    ``k*stride ... k*stride + T - 1`` of :func:`tick_frames` (``n_clips`` = :func:`clip_count`;
    ``(0, T)`` for a motion too short for one clip). This is also the clips' ``frame_id``."""
    _check_window(T, stride)
    ticks = tick_frames(num_frames, trim, fps, target_fps)
    n = clip_count(ticks.size, T, stride)
    index = np.arange(n, dtype=np.int64)[:, None] * int(stride) + np.arange(int(T))[None, :]
    return ticks[index].reshape(n, int(T))


# --------------------------------------------------------------------------- canonical clips

#: Below this norm of the forward axis' horizontal projection (the forward axis within about
#: 5.7 degrees of the vertical: a body lying flat), the heading comes from the lateral axis.
VERTICAL_THRESHOLD = 0.1


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


def _check_clips(
    root_orient: torch.Tensor, trans: torch.Tensor, **per_clip: tuple[torch.Tensor, int]
) -> None:
    """``root_orient`` and ``trans`` ``(N, T, 3)`` alike; each ``per_clip`` tensor ``(N, ...)``
    with the given number of trailing numbers per clip (0: ``(N,)``)."""
    for name, x in ((ROOT_ORIENT, root_orient), (TRANS, trans)):
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"{name} must be (N, T, 3), got shape {tuple(x.shape)}")
    if root_orient.shape != trans.shape:
        raise ValueError(
            f"root_orient {tuple(root_orient.shape)} and trans {tuple(trans.shape)} differ"
        )
    n = root_orient.shape[0]
    for name, (x, width) in per_clip.items():
        want = (n,) if width == 0 else (n, width)
        if tuple(x.shape) != want:
            raise ValueError(f"{name} must be {want} for {n} clips, got {tuple(x.shape)}")


def _turn_aa(root: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Axis-angle of ``Rz(yaw) @ R(root)`` for ``root`` ``(N, T, 3)`` and ``yaw`` ``(N,)``,
    float64, angle in ``[0, pi]``: composed as unit quaternions (exact to rounding, and
    without roma, whose import costs about a second per run)."""
    q = aa_to_quat(root.to(torch.float64))  # (N, T, 4), (w, x, y, z)
    half = yaw.to(torch.float64)[:, None] / 2
    c, s = torch.cos(half), torch.sin(half)  # qz = (c, 0, 0, s)
    w, x, y, z = q.unbind(-1)
    turned = torch.stack([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w], dim=-1)
    return quat_to_aa(turned)


def _apply_rotz(Rz: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``Rz @ v`` for ``Rz`` ``(..., 3, 3)`` and vectors ``v`` ``(..., T, 3)``, float64."""
    return torch.einsum("...ij,...tj->...ti", Rz, v)


def _heading_yaw(R: torch.Tensor) -> torch.Tensor:
    """See :func:`canonical_yaw`; ``R`` float64 ``(..., 3, 3)``, result float64 ``(...)``."""
    forward = R[..., :2, 2]  # model +z, projected on the ground plane
    left = R[..., :2, 0]  # model +x (the body's left)
    lateral = torch.stack([left[..., 1], -left[..., 0]], dim=-1)  # (left x e_z)_xy
    upright = torch.linalg.vector_norm(forward, dim=-1) >= VERTICAL_THRESHOLD
    heading = torch.where(upright[..., None], forward, lateral)
    # The angle that turns `heading` onto +y: pi/2 - atan2(hy, hx), in (-pi, pi].
    return torch.atan2(heading[..., 0], heading[..., 1])


def canonical_yaw(root_orient: torch.Tensor) -> torch.Tensor:
    """The angle ``yaw`` ``(...)`` about the world vertical that makes a body with root
    orientation ``root_orient`` ``(..., 3)`` face +y: ``Rz(yaw) @ R`` has its heading along +y.

    The heading is the forward axis (third column of ``R``, the model's +z) projected on the
    ground plane. When that projection is shorter than :data:`VERTICAL_THRESHOLD` (the body lies
    flat, face up or face down), the heading is ``left x e_z`` instead, with ``left`` the first
    column of ``R`` (the model's +x, the body's left; nearly horizontal there, so the projection
    has norm > 0.99): the direction an upright body with that left side would face. Pitching a
    body from upright onto its back or front keeps ``left`` fixed, so the fallback continues the
    forward rule through lying flat, and it is stable where the forward axis' projection is
    noise. No heading rule can be continuous over all rotations (a map from rotations to a
    heading cannot turn once per turn about the vertical); this one jumps only at the threshold,
    for a near-flat body spun about its forward axis or pitched past flat (arched backwards).
    In the fallback, the canonical body's left axis points along -x on the ground plane, as
    for an upright body facing +y.
    """
    if root_orient.shape[-1:] != (3,):
        raise ValueError(f"root_orient must be (..., 3), got shape {tuple(root_orient.shape)}")
    R = aa_to_matrot(root_orient.to(torch.float64))
    return _heading_yaw(R).to(_out_dtype(root_orient))


def canonicalize(
    root_orient: torch.Tensor, trans: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move each clip rigidly so that its first frame faces +y with ``trans`` x = y = 0.

    ``root_orient`` and ``trans`` are ``(N, T, 3)``. With ``yaw = canonical_yaw(root_orient[:, 0])``
    (see there, including the lying-flat fallback) and ``offset = (x0, y0, 0)`` the first frame's
    horizontal translation, every frame becomes::

        root' = Rz(yaw) @ root        trans' = Rz(yaw) @ (trans - offset)

    (``trans`` z is kept). For any body shape this is one rigid motion of the whole body (a
    rotation about a vertical axis and a horizontal shift: the pelvis offset only moves the axis),
    so it needs no body model; ``pose_body`` / ``pose_hand`` are unchanged. Returns
    ``(root', trans', yaw (N,), offset (N, 3))`` in the inputs' dtypes (``yaw`` in root's);
    :func:`uncanonicalize` inverts it. ``root'`` is the axis-angle with angle in ``[0, pi]``.
    """
    _check_clips(root_orient, trans)
    R = aa_to_matrot(root_orient.to(torch.float64))
    t = trans.to(torch.float64)
    yaw = _heading_yaw(R[..., 0, :, :])
    offset = torch.zeros_like(t[..., 0, :])
    offset[..., :2] = t[..., 0, :2]
    Rz = rotz(yaw)
    root_c = _turn_aa(root_orient, yaw)
    trans_c = _apply_rotz(Rz, t - offset[..., None, :])
    tdt = _out_dtype(trans)
    return (
        root_c.to(_out_dtype(root_orient)),
        trans_c.to(tdt),
        yaw.to(_out_dtype(root_orient)),
        offset.to(tdt),
    )


def uncanonicalize(
    root_orient: torch.Tensor, trans: torch.Tensor, yaw: torch.Tensor, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo :func:`canonicalize`: ``root = Rz(-yaw) @ root'``,
    ``trans = Rz(-yaw) @ trans' + offset``.

    ``root_orient``, ``trans`` ``(N, T, 3)``, ``yaw`` ``(N,)``, ``offset`` ``(N, 3)``. Restores the
    source rotations and translations to rounding (float32 tolerance from float32 inputs); the
    axis-angle comes back with angle in ``[0, pi]`` (equal to the source vector whenever the
    source angle is below pi, as AMASS' are).
    """
    _check_clips(root_orient, trans, yaw=(yaw, 0), offset=(offset, 3))
    Rz_inv = rotz(-yaw.to(torch.float64))
    root = _turn_aa(root_orient, -yaw)
    t = _apply_rotz(Rz_inv, trans.to(torch.float64)) + offset.to(torch.float64)[..., None, :]
    return root.to(_out_dtype(root_orient)), t.to(_out_dtype(trans))


# --------------------------------------------------------------------------- rigid helpers


def rotate_clips_about_z(
    root_orient: torch.Tensor, trans: torch.Tensor, angle: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each whole clip by ``angle`` ``(N,)`` (radians) about the world vertical through
    its first frame's position, every frame by the same angle (a rigid motion of the clip):
    ``root' = Rz(a) @ root``, ``trans' = Rz(a) @ (trans - p0) + p0`` with ``p0 = (x0, y0, 0)``,
    so the first frame keeps its ``trans``. ``root_orient``, ``trans`` ``(N, T, 3)``; returns
    ``(root', trans')`` in the inputs' dtype."""
    _check_clips(root_orient, trans, angle=(angle, 0))
    t = trans.to(torch.float64)
    Rz = rotz(angle.to(torch.float64))
    pivot = torch.zeros_like(t[..., 0, :])
    pivot[..., :2] = t[..., 0, :2]
    pivot = pivot[..., None, :]
    root_r = _turn_aa(root_orient, angle)
    trans_r = _apply_rotz(Rz, t - pivot) + pivot
    return root_r.to(_out_dtype(root_orient)), trans_r.to(_out_dtype(trans))


def _check_fps(fps: float) -> float:
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return float(fps)


def _check_velocity_input(name: str, x: torch.Tensor) -> None:
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be (N, T, 3), got shape {tuple(x.shape)}")
    if x.shape[-2] < 2:
        raise ValueError(f"{name}: a velocity needs clips of at least 2 frames, got T = 1")


def trans_velocity(trans: torch.Tensor, fps: float) -> torch.Tensor:
    """Linear velocity of ``trans`` ``(N, T, 3)`` in m/s, ``(N, T, 3)``, for clips sampled at
    ``fps`` (the clip's target rate): central differences ``(x[t+1] - x[t-1]) * fps / 2`` inside,
    one-sided ``(x[1] - x[0]) * fps`` and ``(x[T-1] - x[T-2]) * fps`` at the ends (T >= 2).
    Exact for constant velocity."""
    _check_velocity_input(TRANS, trans)
    rate = _check_fps(fps)
    x = trans.to(torch.float64)
    v = torch.empty_like(x)
    v[..., 1:-1, :] = (x[..., 2:, :] - x[..., :-2, :]) * (rate / 2)
    v[..., 0, :] = (x[..., 1, :] - x[..., 0, :]) * rate
    v[..., -1, :] = (x[..., -1, :] - x[..., -2, :]) * rate
    return v.to(_out_dtype(trans))


def root_angular_velocity(root_orient: torch.Tensor, fps: float) -> torch.Tensor:
    """Angular velocity of the root in the world frame, rad/s, ``(N, T, 3)``, from
    ``root_orient`` ``(N, T, 3)`` sampled at ``fps`` (the clip's target rate), ``dt = 1 / fps``::

        omega_t     = log(R[t+1] R[t-1]^T) / (2 dt)     for 0 < t < T-1
        omega_0     = log(R[1] R[0]^T) / dt
        omega_{T-1} = log(R[T-1] R[T-2]^T) / dt

    with ``log`` the rotation vector (axis-angle) of a rotation. World frame:
    ``R(t + h) = exp(h [omega]x) R(t)``. Exact for a constant spin ``R(t) = exp(t [omega]x) R0``
    as long as the rotation over two ticks, ``2 |omega| dt``, stays below pi (otherwise the
    logarithm wraps). T >= 2.
    """
    _check_velocity_input(ROOT_ORIENT, root_orient)
    rate = _check_fps(fps)
    R = aa_to_matrot(root_orient.to(torch.float64))
    Rt = R.transpose(-1, -2)
    w = torch.empty(R.shape[:-1], dtype=torch.float64, device=R.device)
    w[..., 1:-1, :] = matrot_to_aa(R[..., 2:, :, :] @ Rt[..., :-2, :, :]) * (rate / 2)
    w[..., 0, :] = matrot_to_aa(R[..., 1, :, :] @ Rt[..., 0, :, :]) * rate
    w[..., -1, :] = matrot_to_aa(R[..., -1, :, :] @ Rt[..., -2, :, :]) * rate
    return w.to(_out_dtype(root_orient))
