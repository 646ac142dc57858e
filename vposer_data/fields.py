"""The one vocabulary of fields: every tensor the pipeline reads, makes or serves.

For each field: its name, the shape of one value (per frame, or per motion), its dtype, and
which AMASS families provide it (none for fields the pipeline derives). Code asks this table
instead of spelling names, widths, dtypes or layouts out: a field derived by an augmentation is
one entry here (``made_by`` naming the augmentation) plus that augmentation's entry in
:mod:`vposer_data.augment.registry` and its function.
Torch-free, so that settings and the command line can use it without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vposer_data.skeleton import CONTACT_COLUMNS, JOINT_NAMES_BY_FAMILY

__all__ = [
    "ALL_FAMILIES",
    "BETAS",
    "CANON_OFFSET",
    "CANON_YAW",
    "CONTACTS",
    "CONTACT_COLUMNS",
    "FIELDS",
    "FLOOR_Z",
    "FRAME_ID",
    "GENDER",
    "JOINTS",
    "JOINT_NAMES_BY_FAMILY",
    "NUM_BODY_JOINTS",
    "POSE_BODY",
    "POSE_BODY_MATROT",
    "POSE_EYE",
    "POSE_HAND",
    "POSE_JAW",
    "REPRESENTATIONS",
    "ROOT_ANGVEL",
    "ROOT_ORIENT",
    "SEQ_ID",
    "STAGE_I_MAKERS",
    "TRANS",
    "TRANS_VEL",
    "Field",
    "default_fields",
    "field",
    "frame_fields",
    "made_by",
    "pose_fields",
    "required_fields",
    "source_fields",
    "stage1_fields",
]

ALL_FAMILIES = ("smpl", "smplh", "smplx")
NUM_BODY_JOINTS = 21

# The names the code refers to by role (the declarations below spell every name once).
ROOT_ORIENT = "root_orient"
POSE_BODY = "pose_body"
POSE_HAND = "pose_hand"
POSE_JAW = "pose_jaw"
POSE_EYE = "pose_eye"
TRANS = "trans"
BETAS = "betas"
GENDER = "gender"
SEQ_ID = "seq_id"
FRAME_ID = "frame_id"
CANON_YAW = "canon_yaw"
CANON_OFFSET = "canon_offset"
POSE_BODY_MATROT = "pose_body_matrot"
TRANS_VEL = "trans_vel"
ROOT_ANGVEL = "root_angvel"
JOINTS = "joints"
CONTACTS = "contacts"
FLOOR_Z = "floor_z"

#: What Stage I makes a field with: read from the AMASS file, provenance it records, or the
#: canonicalisation of clips. Any other ``made_by`` is the augmentation (Stage II) adding it.
STAGE_I_MAKERS = ("amass", "provenance", "canonicalize")


@dataclass(frozen=True)
class Field:
    """One field of a sample.

    Attributes:
        name: the tensor's name (``<name>.pt`` in a split folder, a dataset in the HDF5 file).
        width: numbers per frame (per motion for per-motion fields); 0 for a scalar; None when
            it is the input file's (``betas``: usually 16, never truncated).
        dtype: numpy dtype name of the stored tensor.
        per: "frame" (one value per frame of a sample) or "motion" (one per sample, whatever
            its length: shape and provenance of the source motion).
        families: the AMASS families that provide it; empty for fields the pipeline derives.
        joints: for axis-angle poses, the number of joints (3 numbers each).
        summary: one line for documentation.
        made_by: what makes it: one of :data:`STAGE_I_MAKERS`, or the name of the augmentation
            (:mod:`vposer_data.augment.registry`) that adds it in Stage II.
        clips_only: it exists in clip folders only (``sampling="clips"``).
        default: a dataset loads it when no fields are asked for (if the split holds it).
        required: every split holds it (Stage III refuses an input without it).
        inner: the trailing dimensions of one value after ``width`` (``joints``: ``(3,)``,
            a value is ``(J, 3)``).
        from_source: made by Stage I from the source motion at its own rate, for the
            augmentation ``made_by`` names (labels such as ``contacts``), not in Stage II.
    """

    name: str
    width: int | None
    dtype: str
    per: Literal["frame", "motion"]
    families: tuple[str, ...]
    joints: int | None = None
    summary: str = ""
    made_by: str = "amass"
    clips_only: bool = False
    default: bool = False
    required: bool = False
    inner: tuple[int, ...] = ()
    from_source: bool = False

    @property
    def is_pose(self) -> bool:
        """An axis-angle pose parameter (3 numbers per joint)."""
        return self.joints is not None

    @property
    def optional(self) -> bool:
        """Provided by some families only: a split keeps it when every file has it."""
        return bool(self.families) and set(self.families) != set(ALL_FAMILIES)

    @property
    def derived(self) -> bool:
        """Added by an augmentation in Stage II (not stored by Stage I)."""
        return self.made_by not in STAGE_I_MAKERS and not self.from_source

    def row_shape(
        self, clip_frames: int | None = None, width: int | None = None
    ) -> tuple[int, ...]:
        """The shape of one sample's value: ``(width,)`` (``()`` for a scalar), preceded by
        ``clip_frames`` for a per-frame field of a clip folder. ``width`` stands in for a width
        the input file decides (``betas``)."""
        numbers = self.width if self.width is not None else width
        if numbers is None:
            raise ValueError(f"field {self.name!r}: its width is the input's, and none was given")
        value = ((numbers,) if numbers else ()) + self.inner
        return (clip_frames, *value) if clip_frames and self.per == "frame" else value


# In the order outputs list them: Stage I's files in this order, a dataset's default fields too.
_DECLARED = (
    # source fields, read from AMASS (and the body rotation matrices, derived, loaded by default)
    Field(
        ROOT_ORIENT,
        3,
        "float32",
        "frame",
        ALL_FAMILIES,
        1,
        "root rotation, axis-angle",
        default=True,
        required=True,
    ),
    Field(
        POSE_BODY,
        63,
        "float32",
        "frame",
        ALL_FAMILIES,
        21,
        "21 body joints, axis-angle",
        default=True,
        required=True,
    ),
    Field(
        POSE_BODY_MATROT,
        NUM_BODY_JOINTS * 9,
        "float32",
        "frame",
        (),
        None,
        "body joints as 3x3 rotation matrices, row by row",
        made_by="matrot",
        default=True,
    ),
    Field(
        POSE_HAND, 90, "float32", "frame", ("smplh", "smplx"), 30, "30 hand joints", default=True
    ),
    Field(POSE_JAW, 3, "float32", "frame", ("smplx",), 1, "jaw, axis-angle", default=True),
    Field(
        POSE_EYE,
        6,
        "float32",
        "frame",
        ("smplx",),
        2,
        "left and right eye, axis-angle",
        default=True,
    ),
    Field(TRANS, 3, "float32", "frame", ALL_FAMILIES, None, "root translation, metres"),
    Field("dmpls", 8, "float32", "frame", ("smplh",), None, "soft-tissue coefficients"),
    # made by Stage I's canonicalisation of clips
    Field(
        CANON_YAW,
        0,
        "float32",
        "motion",
        (),
        None,
        "clips: rotation about z applied, rad",
        made_by="canonicalize",
        clips_only=True,
    ),
    Field(
        CANON_OFFSET,
        3,
        "float32",
        "motion",
        (),
        None,
        "clips: horizontal shift removed",
        made_by="canonicalize",
        clips_only=True,
    ),
    # per motion, from AMASS
    Field(BETAS, None, "float32", "motion", ALL_FAMILIES, None, "body shape coefficients"),
    Field(GENDER, 0, "int8", "motion", ALL_FAMILIES, None, "male -1, neutral 0, female 1"),
    # provenance, made by Stage I
    Field(
        SEQ_ID,
        0,
        "int32",
        "motion",
        (),
        None,
        "index into the manifest's file list",
        made_by="provenance",
    ),
    Field(
        FRAME_ID, 0, "int32", "frame", (), None, "frame of the source file", made_by="provenance"
    ),
    # derived by augmentations
    Field(
        TRANS_VEL,
        3,
        "float32",
        "frame",
        (),
        None,
        "clips: root velocity, m/s",
        made_by="velocities",
        clips_only=True,
    ),
    Field(
        ROOT_ANGVEL,
        3,
        "float32",
        "frame",
        (),
        None,
        "clips: root angular velocity, rad/s",
        made_by="velocities",
        clips_only=True,
    ),
    # from the user's body models: joint names and order in JOINT_NAMES_BY_FAMILY (the first
    # 22 for set="body"), contact columns in CONTACT_COLUMNS
    Field(
        JOINTS,
        None,
        "float32",
        "frame",
        (),
        None,
        "joint positions, metres, world frame (clips: canonical): 22 body joints or every "
        "joint of the family",
        made_by="joints",
        inner=(3,),
    ),
    Field(
        CONTACTS,
        len(CONTACT_COLUMNS),
        "uint8",
        "frame",
        (),
        None,
        "foot contacts 0/1: left_ankle, left_foot, right_ankle, right_foot",
        made_by="contacts",
        from_source=True,
    ),
    Field(
        FLOOR_Z,
        0,
        "float32",
        "motion",
        (),
        None,
        "floor height of the source motion, metres",
        made_by="contacts",
        from_source=True,
    ),
)

#: Rotation representations an augmentation derives from an axis-angle pose field, as
#: ``<field>_<suffix>``: numbers per joint.
REPRESENTATIONS = {"rot6d": 6, "quat": 4}

#: Every field, by name, in the order outputs list them.
FIELDS: dict[str, Field] = {f.name: f for f in _DECLARED}


def field(name: str) -> Field:
    """The declaration of ``name`` (also ``<pose field>_rot6d`` and ``<pose field>_quat``); a
    KeyError listing the known names otherwise."""
    if name in FIELDS:
        return FIELDS[name]
    base, _, suffix = name.rpartition("_")
    source = FIELDS.get(base)
    if source is not None and source.joints and suffix in REPRESENTATIONS:
        width = source.joints * REPRESENTATIONS[suffix]
        return Field(name, width, "float32", "frame", (), None, f"{base} as {suffix}")
    raise KeyError(
        f"unknown field {name!r}; known fields: {', '.join(FIELDS)}, and "
        f"<pose field>_{{{','.join(REPRESENTATIONS)}}}"
    )


def pose_fields() -> dict[str, int]:
    """Axis-angle pose fields and their widths, in order."""
    return {f.name: int(f.width or 0) for f in FIELDS.values() if f.is_pose}


def source_fields() -> tuple[Field, ...]:
    """Fields read from AMASS files."""
    return tuple(f for f in FIELDS.values() if f.families)


def frame_fields() -> tuple[str, ...]:
    """The per-frame source fields (Stage I's float arrays), in output order."""
    return tuple(
        f.name for f in FIELDS.values() if f.families and f.per == "frame" and f.dtype == "float32"
    )


def made_by(maker: str) -> tuple[str, ...]:
    """The fields ``maker`` makes (one of :data:`STAGE_I_MAKERS`, or an augmentation), in order."""
    return tuple(f.name for f in FIELDS.values() if f.made_by == maker)


def stage1_fields(frame_fields_present: Sequence[str], canonical: bool) -> list[str]:
    """Stage I's fields of a split, in order: the per-frame source fields every file has,
    the canonicalisation's (clips canonicalised), then the per-motion fields and provenance;
    labels of the source motion (``from_source``) when ``frame_fields_present`` names them."""
    sources = frame_fields()
    return [
        f.name
        for f in FIELDS.values()
        if not f.derived
        and (f.name in frame_fields_present or (f.name not in sources and not f.from_source))
        and (canonical or f.made_by != "canonicalize")
    ]


def default_fields() -> tuple[str, ...]:
    """The fields a dataset loads when none are asked for, in order."""
    return tuple(f.name for f in FIELDS.values() if f.default)


def required_fields() -> tuple[str, ...]:
    """The fields every split holds."""
    return tuple(f.name for f in FIELDS.values() if f.required)
