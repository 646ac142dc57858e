"""The joints of each SMPL family: names, order and kinematic tree, as the model files have them.

Torch- and numpy-free, so that the field vocabulary, the report and the command line can name
joints without loading anything. The first 22 joints (the body) are the same in every family;
SMPL adds two hand joints, SMPL+H 30 finger joints, SMPL-X the jaw, two eyes and 30 finger
joints.
"""

from __future__ import annotations

__all__ = [
    "BODY_JOINT_COUNT",
    "CONTACT_COLUMNS",
    "CONTACT_JOINTS",
    "JOINT_NAMES_BY_FAMILY",
    "JOINT_PARENTS_BY_FAMILY",
    "NUM_JOINTS",
    "POSE_PARTS",
    "joints_table",
]

NUM_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55}
#: The body joints every family shares, root first: the first 22 of each family's order.
BODY_JOINT_COUNT = 22

_BODY = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
_BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # the models' order within a hand


def _hand(side: str) -> tuple[str, ...]:
    return tuple(f"{side}_{finger}{k}" for finger in _FINGERS for k in (1, 2, 3))


def _hand_parents(wrist: int, first: int) -> tuple[int, ...]:
    """Parents of a hand's 15 joints numbered from ``first``: each finger a chain off the wrist."""
    parents: list[int] = []
    for finger in range(len(_FINGERS)):
        base = first + 3 * finger
        parents += [wrist, base, base + 1]
    return tuple(parents)


#: Joint names in each family's own order (SMPL 24, SMPL+H 52, SMPL-X 55). The first 22 are
#: the body joints, the same in every family. SMPL-X's eyes are the eyeball joints.
JOINT_NAMES_BY_FAMILY: dict[str, tuple[str, ...]] = {
    "smpl": (*_BODY, "left_hand", "right_hand"),
    "smplh": (*_BODY, *_hand("left"), *_hand("right")),
    "smplx": (*_BODY, "jaw", "left_eye", "right_eye", *_hand("left"), *_hand("right")),
}
#: The kinematic tree the real model files store (``kintree_table[0]``), root -1.
JOINT_PARENTS_BY_FAMILY: dict[str, tuple[int, ...]] = {
    "smpl": (*_BODY_PARENTS, 20, 21),
    "smplh": (*_BODY_PARENTS, *_hand_parents(20, 22), *_hand_parents(21, 37)),
    "smplx": (*_BODY_PARENTS, 15, 15, 15, *_hand_parents(20, 25), *_hand_parents(21, 40)),
}

#: How a family's full pose is assembled from the AMASS fields: (field, joints), in joint order.
POSE_PARTS: dict[str, tuple[tuple[str, int], ...]] = {
    "smpl": (("root_orient", 1), ("pose_body", 21), ("pose_hand", 2)),
    "smplh": (("root_orient", 1), ("pose_body", 21), ("pose_hand", 30)),
    "smplx": (
        ("root_orient", 1),
        ("pose_body", 21),
        ("pose_jaw", 1),
        ("pose_eye", 2),
        ("pose_hand", 30),
    ),
}

#: The columns of ``contacts``: two joints of each foot, and their SMPL joint numbers.
CONTACT_COLUMNS = ("left_ankle", "left_foot", "right_ankle", "right_foot")
CONTACT_JOINTS = (7, 10, 8, 11)


def joints_table() -> str:
    """The documentation's table of joint names and order per family (Markdown), from the
    above."""
    body = JOINT_NAMES_BY_FAMILY["smpl"][:BODY_JOINT_COUNT]
    rows = ["| joints | names, in order |", "|---|---|"]
    rows.append(f'| 0-21 (`set="body"`, every family) | {", ".join(body)} |')
    for family, label in (("smpl", "SMPL"), ("smplh", "SMPL+H"), ("smplx", "SMPL-X")):
        rest = JOINT_NAMES_BY_FAMILY[family][BODY_JOINT_COUNT:]
        last = NUM_JOINTS[family] - 1
        rows.append(f'| 22-{last} ({label}, `set="all"`) | {", ".join(rest)} |')
    return "\n".join(rows)
