"""A first look at a plain ``.npz`` archive through a few small reads: its keys, the shape of
a key, a small key's array, its members' checksums.

Before a run that needs body models, every motion is looked at for its family and gender
(:func:`vposer_data.models_used.motion_model`): thousands of files, a few hundred bytes of
each. Mapping each file (:class:`vposer_data.npz_reader.MappedArchive`) costs page faults for
the pages touched, several times what reading those bytes costs; here the zip directory is
read from the file's tail, and each member from its local header, with ``os.pread``. What is
read is checked as the mapped reader checks it (the directory as zipfile would read it, local
headers, bounds, the CRC-32 of a member read whole); anything else raises
:class:`~vposer_data.zip_directory.Fallback`, and the caller reads the file the other way.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from types import TracebackType

import numpy as np

from vposer_data.npz_reader import array_header, remember_checksums, stored_array
from vposer_data.zip_directory import LOCAL_HEADER, Fallback, Stored, stored_members

__all__ = ["ArchiveGlance", "NotARegularFile"]

#: Bytes read from the end of a file: the directory of any motion file (about 60 bytes a
#: member) with its end records; a longer directory falls back.
_TAIL = 8192
#: Bytes read from a member's local header on for its ``.npy`` header: name, extra fields
#: and the header np.save writes (128 bytes) with room to spare; a longer one falls back.
_HEAD = 1024
#: The largest member read whole (a motion's gender is a few hundred bytes).
_SMALL = 1 << 16


class NotARegularFile(OSError):
    """A FIFO, device or folder named like an archive: no reader should open it (opening a
    FIFO to read waits for a writer)."""


class ArchiveGlance:
    """The directory of a plain archive, and small reads of its members, through one open
    descriptor (a context manager: closed on leaving)."""

    def __init__(
        self, path: Path, descriptor: int, status: os.stat_result, members: dict[str, Stored]
    ) -> None:
        self.path = path
        self.keys = {name.removesuffix(".npy") for name in members}
        self._fd = descriptor
        self._status = status
        self._members = members

    @classmethod
    def open(cls, path: Path) -> ArchiveGlance:
        """The archive's directory; Fallback when the file does not hold a plain archive whose
        directory lies in its last ``_TAIL`` bytes; NotARegularFile, or another OSError when it
        cannot be read."""
        # opened without blocking: a FIFO or device named .npz must not hang the scan
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode):
                raise NotARegularFile(f"{path} is not a regular file")
            size = status.st_size
            base = max(0, size - _TAIL)
            tail = os.pread(descriptor, size - base, base)
            head = tail[:4] if base == 0 else os.pread(descriptor, 4, 0)
            if len(tail) != size - base or head != b"PK\x03\x04":
                raise Fallback("not a zip archive starting with a member, or changing")
            try:
                members = stored_members(tail, base)
            except struct.error as exc:  # a damaged record pointing outside the bytes read
                raise Fallback(f"a damaged zip directory ({exc})") from None
        except BaseException:
            os.close(descriptor)
            raise
        return cls(path, descriptor, status, members)

    def __enter__(self) -> ArchiveGlance:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        os.close(self._fd)

    def keep_checksums(self) -> None:
        """Hand the members' checksums to :func:`vposer_data.npz_reader.member_checksums`
        (the run's input fingerprint reads them next: the directory is not read again)."""
        remember_checksums(self.path, self._status, self._members)

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of a key's array, from its ``.npy`` header alone."""
        data, _ = self._read(key, _HEAD)
        try:
            return array_header(data, 0)[0]
        except ValueError as exc:  # cut short by the read, or not a header numpy reads
            raise Fallback(f"key '{key}': {exc}") from None

    def get(self, key: str) -> np.ndarray:
        """A small key's array, its member read whole and checked as the mapped reader checks
        it (:func:`~vposer_data.npz_reader.stored_array`)."""
        data, member = self._read(key, _SMALL)
        if len(data) != member.size:
            raise Fallback(f"key '{key}' is larger than a glance reads")
        try:
            array = stored_array(data, 0, len(data), member)
        except Exception as exc:  # the mapped reader, or the reference path, says what
            raise Fallback(f"key '{key}': {exc!r}") from None
        if array is None:
            raise Fallback(f"key '{key}' holds no data")
        return array

    def _read(self, key: str, limit: int) -> tuple[bytes, Stored]:
        """The first ``limit`` bytes of a key's member (fewer when it is smaller), and the
        member, its local header checked as the mapped reader checks it."""
        member = self._members.get(key if key in self._members else f"{key}.npy")
        if member is None:
            raise Fallback(f"no member for key '{key}'")
        at, size = member.header_offset, self._status.st_size
        want = min(member.size, limit)
        raw = os.pread(self._fd, LOCAL_HEADER.size + 512 + want, at)
        try:
            signature, name_length, extra_length = LOCAL_HEADER.unpack_from(raw, 0)
        except struct.error:
            raise Fallback(f"no zip entry header at offset {at}") from None
        if signature != b"PK\x03\x04":
            raise Fallback(f"no zip entry header at offset {at}")
        start = LOCAL_HEADER.size + name_length + extra_length
        if at + start + member.size > size:
            raise Fallback(f"member of key '{key}' ends past the end of the file")
        if start + want > len(raw):  # long names or extra fields: read where the data starts
            raw = os.pread(self._fd, want, at + start)
            start = 0
        return raw[start : start + want], member
