"""Read arrays from ``.npz`` archives (zip files of ``.npy`` members) safely and checked.

Archives are opened with ``allow_pickle=False`` and only the keys asked for are read, so an
archive whose other members are object arrays still loads, and a file that is really a
pickle is refused without being unpickled. Every member read is checked against the CRC-32
its zip directory entry records, over the member's bytes as stored (``.npy`` header and data):
zipfile checks the members it reads, and the stored members mapped here are checked here.
A mismatch is a :class:`NpzFormatError` naming the member.

Two ways to read an archive's keys, with the same results:

- :class:`MappedArchive`: a plain archive (every member stored, one disk, no comment, as
  ``np.savez`` writes it) has its zip directory parsed here from the file mapped whole, and
  each member mapped where it lies. Anything else, or any member that does not read cleanly,
  raises :class:`Fallback`.
- :func:`numpy_archive`: ``np.load`` and zipfile, the reference, which gives every result and
  every error message (large stored members are still mapped, and checked here).

Why the fast path and what it saves: docs/notes/reading-performance.md.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np

from vposer_data.checksums import crc32
from vposer_data.errors import FileFormatError
from vposer_data.zip_directory import LOCAL_HEADER, Fallback, Stored, stored_members

__all__ = [
    "Fallback",
    "KeyReader",
    "Keys",
    "MappedArchive",
    "NpzFormatError",
    "array_header",
    "member_checksums",
    "numpy_archive",
    "remember_checksums",
    "require_real",
    "stored_array",
    "stored_members",
]


class NpzFormatError(FileFormatError):
    """An archive, or a key of it, that cannot be read; the message names the file."""


class _DamagedMember(Exception):
    """A member whose bytes disagree with its CRC-32 or cannot be inflated: a damaged file."""


#: Member checksums this process has read, by the file's identity (path, device, inode, size,
#: modification and change times): a run that looks at every motion for its body model reads
#: each zip directory once (MappedArchive.keep_checksums), and its input fingerprints take the
#: checksums from here.
_CHECKSUMS: dict[tuple[str, int, int, int, int, int], list[tuple[str, int]]] = {}
_CHECKSUMS_KEPT = 1 << 16  # files (AMASS has 17k): a few MB at most


def _identity(path: str | Path, status: os.stat_result) -> tuple[str, int, int, int, int, int]:
    return (
        os.fspath(path),
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )


def remember_checksums(
    path: str | Path, status: os.stat_result, members: dict[str, Stored]
) -> None:
    """Keep what a parse of the file's directory (its state ``status``) found, for
    :func:`member_checksums`."""
    if len(_CHECKSUMS) >= _CHECKSUMS_KEPT:
        _CHECKSUMS.clear()
    _CHECKSUMS[_identity(path, status)] = sorted((name, m.crc) for name, m in members.items())


def member_checksums(path: str | Path) -> list[tuple[str, int]] | None:
    """(name, CRC-32) of every member, as the file's zip central directory records them,
    sorted; None when the file is not a readable zip archive.

    Only the end records and the directory are read (a few KB), never a member: this is how
    a file's content is recognised cheaply after a copy that did not keep its modification
    time (``vposer_data.inputs``). A file whose directory this process has already read, and
    which has not changed since (same inode, size and times), is not read again.
    """
    try:
        # opened without blocking: a FIFO or device named .npz is no zip, and must not hang
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                return None
            known = _CHECKSUMS.get(_identity(path, status))
            if known is not None:
                return list(known)
            with zipfile.ZipFile(handle) as archive:
                return sorted((info.filename, info.CRC) for info in archive.infolist())
    except (OSError, ValueError, NotImplementedError, zipfile.BadZipFile):
        return None  # unreadable, not a zip, or a directory zipfile refuses


@contextmanager
def numpy_archive(path: Path) -> Iterator[KeyReader]:
    """The reference path: ``np.load`` and zipfile parse the archive, and every failure is
    turned into the :class:`NpzFormatError` that names it."""
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            # numpy treats anything that is neither a zip nor a .npy as a pickle; say which
            if _starts_like_a_pickle(path):
                raise NpzFormatError(
                    path, "holds pickled data, which is never loaded (expected an .npz archive)"
                ) from None
            raise NpzFormatError(
                path, "not a readable .npz archive (neither a zip archive nor a .npy file)"
            ) from None
        raise NpzFormatError(path, f"not a readable .npz archive ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise NpzFormatError(path, _unreadable_reason(path, exc)) from None
    except NotImplementedError as exc:  # zipfile: an entry asks for a newer zip version
        raise NpzFormatError(
            path,
            f"not a readable .npz archive ({exc}): numpy never writes such entries; the "
            "file is damaged, or was rewritten by another zip tool",
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise NpzFormatError(path, "holds a single array, expected an .npz archive of keys")
    with archive:
        yield KeyReader(path, archive)


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


def array_header(
    buffer: bytes | mmap.mmap, start: int
) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset of the ``.npy`` array at ``start``.

    numpy parses a header with ``ast.literal_eval``, which is slow; the header ``np.save``
    writes for a plain array is read here with one regular expression, and any other header
    (structured dtypes, odd spacing) goes to numpy's own parser, so the result is numpy's.
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


class Keys:
    """The keys of one archive, each read as an array; subclasses say how keys are read."""

    path: Path
    keys: set[str]

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def get(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def numeric(self, key: str, ndim: int, width: int | None = None) -> np.ndarray:
        value = self.get(key)
        require_real(self.path, key, value)
        if value.ndim != ndim or (width is not None and value.shape[-1] != width):
            expected = "(N,)" if ndim == 1 else f"(N, {width if width is not None else 'K'})"
            raise NpzFormatError(
                self.path, f"key '{key}' has shape {value.shape}, expected {expected}"
            )
        return value


class KeyReader(Keys):
    """Reads single keys from an open archive, turning every failure into NpzFormatError."""

    def __init__(self, path: Path, archive: np.lib.npyio.NpzFile) -> None:
        self.path = path
        self.archive = archive
        self.keys = set(archive.files)
        self._names = set(archive.zip.namelist()) if archive.zip is not None else set()
        self._mapping: mmap.mmap | None = None

    def get(self, key: str) -> np.ndarray:
        if key not in self.keys:
            raise NpzFormatError(
                self.path, f"missing key '{key}' (keys present: {sorted(self.keys)})"
            )
        # np.savez names a key's member '<key>.npy'; np.load also reads members without it
        member = key if key in self._names else f"{key}.npy"
        try:
            mapped = self._map_stored(key, member)
            value = self._read_member(key, member) if mapped is None else mapped
        except _DamagedMember as exc:
            raise NpzFormatError(
                self.path,
                f"key '{key}' (member {member}) is damaged: {exc}; "
                "the file is damaged, download it again",
            ) from None
        except ValueError as exc:
            if "pickle" in str(exc) or "Object arrays" in str(exc):
                raise NpzFormatError(
                    self.path, f"key '{key}' is an object array, which is never unpickled"
                ) from None
            raise NpzFormatError(self.path, f"key '{key}' is unreadable ({exc})") from None
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise NpzFormatError(
                self.path, f"key '{key}' is unreadable, the archive looks truncated ({exc})"
            ) from None
        except (NotImplementedError, RuntimeError) as exc:  # zipfile: a method or flag it refuses
            raise NpzFormatError(
                self.path,
                f"key '{key}' (member {member}) is unreadable ({exc}): its zip directory entry "
                "asks for a compression method or encryption numpy never writes; the file is "
                "damaged, download it again",
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
        shape, fortran, dtype, offset = array_header(data, 0)
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
        (:func:`map_member`, as the fast path maps it); small members skip zipfile's
        per-member overhead. None for deflated members (read by :meth:`_read_member`)."""
        if self.archive.zip is None:
            return None
        info = self.archive.zip.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        stored = Stored(info.header_offset, info.compress_size, info.CRC)
        return map_member(self._map_file(), member, stored)

    def _map_file(self) -> mmap.mmap:
        """The whole file, mapped read-only once for all of its large members."""
        if self._mapping is None:
            with open(self.path, "rb") as handle:
                self._mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return self._mapping


def _member_bounds(mapping: mmap.mmap, name: str, member: Stored) -> tuple[int, int]:
    """Where a stored member's bytes start and stop in the archive (after its local header)."""
    at = member.header_offset
    if at < 0 or at + LOCAL_HEADER.size > len(mapping):  # negative: a damaged zip64 directory
        raise OSError(f"no zip entry header at offset {at}")
    signature, name_length, extra_length = LOCAL_HEADER.unpack_from(mapping, at)
    if signature != b"PK\x03\x04":
        raise OSError(f"no zip entry header at offset {at}")
    start = at + LOCAL_HEADER.size + name_length + extra_length
    stop = start + member.size
    if stop > len(mapping):
        raise OSError(
            f"member {name} ends at byte {stop}, past the end of the file ({len(mapping)} bytes)"
        )
    return start, stop


def map_member(mapping: mmap.mmap, name: str, member: Stored) -> np.ndarray | None:
    """An array stored uncompressed, memory-mapped where it lies in the archive, or None when
    it holds no data.

    ``np.load`` copies a member through Python-level reads; a caller that uses part of an
    array then copies only that part. The member's bounds are checked, so a truncated file is
    still an error, and so are its bytes (:func:`stored_array`).
    """
    start, stop = _member_bounds(mapping, name, member)
    # the array keeps the mapping alive; it is unmapped when the last view is freed
    return stored_array(mapping, start, stop, member)


def stored_array(
    buffer: mmap.mmap | bytes, start: int, stop: int, member: Stored
) -> np.ndarray | None:
    """The array a stored member's bytes ``buffer[start:stop]`` hold (a view of ``buffer``), or
    None when it holds no data. Its CRC-32 is computed over those bytes before its header is
    parsed, so damage anywhere in the member reads as damage; an object array, or data past
    the member, is refused."""
    with memoryview(buffer) as view, view[start:stop] as stored:
        crc = crc32(stored)
    if crc != member.crc:
        raise _DamagedMember(
            f"CRC-32 mismatch (the zip directory records {member.crc:08x}, "
            f"its {member.size} bytes give {crc:08x})"
        )
    shape, fortran, dtype, offset = array_header(buffer, start)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    end = offset + math.prod(shape) * dtype.itemsize
    if end > stop:
        raise OSError(f"array data ends at byte {end}, past the end of the archive member")
    if end == offset:
        return None
    order: Literal["C", "F"] = "F" if fortran else "C"
    return np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset, order=order)


class MappedArchive(Keys):
    """The keys of a plain archive, read from the file mapped whole: no zipfile, one mapping.

    Every member read is checked as the reference path checks it (local header, bounds,
    CRC-32 over its stored bytes, ``.npy`` header, data within the member); anything that
    does not read cleanly raises Fallback, so that the reference path gives its own error.
    """

    def __init__(
        self, path: Path, data: mmap.mmap, members: dict[str, Stored], status: os.stat_result
    ) -> None:
        self.path = path
        self.keys = {name.removesuffix(".npy") for name in members}
        self._data = data
        self._members = members
        self._status = status  # the file's state when it was mapped

    def keep_checksums(self) -> None:
        """Hand the members' checksums to :func:`member_checksums` (for a caller whose run
        fingerprints the same file next: the directory is then not read again)."""
        remember_checksums(self.path, self._status, self._members)

    @classmethod
    def open(cls, path: Path) -> MappedArchive | None:
        """The archive, or None when the file cannot be mapped or is not a plain archive."""
        try:
            with open(path, "rb") as handle:
                status = os.fstat(handle.fileno())
                data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # unreadable, or empty (nothing to map)
            return None
        try:
            members = stored_members(data)
        except (Fallback, struct.error):
            data.close()
            return None
        return cls(path, data, members, status)

    def get(self, key: str) -> np.ndarray:
        # np.savez names a key's member '<key>.npy'; np.load also reads members without it
        member = self._members.get(key if key in self._members else f"{key}.npy")
        if member is None:
            raise Fallback(f"no member for key '{key}'")
        try:
            array = map_member(self._data, key, member)
        except Exception as exc:  # the reference path reports it precisely
            raise Fallback(f"key '{key}': {exc!r}") from None
        if array is None:  # an empty array: the reference path reads it through zipfile
            raise Fallback(f"key '{key}' holds no data")
        return array

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of a key's array from its ``.npy`` header alone (no data read or checked:
        a first look, such as a family from the width of ``poses``)."""
        member = self._members.get(key if key in self._members else f"{key}.npy")
        if member is None:
            raise Fallback(f"no member for key '{key}'")
        try:
            start, _ = _member_bounds(self._data, key, member)
            return array_header(self._data, start)[0]
        except (OSError, ValueError) as exc:
            raise Fallback(f"key '{key}': {exc!r}") from None


def require_real(path: Path, key: str, value: np.ndarray) -> None:
    if value.dtype.kind not in "iuf":
        raise NpzFormatError(path, f"key '{key}' has dtype {value.dtype}, expected real numbers")
