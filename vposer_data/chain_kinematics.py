"""Positions of the four contact joints (ankles and feet) by forward kinematics along the two
legs only, from rest joints that are the same at every frame (one motion), for Stage I's
floor and contacts.

:func:`vposer_data.body_model.posed_joints` composes every ancestor's global rotation, 3x3 by
3x3, because every joint's position is wanted. For the feet, nesting is cheaper: the left
foot (10, under the ankle 7, knee 4, hip 1 and pelvis 0) sits at

    trans + b_0 + R_0 (b_1 + R_1 (b_4 + R_4 (b_7 + R_7 b_10)))

(``b`` the bones, rest joint minus its parent's; ``R`` the local rotations), so each rotation
is applied to the vectors that pass through it and none is composed with another. Both legs
are one chain of arrays (left and right stacked), level by level: a motion costs a few dozen
vectorised operations, whatever its length. The same positions as ``posed_joints``, in other
rounding (about 1e-16 m apart).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from vposer_data.body_model import (
    assemble_pose,
    posed_joints,
    rodrigues_components,
    transpose_into,
)
from vposer_data.skeleton import CONTACT_JOINTS
from vposer_data.work_buffers import work_buffer

__all__ = ["LEG_CHAINS", "contact_joint_positions"]

#: Each leg from the hip down: hip, knee, ankle, foot (left, right); their parent is joint 0.
LEG_CHAINS = ((1, 4, 7, 10), (2, 5, 8, 11))
#: The rotations used, in the order the levels take them: pelvis, hips, knees, ankles.
_ROTATED = (0, 1, 2, 4, 5, 7, 8)
#: The first column in ``pose_body`` (joint j at 3 (j - 1)) of each level's two joints (hips 1
#: and 2, knees 4 and 5, ankles 7 and 8: side by side, so each level is one slice).
_LEVEL_COLUMNS = tuple(3 * (j - 1) for j in _ROTATED[1::2])
#: Frames per block: few calls for a long motion (0.28 us a frame at 4096, 0.34 at 2048), and
#: a block's rotations (2 MB) stay near the core.
_BLOCK = 4096
#: The leg joints by level (hips, knees, ankles, feet) and leg, and the parent of each.
_LEVELS = np.array(LEG_CHAINS).T
_LEVEL_PARENTS = np.array([[0, 0], *_LEVELS[:-1].tolist()])


@functools.lru_cache(maxsize=16)
def _legs_are_standard(tree: tuple[int, ...]) -> bool:
    """Whether the model's tree has the SMPL legs (every SMPL-family model has)."""
    return all(
        tree[chain[0]] == 0 and all(tree[c] == p for p, c in itertools.pairwise(chain))
        for chain in LEG_CHAINS
    )


def contact_joint_positions(
    rest: np.ndarray,
    parents: np.ndarray | tuple[int, ...],
    root_orient: np.ndarray,
    pose_body: np.ndarray,
    trans: np.ndarray,
    *,
    block_frames: int = _BLOCK,
) -> np.ndarray:
    """Positions ``(N, 4, 3)`` float64 of :data:`CONTACT_JOINTS` (left ankle, left foot,
    right ankle, right foot), posed by ``root_orient`` ``(N, 3)`` and ``pose_body``
    ``(N, 63)`` (axis-angle, as stored), plus ``trans`` ``(N, 3)``, from rest joints ``rest``
    ``(J >= 12, 3)`` and the model's tree (``parents``; a tree without the SMPL legs is posed
    joint by joint)."""
    frames = root_orient.shape[0]
    if root_orient.shape != (frames, 3) or pose_body.shape != (frames, 63):
        raise ValueError(
            f"root_orient (N, 3) and pose_body (N, 63) expected, got {root_orient.shape} and "
            f"{pose_body.shape}"
        )
    if trans.shape != (frames, 3):
        raise ValueError(f"trans must have shape ({frames}, 3), got {trans.shape}")
    rest = np.asarray(rest, dtype=np.float64)
    if rest.ndim != 2 or rest.shape[0] < 12 or rest.shape[1] != 3:
        raise ValueError(f"rest joints must have shape (J >= 12, 3), got {rest.shape}")
    tree = tuple(np.asarray(parents)[:12].tolist())
    if not _legs_are_standard(tree):
        # the first 12 joints are the root and body joints in every family
        pose = assemble_pose("smpl", root_orient=root_orient, pose_body=pose_body, num_joints=12)
        return posed_joints(rest, tree, pose, trans, joints=CONTACT_JOINTS)[:, CONTACT_JOINTS]
    # bones (rest joint - parent's), per level (hips, knees, ankles, feet) for both legs:
    # (level, leg, 3) as (leg, 1, 3, 1) arrays, to broadcast against (leg, vector, 3, n)
    bones = rest[_LEVELS] - rest[_LEVEL_PARENTS]  # (level, leg, 3)
    level_bones = [bones[level][:, None, :, None] for level in range(4)]
    out = np.empty((frames, 4, 3))

    def buffer(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return work_buffer(f"feet.{name}", shape, np.float64)

    for start in range(0, frames, block_frames):
        stop = min(start + block_frames, frames)
        count = stop - start
        aa = buffer("aa", (len(_ROTATED), 3, count))
        aa[0] = root_orient[start:stop].T
        for level, first in enumerate(_LEVEL_COLUMNS):  # both legs' joints of a level
            aa[1 + 2 * level : 3 + 2 * level] = pose_body[start:stop, first : first + 6].T.reshape(
                2, 3, count
            )
        # (7, 3, 3, count): pelvis, hips, knees, ankles
        local = rodrigues_components(aa, out=buffer("local", (len(_ROTATED), 3, 3, count)))
        # per leg, the vectors from the ankle's parent to the ankle and to the foot
        vectors = buffer("ankles", (2, 2, 3, count))
        vectors[:, 0] = level_bones[2][:, 0]
        _rotate(local[5:7], level_bones[3], vectors[:, 1:])
        vectors[:, 1:] += level_bones[2]
        for level, rotations in ((1, local[3:5]), (0, local[1:3])):  # knees, then hips
            vectors = _rotate(rotations, vectors, buffer(f"level{level}", (2, 2, 3, count)))
            vectors += level_bones[level]
        # the pelvis: its rotation applied to all four, then its rest position and trans
        feet = _rotate(
            local[0][None], vectors.reshape(1, 4, 3, count), buffer("feet", (1, 4, 3, count))
        )[0]
        feet += rest[0][:, None]
        feet += trans[start:stop].T
        transpose_into(out[start:stop].reshape(count, 12), feet.reshape(12, count))
    return out


def _rotate(rotations: np.ndarray, vectors: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Rotations ``(L, 3, 3, n)`` applied to vectors ``(L, V, 3, n or 1)``, into ``out``
    ``(L, V, 3, n)`` (one ``einsum``: each row's three products summed in one pass, half the
    time of a product and a sum per term)."""
    if vectors.shape[-1] == 1:  # the same vectors at every frame
        return np.einsum("lijn,lvj->lvin", rotations, vectors[..., 0], out=out)
    return np.einsum("lijn,lvjn->lvin", rotations, vectors, out=out)
