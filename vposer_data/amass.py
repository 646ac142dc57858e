"""Read one AMASS motion file into a normalized sequence.

AMASS ships three families of file (SMPL, SMPL+H, SMPL-X), told apart here by their keys and
the width of ``poses``, never by file name. Files are opened with ``allow_pickle=False`` and only
the keys we need are read, so SMPL-X files whose marker metadata are object arrays still load,
and a file that is really a pickle is refused without being unpickled.

Every member read is checked against the CRC-32 its zip directory entry records, over the
member's bytes as stored (``.npy`` header and data), whichever way it is read: zipfile checks
the members it reads, and the large stored members this module memory-maps are checked here.
A mismatch means the download is damaged, and is an :class:`AmassFormatError` naming the member.
"""

from __future__ import annotations

import io
import mmap
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vposer_data.checksums import crc32
from vposer_data.errors import VPoserDataError
from vposer_data.fields import pose_fields

__all__ = [
    "AmassFormatError",
    "AmassSequence",
    "NotAMotionError",
    "load_sequence",
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
#: Widths of the SMPL-X split keys, used when a file has them instead of ``poses``.
SPLIT_KEY_WIDTHS = pose_fields()
FRAME_RATE_KEYS = ("mocap_framerate", "mocap_frame_rate")
GENDERS = ("male", "female", "neutral")
#: File names AMASS uses for per-subject shape files, which hold no motion.
NON_MOTION_NAMES = ("shape.npz",)
NON_MOTION_SUFFIXES = ("_stagei.npz",)
#: Endings AMASS gives motion files: such a file without a pose key is damaged, not a non-motion.
MOTION_SUFFIXES = ("_poses.npz", "_stageii.npz")


class AmassFormatError(VPoserDataError, ValueError):
    """An AMASS file that cannot be used; the message names the file and what was expected."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class _DamagedMember(Exception):
    """A member whose bytes disagree with its CRC-32 or cannot be inflated: a damaged file."""


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
    name = Path(path).name
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
    path = Path(path)
    if is_non_motion_name(path):
        raise NotAMotionError(path, "a subject shape file, not a motion")
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            # numpy treats anything that is neither a zip nor a .npy as a pickle; say which
            if _starts_like_a_pickle(path):
                raise AmassFormatError(
                    path, "holds pickled data, which is never loaded (expected an .npz archive)"
                ) from None
            raise AmassFormatError(
                path, "not a readable .npz archive (neither a zip archive nor a .npy file)"
            ) from None
        raise AmassFormatError(path, f"not a readable .npz archive ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise AmassFormatError(path, _unreadable_reason(path, exc)) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise AmassFormatError(path, "holds a single array, expected an .npz archive of keys")
    with archive:
        return _read_archive(path, _KeyReader(path, archive), default_fps)


def _unreadable_reason(path: Path, exc: BaseException) -> str:
    """Why ``np.load`` failed, telling an empty file and a cut-short zip from other damage."""
    head: bytes | None = None
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        pass
    if head == b"":
        return "not a readable .npz archive: the file is empty (0 bytes)"
    if head == b"PK":
        return (
            f"not a readable .npz archive: a zip archive cut short (truncated) or damaged ({exc})"
        )
    return f"not a readable .npz archive ({exc})"


def _starts_like_a_pickle(path: Path) -> bool:
    """True when the file opens with the PROTO opcode of pickle protocol 2 and later."""
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x80"
    except OSError:
        return False


#: The header ``np.save`` writes for a plain array; anything else goes through numpy's parser.
_PLAIN_HEADER = re.compile(
    r"\{'descr': '([<>|=][a-zA-Z]\d*)', 'fortran_order': (True|False), "
    r"'shape': \(((?:\d+, )*\d+,?|)\), \}\s*"
)


def _array_header(
    buffer: bytes | mmap.mmap, start: int
) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset of the ``.npy`` array at ``start``.

    numpy parses a header with ``ast.literal_eval``, about 70 us each: a third of a second per
    2,000 AMASS files. The header ``np.save`` writes for a plain array is read here with one
    regular expression; any other header (structured dtypes, odd spacing) falls back to
    numpy's own parser, so the result is always numpy's.
    """
    magic = bytes(buffer[start : start + 8])
    if magic[:6] != np.lib.format.MAGIC_PREFIX:
        raise ValueError("not an .npy array (no magic string)")
    major = magic[6]
    size_bytes = 2 if major == 1 else 4
    if major not in (1, 2, 3):
        raise ValueError(f"unsupported .npy format version {major}.{magic[7]}")
    length = int.from_bytes(buffer[start + 8 : start + 8 + size_bytes], "little")
    begin = start + 8 + size_bytes
    raw = bytes(buffer[begin : begin + length])
    if len(raw) != length:
        raise ValueError("the .npy header is cut short")
    text = raw.decode("utf8" if major == 3 else "latin1")
    found = _PLAIN_HEADER.fullmatch(text)
    if found is not None:
        shape = tuple(int(n) for n in re.findall(r"\d+", found.group(3)))
        return shape, found.group(2) == "True", np.dtype(found.group(1)), begin + length
    stream = io.BytesIO(bytes(buffer[start : begin + length]))
    version = np.lib.format.read_magic(stream)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read(stream)
    return tuple(shape), bool(fortran), dtype, begin + length


class _KeyReader:
    """Reads single keys from an open archive, turning every failure into AmassFormatError."""

    def __init__(self, path: Path, archive: np.lib.npyio.NpzFile) -> None:
        self.path = path
        self.archive = archive
        self.keys = set(archive.files)
        self._names = set(archive.zip.namelist()) if archive.zip is not None else set()
        self._mapping: mmap.mmap | None = None

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def get(self, key: str) -> np.ndarray:
        if key not in self.keys:
            raise AmassFormatError(
                self.path, f"missing key '{key}' (keys present: {sorted(self.keys)})"
            )
        # np.savez names a key's member '<key>.npy'; np.load also reads members without it
        member = key if key in self._names else f"{key}.npy"
        try:
            mapped = self._map_stored(key, member)
            value = self._read_member(key, member) if mapped is None else mapped
        except _DamagedMember as exc:
            raise AmassFormatError(
                self.path,
                f"key '{key}' (member {member}) is damaged: {exc}; "
                "the file is damaged, download it again",
            ) from None
        except ValueError as exc:
            if "pickle" in str(exc) or "Object arrays" in str(exc):
                raise AmassFormatError(
                    self.path, f"key '{key}' is an object array, which is never unpickled"
                ) from None
            raise AmassFormatError(self.path, f"key '{key}' is unreadable ({exc})") from None
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise AmassFormatError(
                self.path, f"key '{key}' is unreadable, the archive looks truncated ({exc})"
            ) from None
        return np.asarray(value)

    def _read_member(self, key: str, member: str) -> np.ndarray:
        """A member read whole through zipfile, which checks its CRC-32 at the end of the
        member, then parsed. Reading it whole first means every byte is checked, the ``.npy``
        header too: ``np.load`` stops at the end of the array its header announces, so a
        damaged header announcing fewer elements would pass unchecked."""
        if self.archive.zip is None:
            return np.asarray(self.archive[key])
        try:
            data = self.archive.zip.read(member)
        except zipfile.BadZipFile as exc:
            if "CRC" in str(exc):
                raise _DamagedMember(f"CRC-32 mismatch ({exc})") from None
            raise
        except zlib.error as exc:
            raise _DamagedMember(f"its compressed data cannot be inflated ({exc})") from None
        if data[: len(np.lib.format.MAGIC_PREFIX)] != np.lib.format.MAGIC_PREFIX:
            raise ValueError(f"member {member} is not an .npy array")
        shape, fortran, dtype, offset = _array_header(data, 0)
        if dtype.hasobject:
            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
        end = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end > len(data):
            raise ValueError(
                f"member {member} holds {len(data) - offset} bytes of data, its header "
                f"announces {end - offset}"
            )
        order: Literal["C", "F"] = "F" if fortran else "C"
        return np.ndarray(shape, dtype=dtype, buffer=data, offset=offset, order=order)

    def _map_stored(self, key: str, member: str) -> np.ndarray | None:
        """An array stored uncompressed, memory-mapped where it lies in the archive.

        ``np.load`` copies a member through Python-level reads; Stage I keeps about a quarter
        of the frames, so mapping the array and copying only the kept rows saves a copy of
        every input, and small members skip zipfile's per-member overhead (most of the time
        of reading 2,000 files). None for deflated members (read by :meth:`_read_member`). The
        member's bounds are checked, so a truncated file is still an error, and so is its
        CRC-32, computed over the mapped bytes (one pass at memory speed, outside the GIL)
        before its header is parsed, so damage anywhere in the member reads as damage.
        """
        if self.archive.zip is None:
            return None
        info = self.archive.zip.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        mapping = self._map_file()
        local = mapping[info.header_offset : info.header_offset + 30]
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise OSError(f"no zip entry header at offset {info.header_offset}")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_length + extra_length
        stop = start + info.compress_size
        if stop > len(mapping):
            raise OSError(
                f"member {member} ends at byte {stop}, past the end of the file "
                f"({len(mapping)} bytes)"
            )
        with memoryview(mapping) as view, view[start:stop] as stored:
            crc = crc32(stored)
        if crc != info.CRC:
            raise _DamagedMember(
                f"CRC-32 mismatch (the zip directory records {info.CRC:08x}, "
                f"its {info.compress_size} bytes give {crc:08x})"
            )
        shape, fortran, dtype, offset = _array_header(mapping, start)
        if dtype.hasobject:
            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
        end = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end > stop:
            raise OSError(f"array data ends at byte {end}, past the end of the archive member")
        if end == offset:
            return None
        order: Literal["C", "F"] = "F" if fortran else "C"
        # the array keeps the mapping alive; it is unmapped when the last view is freed
        return np.ndarray(shape, dtype=dtype, buffer=mapping, offset=offset, order=order)

    def _map_file(self) -> mmap.mmap:
        """The whole file, mapped read-only once for all of its large members."""
        if self._mapping is None:
            with open(self.path, "rb") as handle:
                self._mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return self._mapping

    def numeric(self, key: str, ndim: int, width: int | None = None) -> np.ndarray:
        value = self.get(key)
        _require_real(self.path, key, value)
        if value.ndim != ndim or (width is not None and value.shape[-1] != width):
            expected = "(N,)" if ndim == 1 else f"(N, {width if width is not None else 'K'})"
            raise AmassFormatError(
                self.path, f"key '{key}' has shape {value.shape}, expected {expected}"
            )
        return value


def _read_archive(path: Path, keys: _KeyReader, default_fps: float | None) -> AmassSequence:
    if "poses" in keys:
        parts, family = _parts_from_poses(path, keys)
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
    for name, array in checked.items():
        if not _all_finite(array):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            raise AmassFormatError(
                path, f"key '{name}' has {bad} non-finite values (NaN or Inf), expected none"
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
    finite values can also give) needs the element-wise check."""
    if array.dtype.kind != "f":
        return True
    with np.errstate(all="ignore"):
        if np.isfinite(array.sum(dtype=np.float64)):
            return True
    return bool(np.isfinite(array).all())


def _parts_from_poses(path: Path, keys: _KeyReader) -> tuple[dict[str, np.ndarray], str]:
    poses = keys.numeric("poses", 2)
    width = poses.shape[1]
    family = FAMILY_BY_POSE_WIDTH.get(width)
    if family is None:
        known = ", ".join(f"{w} ({f})" for w, f in FAMILY_BY_POSE_WIDTH.items())
        raise AmassFormatError(path, f"'poses' has width {width}, expected one of {known}")
    return {name: poses[:, part] for name, part in POSE_SLICES[family].items()}, family


def _parts_from_split_keys(keys: _KeyReader) -> tuple[dict[str, np.ndarray], str]:
    parts = {
        name: keys.numeric(name, 2, width)
        for name, width in SPLIT_KEY_WIDTHS.items()
        if name in keys or name in ("root_orient", "pose_body")
    }
    if "pose_jaw" in parts or "pose_eye" in parts:
        family = "smplx"
    elif "pose_hand" in parts:
        family = "smplh"
    else:
        family = "smpl"
    return parts, family


def _read_betas(path: Path, keys: _KeyReader) -> np.ndarray:
    betas = keys.get("betas")
    if betas.ndim == 2 and betas.shape[0] == 1:
        betas = betas[0]
    if betas.ndim != 1:
        raise AmassFormatError(path, f"key 'betas' has shape {betas.shape}, expected (B,)")
    return _check_real(path, "betas", betas)


def _require_real(path: Path, key: str, value: np.ndarray) -> None:
    if value.dtype.kind not in "iuf":
        raise AmassFormatError(path, f"key '{key}' has dtype {value.dtype}, expected real numbers")


def _check_real(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    _require_real(path, key, value)
    if value.shape[0] == 0:
        raise AmassFormatError(path, f"key '{key}' is empty, expected at least one coefficient")
    return value


def _read_fps(path: Path, keys: _KeyReader, default_fps: float | None) -> float:
    for key in FRAME_RATE_KEYS:
        if key in keys:
            value = keys.get(key)
            if value.size != 1 or value.dtype.kind not in "iuf":
                raise AmassFormatError(
                    path, f"key '{key}' is {value!r}, expected one positive number"
                )
            fps = float(value.reshape(()))
            if not np.isfinite(fps) or fps <= 0:
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


def _read_gender(path: Path, keys: _KeyReader) -> str:
    value = keys.get("gender")
    if value.size != 1 or value.dtype.kind not in "SU":
        raise AmassFormatError(
            path, f"key 'gender' is {value!r}, expected a string such as 'female'"
        )
    raw = value.reshape(()).item()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    gender = str(raw).strip().lower()
    if gender not in GENDERS:
        raise AmassFormatError(
            path, f"key 'gender' is {str(raw)!r}, expected one of {', '.join(GENDERS)}"
        )
    return gender
