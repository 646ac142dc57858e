"""Positions of the four contact joints (ankles and feet) by forward kinematics along the two
legs only, for Stage I's floor and contacts: one motion, or the motions of a Stage I item
posed together (their frames in shared blocks, each frame with its own motion's bones).

:func:`vposer_data.body_model.posed_joints` composes every ancestor's global rotation, 3x3 by
3x3, because every joint's position is wanted. For the feet, nesting is cheaper: the left
foot (10, under the ankle 7, knee 4, hip 1 and pelvis 0) sits at

    trans + b_0 + R_0 (b_1 + R_1 (b_4 + R_4 (b_7 + R_7 b_10)))

(``b`` the bones, rest joint minus its parent's; ``R`` the local rotations), so each rotation
is applied to the vectors that pass through it and none is composed with another. Both legs
are one chain of arrays (left and right stacked), level by level: a block of frames costs a
few dozen vectorised operations, whatever motions its frames come from. The same positions
as ``posed_joints``, in other rounding (about 1e-16 m apart). Stage I takes them
component-major (:func:`contact_joint_columns_of_motions`), as its speeds and contacts are
computed (:func:`vposer_data.contacts.feet_contacts_of_motions`): no transpose back to rows.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from vposer_data.body_model import (
    assemble_pose,
    posed_joints,
    rodrigues_components,
    transpose_into,
)
from vposer_data.skeleton import CONTACT_JOINTS
from vposer_data.work_buffers import work_buffer

__all__ = [
    "LEG_CHAINS",
    "LegMotion",
    "contact_joint_columns_of_motions",
    "contact_joint_positions",
    "contact_joint_positions_of_motions",
]

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


class LegMotion(NamedTuple):
    """One motion's inputs to :func:`contact_joint_positions_of_motions`: rest joints
    ``(J >= 12, 3)``, the model's tree, ``root_orient`` ``(N, 3)``, ``pose_body`` ``(N, 63)``
    (axis-angle, as stored) and ``trans`` ``(N, 3)``."""

    rest: np.ndarray
    parents: np.ndarray | tuple[int, ...]
    root_orient: np.ndarray
    pose_body: np.ndarray
    trans: np.ndarray


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
    motion = LegMotion(rest, parents, root_orient, pose_body, trans)
    return contact_joint_positions_of_motions([motion], block_frames=block_frames)[0]


def contact_joint_positions_of_motions(
    motions: Sequence[LegMotion], *, block_frames: int = _BLOCK
) -> list[np.ndarray]:
    """:func:`contact_joint_positions` of each motion, their frames posed together in blocks
    of ``block_frames`` (see :func:`contact_joint_columns_of_motions`)."""
    columns, starts = contact_joint_columns_of_motions(motions, block_frames=block_frames)
    outputs = []
    for first, last in itertools.pairwise(starts.tolist()):
        rows = np.empty((last - first, 12))
        transpose_into(rows, np.ascontiguousarray(columns.reshape(12, -1)[:, first:last]))
        outputs.append(rows.reshape(-1, 4, 3))
    return outputs


def contact_joint_columns_of_motions(
    motions: Sequence[LegMotion], *, block_frames: int = _BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """The positions of :data:`CONTACT_JOINTS` of every motion, component-major: ``(4, 3,
    F)`` float64, the motions' frames one after another (motion ``i``'s are ``starts[i] :
    starts[i + 1]``), and ``starts`` ``(M + 1,)``. Their frames are posed together in blocks of
    ``block_frames``: a usual motion (about a thousand frames) posed alone would pay each
    vectorised operation's fixed cost for few frames, about a third of its time. Each frame's
    formula is the same whatever shares its block, but not always its last bit (a value's
    place in a block decides whether a vector loop or its scalar tail computes it): callers
    that must give the same result whatever the number of workers pose the same groups
    (Stage I: an item of files). Memory: the output and one block's work buffers."""
    checked = [_checked(motion) for motion in motions]
    lengths = [motion.root_orient.shape[0] for motion in checked]
    starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    columns = np.empty((4, 3, int(starts[-1])))
    standard = []
    for index, motion in enumerate(checked):
        tree = tuple(np.asarray(motion.parents)[:12].tolist())
        if _legs_are_standard(tree):
            standard.append(index)
        else:  # the first 12 joints are the root and body joints in every family
            pose = assemble_pose(
                "smpl", root_orient=motion.root_orient, pose_body=motion.pose_body, num_joints=12
            )
            posed = posed_joints(motion.rest, tree, pose, motion.trans, joints=CONTACT_JOINTS)
            here = slice(starts[index], starts[index + 1])
            columns[..., here] = posed[:, CONTACT_JOINTS].transpose(1, 2, 0)
    # the bones (rest joint - parent's) of each level (hips, knees, ankles, feet) of both legs
    bones = {i: checked[i].rest[_LEVELS] - checked[i].rest[_LEVEL_PARENTS] for i in standard}
    for block in _blocks([(i, lengths[i]) for i in standard], block_frames):
        _pose_block(block, checked, bones, columns, starts)
    return columns, starts


def _checked(motion: LegMotion) -> LegMotion:
    frames = motion.root_orient.shape[0]
    if motion.root_orient.shape != (frames, 3) or motion.pose_body.shape != (frames, 63):
        raise ValueError(
            f"root_orient (N, 3) and pose_body (N, 63) expected, got "
            f"{motion.root_orient.shape} and {motion.pose_body.shape}"
        )
    if motion.trans.shape != (frames, 3):
        raise ValueError(f"trans must have shape ({frames}, 3), got {motion.trans.shape}")
    rest = np.asarray(motion.rest, dtype=np.float64)
    if rest.ndim != 2 or rest.shape[0] < 12 or rest.shape[1] != 3:
        raise ValueError(f"rest joints must have shape (J >= 12, 3), got {rest.shape}")
    return motion._replace(rest=rest)


#: A block's pieces: (motion, its first frame, frames) in the order they fill the block.
_Pieces = list[tuple[int, int, int]]


def _blocks(lengths: Sequence[tuple[int, int]], block_frames: int) -> Iterator[_Pieces]:
    """The motions' frames, in order, cut into blocks of ``block_frames`` (the last shorter)."""
    block: _Pieces = []
    room = block_frames
    for motion, frames in lengths:
        first = 0
        while first < frames:
            taken = min(room, frames - first)
            block.append((motion, first, taken))
            first += taken
            room -= taken
            if room == 0:
                yield block
                block, room = [], block_frames
    if block:
        yield block


def _pose_block(
    block: _Pieces,
    motions: Sequence[LegMotion],
    bones: dict[int, np.ndarray],
    columns: np.ndarray,
    starts: np.ndarray,
) -> None:
    """The feet of one block's frames, into their motions' places in ``columns``."""
    count = sum(taken for _, _, taken in block)

    def buffer(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return work_buffer(f"feet.{name}", shape, np.float64)

    aa = buffer("aa", (len(_ROTATED), 3, count))
    # per frame: its motion's bones (level, leg, 3), rest root position and trans
    frame_bones = buffer("bones", (4, 2, 3, count))
    root = buffer("root", (3, count))
    trans = buffer("trans", (3, count))
    at = 0
    for index, first, taken in block:
        motion, rows, here = motions[index], slice(first, first + taken), slice(at, at + taken)
        aa[0, :, here] = motion.root_orient[rows].T
        for level, column in enumerate(_LEVEL_COLUMNS):  # both legs' joints of a level
            aa[1 + 2 * level : 3 + 2 * level, :, here] = motion.pose_body[
                rows, column : column + 6
            ].T.reshape(2, 3, taken)
        frame_bones[..., here] = bones[index][..., None]
        root[:, here] = motion.rest[0][:, None]
        trans[:, here] = motion.trans[rows].T
        at += taken
    # (7, 3, 3, count): pelvis, hips, knees, ankles
    local = rodrigues_components(aa, out=buffer("local", (len(_ROTATED), 3, 3, count)))
    level_bones = [frame_bones[level][:, None] for level in range(4)]  # (leg, 1, 3, count)
    # per leg, the vectors from the ankle's parent to the ankle and to the foot
    vectors = buffer("ankles", (2, 2, 3, count))
    vectors[:, 0] = frame_bones[2]
    _rotate(local[5:7], level_bones[3], vectors[:, 1:])
    vectors[:, 1:] += level_bones[2]
    for level, rotations in ((1, local[3:5]), (0, local[1:3])):  # knees, then hips
        vectors = _rotate(rotations, vectors, buffer(f"level{level}", (2, 2, 3, count)))
        vectors += level_bones[level]
    # the pelvis: its rotation applied to all four, then its rest position and trans
    feet = _rotate(
        local[0][None], vectors.reshape(1, 4, 3, count), buffer("feet", (1, 4, 3, count))
    )[0]
    feet += root
    feet += trans
    at = 0
    for index, first, taken in block:
        into = int(starts[index]) + first
        columns[..., into : into + taken] = feet[..., at : at + taken]
        at += taken


def _rotate(rotations: np.ndarray, vectors: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Rotations ``(L, 3, 3, n)`` applied to vectors ``(L, V, 3, n)``, into ``out``
    ``(L, V, 3, n)`` (one ``einsum``: each row's three products summed in one pass, half the
    time of a product and a sum per term)."""
    return np.einsum("lijn,lvjn->lvin", rotations, vectors, out=out)
