"""Floor height and foot contacts of source motions (a Stage I item's), for Stage I.

Computed on the motion at its own rate (an override's, where one applies) over its trimmed
frames ``[start, stop)``, with its source poses, ``trans``, every beta and its model (see
:mod:`vposer_data.contacts` for the rule); a sample takes the labels of its source frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from vposer_data.amass import AmassSequence
from vposer_data.body_model import BodyModel, rest_joints
from vposer_data.chain_kinematics import LegMotion, contact_joint_columns_of_motions
from vposer_data.contacts import feet_contacts_of_motions
from vposer_data.errors import PrepareError
from vposer_data.fields import CONTACTS, FLOOR_Z
from vposer_data.sampling import trim_bounds

__all__ = ["LABEL_FIELDS", "LabelInput", "source_labels_of_motions"]

#: The fields made here, per sample: ``contacts`` (k, 4) or (k, T, 4) uint8, ``floor_z`` (k,).
LABEL_FIELDS = (CONTACTS, FLOOR_Z)


class LabelInput(NamedTuple):
    """One motion to label: the motion, the trim, its kept ``frames`` (indices into the file,
    ``(k,)`` or ``(k, T)``) and its model."""

    sequence: AmassSequence
    trim: float
    frames: np.ndarray
    model: BodyModel


def source_labels_of_motions(motions: Sequence[LabelInput]) -> list[dict[str, np.ndarray]]:
    """``contacts`` and ``floor_z`` of each motion's kept frames, from its whole trimmed
    motion, the motions' feet posed together (a Stage I item's motions:
    :func:`contact_joint_columns_of_motions`), their speeds and contacts computed together."""
    legs, bounds = [], []
    for sequence, trim, _, model in motions:
        start, stop = trim_bounds(sequence.num_frames, trim)
        try:
            rest = rest_joints(model, sequence.betas)
        except ValueError as exc:  # more betas than the model has shape directions
            raise PrepareError(f"{sequence.path}: {exc}") from None
        legs.append(
            LegMotion(
                rest,
                model.parents,
                sequence.root_orient[start:stop],
                sequence.pose_body[start:stop],
                sequence.trans[start:stop],
            )
        )
        bounds.append(start)
    # the feet along the legs only (rotations of 7 joints, none composed), component-major
    columns, starts = contact_joint_columns_of_motions(legs)
    floors = feet_contacts_of_motions(columns, starts, [m.sequence.fps for m in motions])
    labels = []
    for (_, _, frames, _), start, (floor_z, contacts) in zip(motions, bounds, floors, strict=True):
        # (4, T) -> each kept frame's (or clip frame's) four labels, last
        kept = np.moveaxis(contacts[:, frames - start], 0, -1)
        labels.append(
            {
                CONTACTS: np.ascontiguousarray(kept),
                FLOOR_Z: np.full(frames.shape[0], floor_z, dtype=np.float32),
            }
        )
    return labels
