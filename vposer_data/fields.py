"""The one vocabulary of fields: every tensor the pipeline reads, makes or serves.

For each field: its name, the shape of one value (per frame, or per motion), its dtype, and
which AMASS families provide it (none for fields the pipeline derives). Code asks this table
instead of spelling widths out; adding a field is one entry here plus the code that makes it.
Torch-free, so that settings and the command line can use it without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALL_FAMILIES",
    "FIELDS",
    "NUM_BODY_JOINTS",
    "REPRESENTATIONS",
    "Field",
    "field",
    "frame_fields",
    "pose_fields",
    "source_fields",
]

ALL_FAMILIES = ("smpl", "smplh", "smplx")
NUM_BODY_JOINTS = 21


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
    """

    name: str
    width: int | None
    dtype: str
    per: Literal["frame", "motion"]
    families: tuple[str, ...]
    joints: int | None = None
    summary: str = ""

    @property
    def is_pose(self) -> bool:
        """An axis-angle pose parameter (3 numbers per joint)."""
        return self.joints is not None

    @property
    def optional(self) -> bool:
        """Provided by some families only: a split keeps it when every file has it."""
        return bool(self.families) and set(self.families) != set(ALL_FAMILIES)


_DECLARED = (
    # source fields, read from AMASS
    Field("root_orient", 3, "float32", "frame", ALL_FAMILIES, 1, "root rotation, axis-angle"),
    Field("pose_body", 63, "float32", "frame", ALL_FAMILIES, 21, "21 body joints, axis-angle"),
    Field("pose_hand", 90, "float32", "frame", ("smplh", "smplx"), 30, "30 hand joints"),
    Field("pose_jaw", 3, "float32", "frame", ("smplx",), 1, "jaw, axis-angle"),
    Field("pose_eye", 6, "float32", "frame", ("smplx",), 2, "left and right eye, axis-angle"),
    Field("trans", 3, "float32", "frame", ALL_FAMILIES, None, "root translation, metres"),
    Field("dmpls", 8, "float32", "frame", ("smplh",), None, "soft-tissue coefficients"),
    Field("betas", None, "float32", "motion", ALL_FAMILIES, None, "body shape coefficients"),
    Field("gender", 0, "int8", "motion", ALL_FAMILIES, None, "male -1, neutral 0, female 1"),
    # provenance, made by Stage I
    Field("seq_id", 0, "int32", "motion", (), None, "index into the manifest's file list"),
    Field("frame_id", 0, "int32", "frame", (), None, "frame of the source file"),
    # derived by augmentations
    Field(
        "pose_body_matrot",
        NUM_BODY_JOINTS * 9,
        "float32",
        "frame",
        (),
        None,
        "body joints as 3x3 rotation matrices, row by row",
    ),
    Field("trans_vel", 3, "float32", "frame", (), None, "clips: root velocity, m/s"),
    Field("root_angvel", 3, "float32", "frame", (), None, "clips: root angular velocity, rad/s"),
    Field("canon_yaw", 0, "float32", "motion", (), None, "clips: rotation about z applied, rad"),
    Field("canon_offset", 3, "float32", "motion", (), None, "clips: horizontal shift removed"),
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
