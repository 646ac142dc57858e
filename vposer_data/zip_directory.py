"""The directory of a plain zip archive, parsed from the file mapped whole.

A plain archive has every member stored (not compressed), one disk, no comment, and its
central directory right before its end records, as ``np.savez`` writes it. Its members are
read here with exactly the values zipfile would read; anything else raises :class:`Fallback`,
so the caller can read the file with zipfile instead.
"""

from __future__ import annotations

import mmap
import os
import struct
import zipfile
from typing import NamedTuple

__all__ = ["LOCAL_HEADER", "Fallback", "Stored", "stored_members"]


class Fallback(Exception):
    """The fast reader met something it does not handle (the message says what); the
    reference path reads the file again, and reports any damage as it always has."""


#: Zip records (PKWARE APPNOTE 4.3) the fast reader parses: the local file header (signature
#: and the two lengths that place the data), a central directory entry, the end of central
#: directory record, and the zip64 end record with its locator.
LOCAL_HEADER = struct.Struct("<4s22xHH")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_EXTRA = struct.Struct("<HH")
_UTF8_NAMES = 0x800  # the only flag bit the fast reader accepts
#: zipfile refuses entries that need a newer version than this (its MAX_EXTRACT_VERSION).
_MAX_EXTRACT_VERSION = 63
_ZIP64_EXTRA = 0x0001


class Stored(NamedTuple):
    """A stored member as its central directory entry records it."""

    header_offset: int  # of its local file header
    size: int
    crc: int


def stored_members(data: mmap.mmap | bytes, base: int = 0) -> dict[str, Stored]:
    """The members of a plain archive by name, with the values zipfile reads for them.

    ``data`` holds the file from byte ``base`` to its end: the whole file mapped, or (``base``
    > 0) a tail read into memory, in which case the caller has checked that the file starts
    with a member; a directory that starts before the tail raises Fallback.

    numpy writes the same few plain entries every time; reading them here is much cheaper
    than zipfile's general parser. Raises Fallback for anything else: a comment,
    several disks, an archive inside a larger file, deflated or flagged members, names
    repeated or not decoding as zipfile decodes them, any inconsistency.
    """
    offset, count, stop = _directory_bounds(data, base)
    if offset < base:
        raise Fallback("the central directory starts before the bytes read")
    offset, stop = offset - base, stop - base  # positions in data from here on
    members: dict[str, Stored] = {}
    for _ in range(count):
        if offset + _CENTRAL.size > stop:
            raise Fallback("the central directory is shorter than its entries")
        fields = _CENTRAL.unpack_from(data, offset)
        signature, extract_version, flags, method = fields[0], fields[3], fields[5], fields[6]
        if signature != b"PK\x01\x02":
            raise Fallback(f"no central directory entry at offset {offset}")
        if flags & ~_UTF8_NAMES or method != zipfile.ZIP_STORED or fields[15] != 0:
            raise Fallback(f"a member with flags {flags:#x}, method {method}, on a disk")
        if extract_version > _MAX_EXTRACT_VERSION:
            raise Fallback(f"a member needing zip version {extract_version}")
        name_start = offset + _CENTRAL.size
        extra_start = name_start + fields[12]
        extra_stop = extra_start + fields[13]
        offset = extra_stop + fields[14]  # past the entry's comment
        if offset > stop:
            raise Fallback("a central directory entry runs past the directory")
        name = _member_name(data[name_start:extra_start], flags)
        if name in members:
            raise Fallback(f"member {name} appears twice")
        size, header_offset = _zip64_fields(
            data[extra_start:extra_stop], file_size=fields[11], size=fields[10], at=fields[18]
        )
        members[name] = Stored(header_offset, size, fields[9])
    if offset != stop:
        raise Fallback("the central directory is longer than its entries")
    return members


def _directory_bounds(data: mmap.mmap | bytes, base: int = 0) -> tuple[int, int, int]:
    """(start, entry count, end), positions in the file, of the central directory of a plain
    archive: a zip starting the file, with its directory right before its end records and no
    comment. ``data`` holds the file from ``base`` on (see :func:`stored_members`)."""
    end = len(data) - _END.size  # in data
    if end < 4 or (base == 0 and data[:4] != b"PK\x03\x04"):
        raise Fallback("not a zip archive starting with a member")
    signature, disk, start_disk, disk_entries, count, size, start, comment_length = (
        _END.unpack_from(data, end)
    )
    if signature != b"PK\x05\x06" or comment_length or disk or start_disk:
        raise Fallback("no plain end of central directory record at the end")
    directory_end = base + end  # in the file
    locator = end - _END64_LOCATOR.size
    if locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        record = locator - _END64.size
        if record < 0:
            raise Fallback("a zip64 locator without its record")
        _, locator_disk, record_offset, disks = _END64_LOCATOR.unpack_from(data, locator)
        fields = _END64.unpack_from(data, record)
        if (
            fields[0] != b"PK\x06\x06"
            or (locator_disk, record_offset, disks) != (0, base + record, 1)
            or fields[1] != _END64.size - 12  # the record's size: no extensible data
            or fields[4:6] != (0, 0)  # this disk, the directory's disk
        ):
            raise Fallback("an unusual zip64 end of central directory record")
        disk_entries, count, size, start = fields[6:10]
        directory_end = base + record
    if disk_entries != count or start + size != directory_end:
        raise Fallback("the central directory is not right before its end record")
    return start, count, directory_end


def _member_name(raw: bytes, flags: int) -> str:
    """The member's name as zipfile decodes it; Fallback where zipfile would change or
    refuse it (a null byte, another OS's separator, bytes flagged UTF-8 that are not)."""
    try:
        name = raw.decode("utf-8" if flags & _UTF8_NAMES else "cp437")
    except UnicodeDecodeError:
        raise Fallback("a member name that does not decode") from None
    if "\x00" in name or (os.sep != "/" and os.sep in name):
        raise Fallback("a member name zipfile would change")
    return name


def _zip64_fields(extra: bytes, file_size: int, size: int, at: int) -> tuple[int, int]:
    """Size and local header offset once the zip64 extra field is applied, exactly as
    zipfile's ``ZipInfo._decodeExtra`` applies it (every zip64 field, in order)."""
    while len(extra) >= 4:
        kind, length = _EXTRA.unpack_from(extra)
        if length + 4 > len(extra):
            raise Fallback(f"a corrupt extra field {kind:04x}")
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
        raise Fallback("a corrupt zip64 extra field")
    return int.from_bytes(values[:8], "little")
