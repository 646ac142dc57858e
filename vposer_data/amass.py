"""Read one AMASS motion file into a normalized sequence.

AMASS ships three families of file (SMPL, SMPL+H, SMPL-X), told apart here by their keys and
the width of ``poses``, never by file name. The archive itself is read by
:mod:`vposer_data.npz_reader` (no pickles, every member CRC-checked; the fast mapped path
first, the ``np.load`` reference path for anything unusual); this module gives its keys their
AMASS meaning and validates them. A file that cannot be used is an :class:`AmassFormatError`
naming it and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vposer_data.errors import FileFormatError
from vposer_data.fields import pose_fields
from vposer_data.npz_reader import (
    Fallback,
    Keys,
    MappedArchive,
    NpzFormatError,
    member_checksums,
    numpy_archive,
    require_real,
)

__all__ = [
    "AmassFormatError",
    "AmassSequence",
    "NotAMotionError",
    "load_sequence",
    "member_checksums",
]

#: Width of ``poses`` per family, and the slices of each body part within it.
FAMILY_BY_POSE_WIDTH = {72: "smpl", 156: "smplh", 165: "smplx"}
POSE_SLICES: dict[str, dict[str, slice]] = {
    "smpl": {"root_orient": slice(0, 3), "pose_body": slice(3, 66)},
    "smplh": {
        "root_orient": slice(0, 3),
        "pose_body": slice(3, 66),
        "pose_hand": slice(66, 156),
    },
    "smplx": {
        "root_orient": slice(0, 3),
        "pose_body": slice(3, 66),
        "pose_jaw": slice(66, 69),
        "pose_eye": slice(69, 75),
        "pose_hand": slice(75, 165),
    },
}
#: Per family, the columns ``poses[:, :n]`` its parts use: the slices above tile them.
POSES_USED = {family: max(s.stop for s in parts.values()) for family, parts in POSE_SLICES.items()}
#: Widths of the SMPL-X split keys, used when a file has them instead of ``poses``.
SPLIT_KEY_WIDTHS = pose_fields()
FRAME_RATE_KEYS = ("mocap_framerate", "mocap_frame_rate")
GENDERS = ("male", "female", "neutral")
#: File names AMASS uses for per-subject shape files, which hold no motion.
NON_MOTION_NAMES = ("shape.npz",)
NON_MOTION_SUFFIXES = ("_stagei.npz",)
#: Endings AMASS gives motion files: such a file without a pose key is damaged, not a non-motion.
MOTION_SUFFIXES = ("_poses.npz", "_stageii.npz")


class AmassFormatError(FileFormatError):
    """An AMASS file that cannot be used; the message names the file and what was expected."""


class NotAMotionError(AmassFormatError):
    """A well-formed file that is not a motion (``shape.npz``, ``*_stagei.npz``, or no pose key
    in a file not named as a motion)."""


@dataclass(frozen=True)
class AmassSequence:
    """One motion, split into body parts. Arrays keep the file's dtype; N is the frame count."""

    path: str
    family: str  # "smpl" | "smplh" | "smplx"
    fps: float
    gender: str  # "male" | "female" | "neutral"
    root_orient: np.ndarray  # (N, 3) axis-angle
    pose_body: np.ndarray  # (N, 63)
    pose_hand: np.ndarray | None  # (N, 90), None for SMPL
    pose_jaw: np.ndarray | None  # (N, 3), SMPL-X only
    pose_eye: np.ndarray | None  # (N, 6), SMPL-X only
    betas: np.ndarray  # (B,), the width the file has
    trans: np.ndarray  # (N, 3)
    dmpls: np.ndarray | None  # (N, 8), SMPL+H only

    @property
    def num_frames(self) -> int:
        return int(self.pose_body.shape[0])


def is_non_motion_name(path: str | Path) -> bool:
    """True for the names AMASS gives its per-subject shape files."""
    name = (path if isinstance(path, Path) else Path(path)).name
    return name in NON_MOTION_NAMES or name.endswith(NON_MOTION_SUFFIXES)


def load_sequence(path: str | Path, default_fps: float | None = None) -> AmassSequence:
    """Read and validate one AMASS motion file.

    Args:
        path: the ``.npz`` file.
        default_fps: frame rate to assume when the file has no frame-rate key (some SMPL
            exports); by default such a file is an error.

    Raises:
        NotAMotionError: the file is a shape file, or has no pose key and is not named as a
            motion (``*_poses.npz``, ``*_stageii.npz``).
        AmassFormatError: anything else that makes the file unusable, including a file named
            as a motion without a pose key.
    """
    path = path if isinstance(path, Path) else Path(path)  # Path(a Path) parses it again
    if is_non_motion_name(path):
        raise NotAMotionError(path, "a subject shape file, not a motion")
    mapped = MappedArchive.open(path)
    if mapped is not None:
        try:
            with _as_amass_error():
                return _read_archive(path, mapped, default_fps)
        except Fallback:
            pass  # something unusual: the reference path reads the file again and says what
    return _load_with_numpy(path, default_fps)


def _load_with_numpy(path: Path, default_fps: float | None) -> AmassSequence:
    """The reference path (:func:`vposer_data.npz_reader.numpy_archive`)."""
    with _as_amass_error(), numpy_archive(path) as keys:
        return _read_archive(path, keys, default_fps)


@contextmanager
def _as_amass_error() -> Iterator[None]:
    """An archive the reader cannot read is an unusable AMASS file."""
    try:
        yield
    except NpzFormatError as exc:
        raise AmassFormatError(exc.path, exc.problem) from None


def _read_archive(path: Path, keys: Keys, default_fps: float | None) -> AmassSequence:
    poses: np.ndarray | None = None
    if "poses" in keys:
        parts, family, poses = _parts_from_poses(path, keys)
    elif "pose_body" in keys:
        parts, family = _parts_from_split_keys(keys)
    elif path.name.endswith(MOTION_SUFFIXES):
        # named as a motion, so a damaged one: reported, never passed over as a non-motion
        raise AmassFormatError(
            path,
            f"missing key 'poses' (keys present: {sorted(keys.keys)}); "
            f"a file named *{' or *'.join(MOTION_SUFFIXES)} is a motion and needs its poses",
        )
    else:
        raise NotAMotionError(
            path, f"no pose key ('poses' or 'pose_body') among {sorted(keys.keys)}"
        )

    num_frames = parts["pose_body"].shape[0]
    if num_frames == 0:
        raise AmassFormatError(path, "has 0 frames, expected at least 1")
    trans = keys.numeric("trans", 2, 3)
    betas = _read_betas(path, keys)
    dmpls = keys.numeric("dmpls", 2) if "dmpls" in keys else None
    frame_counts = {name: array.shape[0] for name, array in parts.items()}
    frame_counts["trans"] = trans.shape[0]
    if dmpls is not None:
        frame_counts["dmpls"] = dmpls.shape[0]
    if len(set(frame_counts.values())) != 1:
        raise AmassFormatError(
            path, f"keys disagree on the number of frames: {frame_counts}, expected one count"
        )
    checked = {**parts, "trans": trans, "betas": betas}
    if dmpls is not None:
        checked["dmpls"] = dmpls
    with np.errstate(all="ignore"):  # once per file: huge finite values may overflow a sum
        if poses is not None and _all_finite(poses):
            checked = {name: array for name, array in checked.items() if name not in parts}
        not_finite = next((name for name, array in checked.items() if not _all_finite(array)), None)
    if not_finite is not None:
        array = checked[not_finite]
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise AmassFormatError(
            path, f"key '{not_finite}' has {bad} non-finite values (NaN or Inf), expected none"
        )
    return AmassSequence(
        path=str(path),
        family=family,
        fps=_read_fps(path, keys, default_fps),
        gender=_read_gender(path, keys),
        root_orient=parts["root_orient"],
        pose_body=parts["pose_body"],
        pose_hand=parts.get("pose_hand"),
        pose_jaw=parts.get("pose_jaw"),
        pose_eye=parts.get("pose_eye"),
        betas=betas,
        trans=trans,
        dmpls=dmpls,
    )


def _all_finite(array: np.ndarray) -> bool:
    """True when no value is NaN or infinite. A sum is NaN or infinite whenever an element is,
    so one pass without a temporary settles the usual case; only a non-finite sum (which huge
    finite values can also give) needs the element-wise check. The caller silences numpy's
    overflow warning (``np.errstate``), once per file."""
    if array.dtype.kind != "f":
        return True
    if math.isfinite(np.add.reduce(array, axis=None, dtype=np.float64)):
        return True
    return bool(np.isfinite(array).all())


def _parts_from_poses(path: Path, keys: Keys) -> tuple[dict[str, np.ndarray], str, np.ndarray]:
    """The body parts, the family, and the columns of ``poses`` the parts use, in one array.

    The parts are strided column slices, which are cheaper to check for non-finite values as
    one contiguous ``poses`` (SMPL+H, SMPL-X: the parts are every column). SMPL's parts leave
    columns 66:72 out, which stay unchecked.
    """
    poses = keys.numeric("poses", 2)
    width = poses.shape[1]
    family = FAMILY_BY_POSE_WIDTH.get(width)
    if family is None:
        known = ", ".join(f"{w} ({f})" for w, f in FAMILY_BY_POSE_WIDTH.items())
        raise AmassFormatError(path, f"'poses' has width {width}, expected one of {known}")
    parts = {name: poses[:, part] for name, part in POSE_SLICES[family].items()}
    used = POSES_USED[family]
    return parts, family, poses if used == width else poses[:, :used]


def _parts_from_split_keys(keys: Keys) -> tuple[dict[str, np.ndarray], str]:
    parts = {
        name: keys.numeric(name, 2, width)
        for name, width in SPLIT_KEY_WIDTHS.items()
        if name in keys or name in ("root_orient", "pose_body")
    }
    return parts, family_of_split_keys(parts)


def family_of_split_keys(keys: Collection[str]) -> str:
    """The family of a file storing split pose keys: SMPL-X with jaw or eye poses, SMPL+H with
    hands, else SMPL."""
    if "pose_jaw" in keys or "pose_eye" in keys:
        return "smplx"
    return "smplh" if "pose_hand" in keys else "smpl"


def gender_of(value: np.ndarray) -> str | None:
    """The gender a ``gender`` array names (one str or bytes, any case, spaces around), or
    None when it names none of :data:`GENDERS`."""
    if value.size != 1 or value.dtype.kind not in "SU":
        return None
    raw = value.reshape(()).item()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    gender = str(raw).strip().lower()
    return gender if gender in GENDERS else None


def _read_betas(path: Path, keys: Keys) -> np.ndarray:
    betas = keys.get("betas")
    if betas.ndim == 2 and betas.shape[0] == 1:
        betas = betas[0]
    if betas.ndim != 1:
        raise AmassFormatError(path, f"key 'betas' has shape {betas.shape}, expected (B,)")
    return _check_real(path, "betas", betas)


def _check_real(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    require_real(path, key, value)
    if value.shape[0] == 0:
        raise AmassFormatError(path, f"key '{key}' is empty, expected at least one coefficient")
    return value


def _read_fps(path: Path, keys: Keys, default_fps: float | None) -> float:
    for key in FRAME_RATE_KEYS:
        if key in keys:
            value = keys.get(key)
            if value.size != 1 or value.dtype.kind not in "iuf":
                raise AmassFormatError(
                    path, f"key '{key}' is {value!r}, expected one positive number"
                )
            fps = float(value.reshape(()))
            if not math.isfinite(fps) or fps <= 0:
                raise AmassFormatError(
                    path, f"key '{key}' is {fps}, expected a positive frame rate in Hz"
                )
            return fps
    if default_fps is not None:
        return float(default_fps)
    raise AmassFormatError(
        path,
        f"no frame rate (expected key {' or '.join(FRAME_RATE_KEYS)}); "
        "pass default_fps to assume one",
    )


def _read_gender(path: Path, keys: Keys) -> str:
    value = keys.get("gender")
    if value.size != 1 or value.dtype.kind not in "SU":
        raise AmassFormatError(
            path, f"key 'gender' is {value!r}, expected a string such as 'female'"
        )
    gender = gender_of(value)
    if gender is None:
        raw = value.reshape(()).item()
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        raise AmassFormatError(
            path, f"key 'gender' is {text!r}, expected one of {', '.join(GENDERS)}"
        )
    return gender
