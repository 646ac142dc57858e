"""CRC-32 arithmetic over bytes never held whole, checked against zlib's CRC-32 of the bytes
themselves: joining two pieces' CRCs, the CRC of a run of zeros, and the four bytes that give
a run of zeros a chosen CRC."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.checksums import crc32, crc32_combine, crc32_forge_tail, crc32_zeros

crcs = st.integers(0, 2**32 - 1)


@settings(max_examples=200, deadline=None)
@given(first=st.binary(max_size=300), second=st.binary(max_size=300))
def test_the_crc_of_two_pieces_joined_is_zlibs(first: bytes, second: bytes) -> None:
    joined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert joined == zlib.crc32(first + second)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(0, 70_000), value=crcs)
def test_the_crc_of_zeros_is_zlibs(length: int, value: int) -> None:
    assert crc32_zeros(length, value) == zlib.crc32(bytes(length), value)


def test_the_crc_of_gigabytes_of_zeros_is_computed_without_them() -> None:
    """Against isal's CRC of the bytes, 64 MB at a time (all zeros: one buffer serves)."""
    block = bytes(64 << 20)
    value = 0
    for _ in range(48):  # 3 GB: past 2**31 and 2**32 bits of length
        value = crc32(block, value)
    assert crc32_zeros(48 * len(block)) == value


@settings(max_examples=300, deadline=None)
@given(value=crcs, target=crcs)
def test_four_forged_bytes_give_any_crc_after_any_start(value: int, target: int) -> None:
    tail = crc32_forge_tail(value, target)
    assert len(tail) == 4
    assert zlib.crc32(tail, value) == target


@settings(max_examples=100, deadline=None)
@given(length=st.integers(0, 10_000), target=crcs)
def test_zeros_ending_with_the_forged_tail_have_the_target_crc(length: int, target: int) -> None:
    stand_in = bytes(length) + crc32_forge_tail(crc32_zeros(length), target)
    assert zlib.crc32(stand_in) == target
    assert crc32(stand_in) == target  # the CRC the package computes with (isal's)
