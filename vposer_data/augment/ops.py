"""The augmentation functions: named, pure functions on a batch of Stage I samples.

A batch is a ``dict`` of tensors: per-frame fields ``(n, width)`` for frames or
``(n, T, width)`` for clips of ``T`` frames, per-motion fields ``(n, width)``; poses are
axis-angle (widths from :mod:`vposer_data.fields`). Random draws are per sample: once per clip
(a rotation, a mirror flip), except noise, which is drawn per frame. Every function is
``fn(batch, generator, **params) -> Batch`` and never mutates its input: it returns a new dict
in which the fields it does not touch are the same tensors as before and the pose fields it
writes are float32. Randomness comes only from the given CPU :class:`torch.Generator`, so a
seed fixes the output. Which function a name means, its parameters and the fields it reads
and adds are declared once, in :mod:`vposer_data.augment.registry`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from vposer_data.augment.joints import SplitModels, contacts, joints
from vposer_data.augment.registry import AugmentSpec, parse_augmentations
from vposer_data.clips import root_angular_velocity, rotate_clips_about_z, trans_velocity
from vposer_data.fields import (
    CONTACTS,
    NUM_BODY_JOINTS,
    POSE_BODY,
    POSE_BODY_MATROT,
    POSE_EYE,
    POSE_HAND,
    POSE_JAW,
    ROOT_ANGVEL,
    ROOT_ORIENT,
    TRANS,
    TRANS_VEL,
    pose_fields,
)
from vposer_data.rotations import (
    aa_to_matrot,
    aa_to_quat,
    matrot_to_aa,
    matrot_to_rot6d,
    rotz,
    yaw_sxyz,
)

__all__ = [
    "POSE_FIELDS",
    "Batch",
    "apply_augmentations",
    "contacts",
    "joints",
    "matrot",
    "mirror",
    "noise",
    "quat",
    "random_zrot",
    "remove_zrot",
    "rot6d",
    "velocities",
]

Batch = dict[str, torch.Tensor]

#: Axis-angle pose fields and their widths (3 values per joint), from the field vocabulary.
POSE_FIELDS: dict[str, int] = pose_fields()


# --------------------------------------------------------------------------- helpers


def _batch_size(batch: Mapping[str, torch.Tensor]) -> int:
    sizes = {name: int(t.shape[0]) for name, t in batch.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch fields disagree on the number of samples: {sizes}")
    return next(iter(sizes.values()), 0)


def _require(batch: Mapping[str, torch.Tensor], field: str, augmentation: str) -> torch.Tensor:
    if field not in batch:
        raise ValueError(
            f"augmentation {augmentation!r} needs field {field!r}; batch has {sorted(batch)}"
        )
    x = batch[field]
    width = POSE_FIELDS.get(field)
    if width is not None and (x.ndim not in (2, 3) or x.shape[-1] != width):
        raise ValueError(
            f"augmentation {augmentation!r}: field {field!r} should be (n, {width}) or "
            f"(n, T, {width}), got {tuple(x.shape)}"
        )
    return x


def _per_joint(x: torch.Tensor) -> torch.Tensor:
    """``(..., 3 J)`` axis-angle as ``(..., J, 3)`` in float64."""
    return x.to(torch.float64).reshape(*x.shape[:-1], x.shape[-1] // 3, 3)


def _rotate_root(root_orient: torch.Tensor, Rz: torch.Tensor) -> torch.Tensor:
    """Axis-angle of ``Rz @ R(root_orient)``, computed in float64, returned float32."""
    R = aa_to_matrot(root_orient.to(torch.float64))
    return matrot_to_aa(Rz.to(R.device) @ R).to(torch.float32)


# --------------------------------------------------------------------------- augmentations


def matrot(batch: Batch, generator: torch.Generator | None = None) -> Batch:
    """Add ``pose_body_matrot`` ``(..., 189)``: joint ``j``'s 3x3 matrix (row-major) at
    columns ``9*j : 9*j+9``, from ``pose_body``, every frame. Computed in float64, stored
    float32."""
    pose_body = _require(batch, POSE_BODY, "matrot")
    R = aa_to_matrot(_per_joint(pose_body))
    out = dict(batch)
    out[POSE_BODY_MATROT] = R.reshape(*pose_body.shape[:-1], NUM_BODY_JOINTS * 9).to(torch.float32)
    return out


def rot6d(
    batch: Batch, generator: torch.Generator | None = None, fields: Sequence[str] = (POSE_BODY,)
) -> Batch:
    """Add ``<field>_rot6d`` ``(..., 6 J)`` for each of ``fields``: per joint, the first two
    columns of its rotation matrix, ``[R00, R10, R20, R01, R11, R21]`` (Zhou et al. 2019)."""
    out = dict(batch)
    for field in fields:
        x = _require(batch, field, "rot6d")
        six = matrot_to_rot6d(aa_to_matrot(_per_joint(x)))
        out[f"{field}_rot6d"] = six.reshape(*x.shape[:-1], x.shape[-1] * 2).to(torch.float32)
    return out


def quat(
    batch: Batch, generator: torch.Generator | None = None, fields: Sequence[str] = (POSE_BODY,)
) -> Batch:
    """Add ``<field>_quat`` ``(..., 4 J)`` for each of ``fields``: per joint the unit quaternion
    ``(w, x, y, z)`` with ``w >= 0``."""
    out = dict(batch)
    for field in fields:
        x = _require(batch, field, "quat")
        q = aa_to_quat(_per_joint(x))
        out[f"{field}_quat"] = q.reshape(*x.shape[:-1], x.shape[-1] // 3 * 4).to(torch.float32)
    return out


def velocities(batch: Batch, generator: torch.Generator | None = None, *, fps: float) -> Batch:
    """Clips only: add ``trans_vel`` ``(n, T, 3)`` in m/s and ``root_angvel`` ``(n, T, 3)`` in
    rad/s (world frame) at the clips' rate ``fps``; see
    :func:`vposer_data.clips.trans_velocity` and :func:`vposer_data.clips.root_angular_velocity`
    for the formulas."""
    root = _require(batch, ROOT_ORIENT, "velocities")
    trans = _require(batch, TRANS, "velocities")
    if root.ndim != 3:
        raise ValueError("augmentation 'velocities' needs clips (n, T, 3), got frames")
    out = dict(batch)
    out[TRANS_VEL] = trans_velocity(trans, fps).to(torch.float32)
    out[ROOT_ANGVEL] = root_angular_velocity(root, fps).to(torch.float32)
    return out


def noise(
    batch: Batch,
    generator: torch.Generator,
    fields: Sequence[str] = (POSE_BODY,),
    sigma: float = 0.01,
) -> Batch:
    """Add Gaussian noise ``sigma * N(0, 1)`` to each of ``fields`` present in the batch."""
    out = dict(batch)
    for field in fields:
        if field not in batch:
            continue
        x = batch[field].to(torch.float32)
        if sigma == 0:
            out[field] = x
            continue
        eps = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        out[field] = x + sigma * eps.to(x.device)
    return out


def remove_zrot(batch: Batch, generator: torch.Generator | None = None) -> Batch:
    """Remove the root's rotation about the vertical axis (the original VPoser remove_Zrot).

    With ``R = Rz(g) Ry(b) Rx(a)`` (static xyz Euler angles), ``root_orient`` becomes the
    axis-angle of ``Rz(-g) @ R = Ry(b) Rx(a)``. For frames ``trans`` and the other fields are
    unchanged. For clips the first frame's ``g`` is removed from the whole clip, as one rigid
    rotation about the vertical through the first frame's position (``trans`` too), so the
    motion keeps its shape.
    """
    root = _require(batch, ROOT_ORIENT, "remove_zrot")
    R = aa_to_matrot(root.to(torch.float64))
    out = dict(batch)
    if root.ndim == 3:
        angle = -yaw_sxyz(R[:, 0])
        out[ROOT_ORIENT], trans = rotate_clips_about_z(
            root, _require(batch, TRANS, "remove_zrot"), angle
        )
        out[ROOT_ORIENT] = out[ROOT_ORIENT].to(torch.float32)
        out[TRANS] = trans.to(torch.float32)
        return out
    out[ROOT_ORIENT] = matrot_to_aa(rotz(-yaw_sxyz(R)) @ R).to(torch.float32)
    return out


def random_zrot(batch: Batch, generator: torch.Generator) -> Batch:
    """Rotate each sample about the world's vertical (z) axis by ``theta ~ U[0, 2 pi)``:
    ``root_orient`` becomes ``aa(Rz(theta) @ R)`` and ``trans`` (if present) ``Rz(theta) @ trans``.
    A clip is rotated whole, by one angle, about the vertical through its first frame's
    position (:func:`vposer_data.clips.rotate_clips_about_z`).
    """
    root = _require(batch, ROOT_ORIENT, "random_zrot")
    n = root.shape[0]
    theta = torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)
    out = dict(batch)
    if root.ndim == 3:
        rotated, trans = rotate_clips_about_z(root, _require(batch, TRANS, "random_zrot"), theta)
        out[ROOT_ORIENT], out[TRANS] = rotated.to(torch.float32), trans.to(torch.float32)
        return out
    Rz = rotz(theta)
    out[ROOT_ORIENT] = _rotate_root(root, Rz)
    if TRANS in batch:
        trans = batch[TRANS]
        rotated = (Rz.to(trans.device) @ trans.to(torch.float64).unsqueeze(-1)).squeeze(-1)
        out[TRANS] = rotated.to(trans.dtype if trans.is_floating_point() else torch.float32)
    return out


# Left/right pairs among SMPL joints 1..21 (pose_body), as 0-based indices into pose_body:
# hip (1,2), knee (4,5), ankle (7,8), foot (10,11), collar (13,14), shoulder (16,17),
# elbow (18,19), wrist (20,21).
_BODY_LR_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))


def _joint_table(
    num_joints: int, pairs: Sequence[tuple[int, int]]
) -> tuple[list[int], list[float]]:
    """Column permutation and signs that swap the joint ``pairs`` and reflect every joint."""
    joint_perm = list(range(num_joints))
    for a, b in pairs:
        joint_perm[a], joint_perm[b] = joint_perm[b], joint_perm[a]
    columns = [3 * joint_perm[j] + k for j in range(num_joints) for k in range(3)]
    # Reflection M = diag(-1, 1, 1) across the sagittal plane maps R to M R M, i.e. the
    # axis-angle (x, y, z) to (x, -y, -z).
    return columns, [1.0, -1.0, -1.0] * num_joints


_MIRROR_TABLES: dict[str, tuple[list[int], list[float]]] = {
    ROOT_ORIENT: _joint_table(1, ()),
    POSE_BODY: _joint_table(21, [(a - 1, b - 1) for a, b in _BODY_LR_PAIRS]),
    POSE_HAND: _joint_table(30, [(j, j + 15) for j in range(15)]),  # left 15, right 15
    POSE_JAW: _joint_table(1, ()),
    POSE_EYE: _joint_table(2, [(0, 1)]),  # left eye, right eye
    TRANS: ([0, 1, 2], [-1.0, 1.0, 1.0]),  # x -> -x
}


#: The contact columns after mirroring: left and right feet swap.
_MIRRORED_CONTACTS = (2, 3, 0, 1)


def mirror(batch: Batch, generator: torch.Generator, p: float = 1.0) -> Batch:
    """Flip left and right (across the body's sagittal plane) with probability ``p`` per sample.

    Body joint pairs (hips, knees, ankles, feet, collars, shoulders, elbows, wrists), the two
    hands and the two eyes are swapped, and every axis-angle ``(x, y, z)`` becomes
    ``(x, -y, -z)`` (``root_orient`` and ``pose_jaw`` too); ``trans`` x becomes ``-x``.
    Foot ``contacts`` swap their left and right columns. Other fields pass through. Exact (a
    permutation and sign flips): mirroring twice with ``p = 1`` is the identity. A clip is
    flipped whole (one draw per clip).
    """
    n = _batch_size(batch)
    flip = torch.rand(n, generator=generator, dtype=torch.float64) < p
    out = dict(batch)
    for field, (columns, signs) in _MIRROR_TABLES.items():
        if field not in batch:
            continue
        x = _require(batch, field, "mirror")
        if field in POSE_FIELDS:
            x = x.to(torch.float32)
        elif x.ndim not in (2, 3) or x.shape[-1] != 3:
            raise ValueError(
                f"augmentation 'mirror': field {field!r} should be (n, 3) or (n, T, 3)"
            )
        index = torch.tensor(columns, device=x.device)
        sign = torch.tensor(signs, dtype=x.dtype, device=x.device)
        mirrored = x.index_select(x.ndim - 1, index) * sign
        chosen = flip.reshape(n, *([1] * (x.ndim - 1))).to(x.device)
        out[field] = torch.where(chosen, mirrored, x)
    if CONTACTS in batch:  # left_ankle, left_foot, right_ankle, right_foot
        x = batch[CONTACTS]
        mirrored = x.index_select(x.ndim - 1, torch.tensor(_MIRRORED_CONTACTS, device=x.device))
        chosen = flip.reshape(n, *([1] * (x.ndim - 1))).to(x.device)
        out[CONTACTS] = torch.where(chosen, mirrored, x)
    return out


def apply_augmentations(
    batch: Batch,
    specs: Sequence[AugmentSpec],
    generator: torch.Generator,
    fps: float | None = None,
    body: SplitModels | None = None,
) -> Batch:
    """Apply ``specs`` in order (validated again) and return a new batch; ``batch`` is not
    modified. ``fps``: the clips' rate, for the augmentations that work on clips only;
    ``body``: the split's body models, for those that need them."""
    out = dict(batch)
    for spec in parse_augmentations(list(specs)):
        augmentation = spec.augmentation
        function = globals()[augmentation.function]
        params = dict(spec.params)
        if augmentation.needs_clips:
            if fps is None:
                raise ValueError(f"augmentation {spec.name!r} needs clips and their rate (fps)")
            params["fps"] = fps
        if augmentation.needs_body_model:
            if body is None:
                raise ValueError(f"augmentation {spec.name!r} needs the body models")
            params["body"] = body
        out = function(out, generator, **params)
    return out
