"""The body-model augmentations' functions: ``joints`` (posed joints of the served poses) and
``contacts`` (labels Stage I made from the source motion; here only checked).

Joints are computed after every pose-changing augmentation, from the batch's own poses (for
clips, in the canonical frame Stage I put them in), with the model of each sample's family and
gender and all of its betas: forward kinematics only (:mod:`vposer_data.body_model`), computed
and stored in float32 (within about 1e-6 m of float64).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from vposer_data.body_model import BodyModel, assemble_pose, posed_joints, rest_joints
from vposer_data.fields import (
    BETAS,
    CONTACTS,
    FLOOR_Z,
    GENDER,
    JOINTS,
    POSE_BODY,
    ROOT_ORIENT,
    SEQ_ID,
    TRANS,
)
from vposer_data.models_used import BodyModels
from vposer_data.skeleton import BODY_JOINT_COUNT, NUM_JOINTS, POSE_PARTS

__all__ = ["SplitModels", "contacts", "joints"]

Batch = dict[str, torch.Tensor]
#: Stage I's gender codes, back to names.
_GENDER_NAMES = {-1: "male", 0: "neutral", 1: "female"}


@dataclass(frozen=True)
class SplitModels:
    """What the body-model augmentations need of a split: its models and each motion's family
    (by ``seq_id``, from Stage I's record). Picklable, for the DataLoader's workers."""

    models: BodyModels
    families: Sequence[str]

    @cached_property
    def family_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct families, sorted, and each motion's index among them (found once per
        worker, not per batch: a split has thousands of motions)."""
        names, index = np.unique(np.asarray(self.families), return_inverse=True)
        return names, index.reshape(-1)


def _require(batch: Mapping[str, torch.Tensor], name: str, augmentation: str) -> torch.Tensor:
    if name not in batch:
        raise ValueError(
            f"augmentation {augmentation!r} needs field {name!r}; batch has {sorted(batch)}"
        )
    return batch[name]


def joints(
    batch: Batch, generator: torch.Generator | None = None, *, set: str, body: SplitModels
) -> Batch:
    """Add ``joints``: ``(n, J, 3)`` for frames, ``(n, T, J, 3)`` for clips, float32 metres;
    ``set="body"``: the 22 body joints, ``"all"``: every joint of the family. Rest joints are
    computed once per motion of the batch (its betas), then posed frame by frame."""
    root = _require(batch, ROOT_ORIENT, JOINTS)
    seq = _require(batch, SEQ_ID, JOINTS).numpy().astype(np.int64)
    codes = _require(batch, GENDER, JOINTS).numpy().astype(np.int64)
    betas = _require(batch, BETAS, JOINTS).numpy()
    _require(batch, TRANS, JOINTS)
    clips = root.ndim == 3
    n = int(root.shape[0])
    steps = int(root.shape[1]) if clips else 1

    def rows_of(name: str) -> np.ndarray | None:
        """A per-frame field as ``(n * steps, width)``, or None when the batch lacks it."""
        if name not in batch:
            return None
        value = batch[name].numpy()
        return value.reshape(n * steps, value.shape[-1])

    names, codes_of_motions = body.family_codes
    family_of_row = codes_of_motions[seq]
    families = {str(names[i]): i for i in np.unique(family_of_row).tolist()}
    counts = {NUM_JOINTS[f] if set == "all" else BODY_JOINT_COUNT for f in families}
    if len(counts) > 1:
        raise ValueError("joints with set='all' over several families in one batch")
    count = counts.pop() if counts else BODY_JOINT_COUNT
    trans = rows_of(TRANS)
    assert trans is not None
    out = np.empty((n * steps, count, 3), dtype=np.float32)

    def pose_rows(
        rows: np.ndarray, family: str, tree: tuple[int, ...], models: dict[int, BodyModel]
    ) -> None:
        """The joints of ``rows`` (one family; ``models`` by gender code, of one tree) into
        ``out``, in one call; the whole batch (the usual case) posed where it lies, without
        gathering its rows."""
        whole = rows.size == n
        frames = (rows[:, None] * steps + np.arange(steps)).reshape(-1)
        parts = [name for name, _ in POSE_PARTS[family]]
        if count == BODY_JOINT_COUNT:  # the body joints need no hand, jaw or eye
            parts = [ROOT_ORIENT, POSE_BODY]
        given = {}
        for name in parts:
            value = rows_of(name)
            given[name] = value if value is None or whole else value[frames]
        # float32 as served: exact, and half the bytes of float64
        pose = assemble_pose(family, num_joints=count, dtype=np.float32, **given)  # type: ignore[arg-type]
        # one rest pose per motion (betas are per motion), from its own gender's model
        _, first, inverse = np.unique(seq[rows], return_index=True, return_inverse=True)
        motion_codes = codes[rows[first]]
        rest: np.ndarray | None = None
        for code, model in models.items():
            chosen = np.flatnonzero(motion_codes == code)
            values = rest_joints(model, betas[rows[first[chosen]]].astype(np.float64))
            if rest is None:
                rest = np.empty((first.size, *values.shape[1:]))
            rest[chosen] = values
        assert rest is not None
        per_frame = np.repeat(inverse.reshape(-1), steps)
        # in float32, the served dtype: twice as fast, within about 1e-6 m of float64
        posed = posed_joints(
            rest, tree, pose, trans if whole else trans[frames], rest_index=per_frame,
            dtype=np.float32,
        )  # fmt: skip
        out[slice(None) if whole else frames] = posed

    for family, family_index in families.items():
        # the genders whose models share a tree are posed in one call (every SMPL-family
        # model file has its family's tree), each motion from its own gender's rest joints
        in_family = family_of_row == family_index
        by_tree: dict[tuple[int, ...], dict[int, BodyModel]] = {}
        for code in np.unique(codes[in_family]).tolist():
            model = body.models.load(family, _GENDER_NAMES[code])
            by_tree.setdefault(tuple(model.parents[:count].tolist()), {})[code] = model
        for tree, models in by_tree.items():
            rows = np.flatnonzero(in_family & np.isin(codes, list(models)))
            pose_rows(rows, family, tree, models)
    result = dict(batch)
    shape = (n, steps, count, 3) if clips else (n, count, 3)
    result[JOINTS] = torch.from_numpy(out.reshape(shape))
    return result


def contacts(batch: Batch, generator: torch.Generator | None = None, *, body: SplitModels) -> Batch:
    """``contacts`` and ``floor_z`` come from Stage I (labels of the source motion); a batch
    without them is a coding error."""
    _require(batch, CONTACTS, CONTACTS)
    _require(batch, FLOOR_Z, CONTACTS)
    return dict(batch)
