"""A stick figure of a few frames of a prepared motion: the joints joined along the kinematic
tree, seen from the side, the feet coloured by contact. The first picture to look at in a folder
with ``joints``: a wrong axis, scale or tree shows at once.

Used by ``vposer-data report`` and the notebook; matplotlib is needed only to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vposer_data.dataset import VPoserDataset
from vposer_data.fields import CONTACTS, FRAME_ID, JOINTS, SEQ_ID
from vposer_data.manifest import Manifest, split_dir
from vposer_data.skeleton import (
    CONTACT_COLUMNS,
    CONTACT_JOINTS,
    JOINT_PARENTS_BY_FAMILY,
    NUM_JOINTS,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MotionStrip", "draw_stick_figures", "joint_parents", "motion_strip"]

_IN_CONTACT, _NO_CONTACT, _BONE = "#d62728", "#7f7f7f", "#1f77b4"


def joint_parents(count: int) -> tuple[int, ...]:
    """The kinematic tree of ``count`` joints: 22 (the body of every family), 24 (SMPL), 52
    (SMPL+H) or 55 (SMPL-X)."""
    if count == 22:
        return JOINT_PARENTS_BY_FAMILY["smpl"][:22]
    for family, joints in NUM_JOINTS.items():
        if joints == count:
            return JOINT_PARENTS_BY_FAMILY[family]
    raise ValueError(f"no SMPL-family tree has {count} joints")


@dataclass(frozen=True)
class MotionStrip:
    """A few consecutive frames of one motion: joints ``(F, J, 3)``, contacts ``(F, 4)`` or
    None, and where they come from."""

    joints: np.ndarray
    contacts: np.ndarray | None
    title: str


def motion_strip(data_dir: str | Path, frames: int = 8) -> MotionStrip | None:
    """Up to ``frames`` frames of one motion of a folder with ``joints`` (None without): the
    first clip of the first split that holds the source poses (evenly spaced frames of it), or,
    for frames, the first motion's first samples in frame order."""
    manifest = Manifest.load(data_dir)
    splits = [s for s in manifest.splits if manifest.stage3(s) is not None]
    record = manifest.stage3(splits[0]) if splits else None
    if record is None or JOINTS not in record.fields:
        return None
    augmented = set(manifest.settings.get("config", {}).get("augment_splits", []))
    split = next((s for s in splits if s not in augmented), splits[0])
    fields = [JOINTS, SEQ_ID, FRAME_ID]
    if CONTACTS in record.fields:
        fields.append(CONTACTS)
    data = VPoserDataset(split_dir(data_dir, split), fields).tensors
    joints = data[JOINTS].numpy()
    contacts = data[CONTACTS].numpy() if CONTACTS in data else None
    if joints.ndim == 4:  # clips: the first clip, evenly spaced frames of it
        pick = np.unique(np.linspace(0, joints.shape[1] - 1, frames).round().astype(int))
        frame_ids = data[FRAME_ID][0].numpy()[pick]
        title = f"{split}: clip 0, frames {frame_ids.tolist()} of its source"
        return MotionStrip(joints[0, pick], None if contacts is None else contacts[0, pick], title)
    rows = np.flatnonzero(data[SEQ_ID].numpy() == int(data[SEQ_ID][0]))
    rows = rows[np.argsort(data[FRAME_ID].numpy()[rows], kind="stable")][:frames]
    frame_ids = data[FRAME_ID].numpy()[rows]
    title = f"{split}: motion 0, frames {frame_ids.tolist()}"
    return MotionStrip(joints[rows], None if contacts is None else contacts[rows], title)


def draw_stick_figures(ax: Axes, strip: MotionStrip) -> None:
    """Draw each frame side by side, seen from the side (horizontal: the world's y, shifted
    by a body width per frame; vertical: z, up), bones along the tree, the two joints of each
    foot red when in contact."""
    joints = strip.joints.astype(np.float64)
    parents = joint_parents(joints.shape[1])
    step = 1.2 * max(float(np.ptp(joints[..., 1], axis=1).max()), 0.6)
    for f, frame in enumerate(joints):
        x = frame[:, 1] - frame[0, 1] + f * step
        z = frame[:, 2]
        for child, parent in enumerate(parents):
            if parent >= 0:
                ax.plot([x[parent], x[child]], [z[parent], z[child]], color=_BONE, lw=1.5)
        for column, joint in enumerate(CONTACT_JOINTS):
            touching = strip.contacts is not None and bool(strip.contacts[f, column])
            ax.scatter(
                x[joint], z[joint], s=22, zorder=3, color=_IN_CONTACT if touching else _NO_CONTACT
            )
    ax.set_aspect("equal")
    ax.set_xlabel("y (m), each frame shifted")
    ax.set_ylabel("z (m)")
    legend = "feet: red in contact" if strip.contacts is not None else "no contacts field"
    ax.set_title(f"{strip.title} ({legend}; {', '.join(CONTACT_COLUMNS)})", fontsize=10)
