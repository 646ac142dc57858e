"""The fast ``.npy`` header reader gives numpy's answer for every header numpy writes."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.npz_reader import _PLAIN_HEADER, array_header

DTYPES = ["<f8", "<f4", ">f4", "<i8", "|u1", "|b1", "<U6", "|S7", "<c16", "<f2"]


def _numpy_header(data: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read(stream)
    return tuple(shape), bool(fortran), dtype, stream.tell()


@settings(deadline=None, max_examples=200)
@given(
    st.sampled_from(DTYPES),
    st.lists(st.integers(0, 40), min_size=0, max_size=4),
    st.booleans(),
    st.sampled_from([None, (1, 0), (2, 0), (3, 0)]),
)
def test_every_header_numpy_writes_reads_the_same(
    dtype: str, shape: list[int], fortran: bool, version: tuple[int, int] | None
) -> None:
    array = np.zeros(shape, dtype=dtype, order="F" if fortran else "C")
    stream = io.BytesIO()
    if version is None:
        np.lib.format.write_array(stream, array)
    else:
        np.lib.format.write_array(stream, array, version=version)
    data = b"PK" + stream.getvalue()  # not at offset 0, as in an archive
    assert array_header(data, 2) == tuple(
        (v + 2 if i == 3 else v) for i, v in enumerate(_numpy_header(data[2:]))
    )


def test_plain_headers_take_the_fast_path_and_others_the_fallback() -> None:
    for shape in [(), (5,), (5, 3), (0, 16), (2, 3, 4)]:
        stream = io.BytesIO()
        np.lib.format.write_array(stream, np.zeros(shape))
        header = stream.getvalue()[10:].decode("latin1")[: stream.getvalue()[8]]
        assert _PLAIN_HEADER.fullmatch(header), header
    structured = np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4")])
    stream = io.BytesIO()
    np.lib.format.write_array(stream, structured)
    data = stream.getvalue()
    assert array_header(data, 0) == _numpy_header(data)
