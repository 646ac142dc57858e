"""Read one AMASS motion file into a normalized sequence.

AMASS ships three families of file (SMPL, SMPL+H, SMPL-X), told apart here by their keys and
the width of ``poses``, never by file name. Files are opened with ``allow_pickle=False`` and only
the keys we need are read, so SMPL-X files whose marker metadata are object arrays still load,
and a file that is really a pickle is refused without being unpickled.

Every member read is checked against the CRC-32 its zip directory entry records, over the
member's bytes as stored (``.npy`` header and data), whichever way it is read: zipfile checks
the members it reads, and the large stored members this module memory-maps are checked here.
A mismatch means the download is damaged, and is an :class:`AmassFormatError` naming the member.

Most files are plain archives (every member stored, one disk, no comment), as ``np.savez``
writes them: their zip directory is read here straight from the memory-mapped file, which is
most of what makes a file cheap to read. Anything else, and any member that does not read
cleanly, sends the file to the reference path (``np.load`` and zipfile), which gives every
result and every error message; the fast path only ever gives the same result sooner.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from vposer_data.checksums import crc32
from vposer_data.errors import VPoserDataError
from vposer_data.fields import pose_fields

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


class AmassFormatError(VPoserDataError, ValueError):
    """An AMASS file that cannot be used; the message names the file and what was expected."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # whole when raised in a reader process
        return (type(self), (self.path, self.problem))


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


def member_checksums(path: str | Path) -> list[tuple[str, int]] | None:
    """(name, CRC-32) of every member, as the file's zip central directory records them,
    sorted; None when the file is not a readable zip archive.

    Only the end records and the directory are read (a few KB), never a member: this is how
    a file's content is recognised cheaply after a copy that did not keep its modification
    time (``vposer_data.inputs``).
    """
    try:
        # opened without blocking: a FIFO or device named .npz is no zip, and must not hang
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            with zipfile.ZipFile(handle) as archive:
                return sorted((info.filename, info.CRC) for info in archive.infolist())
    except (OSError, ValueError, NotImplementedError, zipfile.BadZipFile):
        return None  # unreadable, not a zip, or a directory zipfile refuses


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
    mapped = _MappedArchive.open(path)
    if mapped is not None:
        try:
            return _read_archive(path, mapped, default_fps)
        except _Fallback:
            pass  # something unusual: the reference path reads the file again and says what
    return _load_with_numpy(path, default_fps)


def _load_with_numpy(path: Path, default_fps: float | None) -> AmassSequence:
    """The reference path: ``np.load`` and zipfile parse the archive, and every failure is
    turned into the :class:`AmassFormatError` that names it."""
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
_DIGITS = re.compile(r"\d+")


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
        shape = tuple(map(int, _DIGITS.findall(found.group(3))))
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


class _Keys:
    """The keys of one archive, each read as an array; subclasses say how keys are read."""

    path: Path
    keys: set[str]

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def get(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def numeric(self, key: str, ndim: int, width: int | None = None) -> np.ndarray:
        value = self.get(key)
        _require_real(self.path, key, value)
        if value.ndim != ndim or (width is not None and value.shape[-1] != width):
            expected = "(N,)" if ndim == 1 else f"(N, {width if width is not None else 'K'})"
            raise AmassFormatError(
                self.path, f"key '{key}' has shape {value.shape}, expected {expected}"
            )
        return value


class _KeyReader(_Keys):
    """Reads single keys from an open archive, turning every failure into AmassFormatError."""

    def __init__(self, path: Path, archive: np.lib.npyio.NpzFile) -> None:
        self.path = path
        self.archive = archive
        self.keys = set(archive.files)
        self._names = set(archive.zip.namelist()) if archive.zip is not None else set()
        self._mapping: mmap.mmap | None = None

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
        """An array stored uncompressed, memory-mapped where it lies in the archive
        (:func:`_map_member`, as the fast path maps it); small members skip zipfile's
        per-member overhead. None for deflated members (read by :meth:`_read_member`)."""
        if self.archive.zip is None:
            return None
        info = self.archive.zip.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        stored = _Stored(info.header_offset, info.compress_size, info.CRC)
        return _map_member(self._map_file(), member, stored)

    def _map_file(self) -> mmap.mmap:
        """The whole file, mapped read-only once for all of its large members."""
        if self._mapping is None:
            with open(self.path, "rb") as handle:
                self._mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return self._mapping


class _Fallback(Exception):
    """The fast reader met something it does not handle (the message says what); the
    reference path reads the file again, and reports any damage as it always has."""


#: Zip records (PKWARE APPNOTE 4.3) the fast reader parses: the local file header (signature
#: and the two lengths that place the data), a central directory entry, the end of central
#: directory record, and the zip64 end record with its locator.
_LOCAL = struct.Struct("<4s22xHH")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_EXTRA = struct.Struct("<HH")
_UTF8_NAMES = 0x800  # the only flag bit the fast reader accepts
#: zipfile refuses entries that need a newer version than this (its MAX_EXTRACT_VERSION).
_MAX_EXTRACT_VERSION = 63
_ZIP64_EXTRA = 0x0001


class _Stored(NamedTuple):
    """A stored member as its central directory entry records it."""

    header_offset: int  # of its local file header
    size: int
    crc: int


def _stored_members(data: mmap.mmap) -> dict[str, _Stored]:
    """The members of a plain archive by name, with the values zipfile reads for them.

    zipfile, under ``np.load``, spends about 0.2 ms a file reading the directory, a fifth of
    the time of reading an AMASS file; numpy writes the same few plain entries every time,
    and this reads them in a fraction of that. Raises _Fallback for anything else: a comment,
    several disks, an archive inside a larger file, deflated or flagged members, names
    repeated or not decoding as zipfile decodes them, any inconsistency.
    """
    offset, count, stop = _directory_bounds(data)
    members: dict[str, _Stored] = {}
    for _ in range(count):
        if offset + _CENTRAL.size > stop:
            raise _Fallback("the central directory is shorter than its entries")
        fields = _CENTRAL.unpack_from(data, offset)
        signature, extract_version, flags, method = fields[0], fields[3], fields[5], fields[6]
        if signature != b"PK\x01\x02":
            raise _Fallback(f"no central directory entry at offset {offset}")
        if flags & ~_UTF8_NAMES or method != zipfile.ZIP_STORED or fields[15] != 0:
            raise _Fallback(f"a member with flags {flags:#x}, method {method}, on a disk")
        if extract_version > _MAX_EXTRACT_VERSION:
            raise _Fallback(f"a member needing zip version {extract_version}")
        name_start = offset + _CENTRAL.size
        extra_start = name_start + fields[12]
        extra_stop = extra_start + fields[13]
        offset = extra_stop + fields[14]  # past the entry's comment
        if offset > stop:
            raise _Fallback("a central directory entry runs past the directory")
        name = _member_name(data[name_start:extra_start], flags)
        if name in members:
            raise _Fallback(f"member {name} appears twice")
        size, header_offset = _zip64_fields(
            data[extra_start:extra_stop], file_size=fields[11], size=fields[10], at=fields[18]
        )
        members[name] = _Stored(header_offset, size, fields[9])
    if offset != stop:
        raise _Fallback("the central directory is longer than its entries")
    return members


def _directory_bounds(data: mmap.mmap) -> tuple[int, int, int]:
    """(start, entry count, end) of the central directory of a plain archive: a zip starting
    the file, with its directory right before its end records and no comment."""
    end = len(data) - _END.size
    if end < 4 or data[:4] != b"PK\x03\x04":
        raise _Fallback("not a zip archive starting with a member")
    signature, disk, start_disk, disk_entries, count, size, start, comment_length = (
        _END.unpack_from(data, end)
    )
    if signature != b"PK\x05\x06" or comment_length or disk or start_disk:
        raise _Fallback("no plain end of central directory record at the end")
    locator = end - _END64_LOCATOR.size
    if locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        record = locator - _END64.size
        if record < 0:
            raise _Fallback("a zip64 locator without its record")
        _, locator_disk, record_offset, disks = _END64_LOCATOR.unpack_from(data, locator)
        fields = _END64.unpack_from(data, record)
        if (
            fields[0] != b"PK\x06\x06"
            or (locator_disk, record_offset, disks) != (0, record, 1)
            or fields[1] != _END64.size - 12  # the record's size: no extensible data
            or fields[4:6] != (0, 0)  # this disk, the directory's disk
        ):
            raise _Fallback("an unusual zip64 end of central directory record")
        disk_entries, count, size, start = fields[6:10]
        end = record
    if disk_entries != count or start + size != end:
        raise _Fallback("the central directory is not right before its end record")
    return start, count, end


def _member_name(raw: bytes, flags: int) -> str:
    """The member's name as zipfile decodes it; _Fallback where zipfile would change or
    refuse it (a null byte, another OS's separator, bytes flagged UTF-8 that are not)."""
    try:
        name = raw.decode("utf-8" if flags & _UTF8_NAMES else "cp437")
    except UnicodeDecodeError:
        raise _Fallback("a member name that does not decode") from None
    if "\x00" in name or (os.sep != "/" and os.sep in name):
        raise _Fallback("a member name zipfile would change")
    return name


def _zip64_fields(extra: bytes, file_size: int, size: int, at: int) -> tuple[int, int]:
    """Size and local header offset once the zip64 extra field is applied, exactly as
    zipfile's ``ZipInfo._decodeExtra`` applies it (every zip64 field, in order)."""
    while len(extra) >= 4:
        kind, length = _EXTRA.unpack_from(extra)
        if length + 4 > len(extra):
            raise _Fallback(f"a corrupt extra field {kind:04x}")
        if kind == _ZIP64_EXTRA:
            values = extra[4 : length + 4]
            if file_size in (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF):
                file_size, values = _take_u64(values), values[8:]
            if size == 0xFFFF_FFFF:
                size, values = _take_u64(values), values[8:]
            if at == 0xFFFF_FFFF:
                at = _take_u64(values)
        extra = extra[length + 4 :]
    return size, at


def _take_u64(values: bytes) -> int:
    """The little-endian 64-bit value a zip64 extra field starts with."""
    if len(values) < 8:
        raise _Fallback("a corrupt zip64 extra field")
    return int.from_bytes(values[:8], "little")


def _map_member(mapping: mmap.mmap, name: str, member: _Stored) -> np.ndarray | None:
    """An array stored uncompressed, memory-mapped where it lies in the archive, or None when
    it holds no data.

    ``np.load`` copies a member through Python-level reads; Stage I keeps about a quarter of
    the frames, so mapping the array and copying only the kept rows saves a copy of every
    input. The member's bounds are checked, so a truncated file is still an error, and so is
    its CRC-32, computed over the mapped bytes (one pass at memory speed, outside the GIL)
    before its header is parsed, so damage anywhere in the member reads as damage.
    """
    at = member.header_offset
    if at + _LOCAL.size > len(mapping):
        raise OSError(f"no zip entry header at offset {at}")
    signature, name_length, extra_length = _LOCAL.unpack_from(mapping, at)
    if signature != b"PK\x03\x04":
        raise OSError(f"no zip entry header at offset {at}")
    start = at + _LOCAL.size + name_length + extra_length
    stop = start + member.size
    if stop > len(mapping):
        raise OSError(
            f"member {name} ends at byte {stop}, past the end of the file ({len(mapping)} bytes)"
        )
    with memoryview(mapping) as view, view[start:stop] as stored:
        crc = crc32(stored)
    if crc != member.crc:
        raise _DamagedMember(
            f"CRC-32 mismatch (the zip directory records {member.crc:08x}, "
            f"its {member.size} bytes give {crc:08x})"
        )
    shape, fortran, dtype, offset = _array_header(mapping, start)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    end = offset + math.prod(shape) * dtype.itemsize
    if end > stop:
        raise OSError(f"array data ends at byte {end}, past the end of the archive member")
    if end == offset:
        return None
    order: Literal["C", "F"] = "F" if fortran else "C"
    # the array keeps the mapping alive; it is unmapped when the last view is freed
    return np.ndarray(shape, dtype=dtype, buffer=mapping, offset=offset, order=order)


class _MappedArchive(_Keys):
    """The keys of a plain archive, read from the file mapped whole: no zipfile, one mapping.

    Every member read is checked as the reference path checks it (local header, bounds,
    CRC-32 over its stored bytes, ``.npy`` header, data within the member); anything that
    does not read cleanly raises _Fallback, so that the reference path gives its own error.
    """

    def __init__(self, path: Path, data: mmap.mmap, members: dict[str, _Stored]) -> None:
        self.path = path
        self.keys = {name.removesuffix(".npy") for name in members}
        self._data = data
        self._members = members

    @classmethod
    def open(cls, path: Path) -> _MappedArchive | None:
        """The archive, or None when the file cannot be mapped or is not a plain archive."""
        try:
            with open(path, "rb") as handle:
                data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # unreadable, or empty (nothing to map)
            return None
        try:
            return cls(path, data, _stored_members(data))
        except (_Fallback, struct.error):
            data.close()
            return None

    def get(self, key: str) -> np.ndarray:
        # np.savez names a key's member '<key>.npy'; np.load also reads members without it
        member = self._members.get(key if key in self._members else f"{key}.npy")
        if member is None:
            raise _Fallback(f"no member for key '{key}'")
        try:
            array = _map_member(self._data, key, member)
        except Exception as exc:  # the reference path reports it precisely
            raise _Fallback(f"key '{key}': {exc!r}") from None
        if array is None:  # an empty array: the reference path reads it through zipfile
            raise _Fallback(f"key '{key}' holds no data")
        return array


def _read_archive(path: Path, keys: _Keys, default_fps: float | None) -> AmassSequence:
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


def _parts_from_poses(path: Path, keys: _Keys) -> tuple[dict[str, np.ndarray], str, np.ndarray]:
    """The body parts, the family, and the columns of ``poses`` the parts use, in one array.

    The parts are strided column slices; checking them for non-finite values one by one costs
    a strided pass each, about twice one contiguous pass over ``poses`` (SMPL+H, SMPL-X: the
    parts are every column). SMPL's parts leave columns 66:72 out, which stay unchecked.
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


def _parts_from_split_keys(keys: _Keys) -> tuple[dict[str, np.ndarray], str]:
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


def _read_betas(path: Path, keys: _Keys) -> np.ndarray:
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


def _read_fps(path: Path, keys: _Keys, default_fps: float | None) -> float:
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


def _read_gender(path: Path, keys: _Keys) -> str:
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
