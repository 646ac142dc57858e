"""CRC-32 (the zip checksum): python-isal's when it is installed (several times faster), else
zlib's; both release the GIL.

Also the arithmetic of CRC-32 over byte strings never held whole: the CRC of two pieces joined
(:func:`crc32_combine`), of a run of zero bytes (:func:`crc32_zeros`), and the four bytes that
give a run of zero bytes a chosen CRC (:func:`crc32_forge_tail`). CRC-32 is linear over GF(2):
appending ``n`` zero bytes maps the register by a fixed 32x32 bit matrix, whose powers of two
are kept (as in zlib's ``crc32_combine``).

And the checksums of whole files the manifest records: :func:`file_sha256` (final files) and
:func:`file_crc32` (intermediates)."""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
from pathlib import Path

from vposer_data.interrupts import check

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib's gives the same values
    from zlib import crc32

__all__ = [
    "crc32",
    "crc32_combine",
    "crc32_forge_tail",
    "crc32_zeros",
    "file_crc32",
    "file_sha256",
]

_POLY = 0xEDB88320  # CRC-32's polynomial, bit-reversed
_MASK = 0xFFFFFFFF
#: A linear map of 32-bit registers: the images of bits 0..31.
_Operator = tuple[int, ...]


def _apply(operator: _Operator, vector: int) -> int:
    result, bit = 0, 0
    while vector:
        if vector & 1:
            result ^= operator[bit]
        vector >>= 1
        bit += 1
    return result


@functools.cache
def _zeros_operator(power: int) -> _Operator:
    """How the CRC register changes over ``2**power`` zero bytes."""
    if power == 0:  # one zero byte: eight shifts of the register
        images = []
        for bit in range(32):
            register = 1 << bit
            for _ in range(8):
                register = (register >> 1) ^ (_POLY if register & 1 else 0)
            images.append(register)
        return tuple(images)
    half = _zeros_operator(power - 1)
    return tuple(_apply(half, image) for image in half)


def _shift(register: int, length: int) -> int:
    """The register after ``length`` zero bytes."""
    power = 0
    while length:
        if length & 1:
            register = _apply(_zeros_operator(power), register)
        length >>= 1
        power += 1
    return register


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)``."""
    return _shift(crc1, length2) ^ crc2


def crc32_zeros(length: int, value: int = 0) -> int:
    """``crc32(bytes(length), value)``, without the bytes."""
    return _shift(value ^ _MASK, length) ^ _MASK


@functools.cache
def _tail_columns() -> tuple[int, ...]:
    """What each of the 32 bits of four appended bytes does to a zero register."""
    return tuple(crc32((1 << bit).to_bytes(4, "little"), _MASK) ^ _MASK for bit in range(32))


def crc32_forge_tail(value: int, target: int) -> bytes:
    """The four bytes ``tail`` with ``crc32(tail, value) == target``: a stand-in of zero bytes
    ending with them has the CRC-32 ``target`` (there is exactly one such ``tail``)."""
    # the register after the tail is shift(register before, 4) ^ T(tail), T linear and
    # invertible: solve T(tail) = wanted by elimination over GF(2)
    wanted = (target ^ _MASK) ^ _shift(value ^ _MASK, 4)
    basis: dict[int, tuple[int, int]] = {}  # leading bit -> (image, tail bits giving it)
    for bit, column in enumerate(_tail_columns()):
        image, combination = column, 1 << bit
        while image:
            lead = image.bit_length() - 1
            if lead not in basis:
                basis[lead] = (image, combination)
                break
            image ^= basis[lead][0]
            combination ^= basis[lead][1]
    tail = 0
    for lead in sorted(basis, reverse=True):
        image, combination = basis[lead]
        if wanted >> lead & 1:
            wanted ^= image
            tail ^= combination
    if wanted:  # pragma: no cover - the map is invertible (CRC-32 detects 32-bit bursts)
        raise ArithmeticError("no four bytes give this CRC-32")
    forged = tail.to_bytes(4, "little")
    if crc32(forged, value) != target:  # pragma: no cover - checked, not assumed
        raise ArithmeticError("forged CRC-32 tail does not check")
    return forged


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, as hex digits: the checksum of final files."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_crc32(path: str | Path, window: int = 1 << 26) -> str:
    """CRC-32 of a file, as 8 hex digits: the checksum of large
    intermediates, which are verified when a later run reuses them. The file is mapped one
    window at a time: its pages are checksummed where they lie in the page cache (no copy),
    and no more than a window of it counts as this process's memory at once."""
    value = 0
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        for start in range(0, size, window):  # a multiple of mmap.ALLOCATIONGRANULARITY
            check("crc.window")
            length = min(window, size - start)
            with (
                mmap.mmap(handle.fileno(), length, offset=start, access=mmap.ACCESS_READ) as mapped,
                memoryview(mapped) as view,
            ):
                value = crc32(view, value)
    return f"{value:08x}"
