"""Chunks encoded outside HDF5 read back exactly as if HDF5 had written them."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.h5chunks import chunk_rows_for, encode_chunk, plan_rows


@given(
    total=st.integers(1, 5000),
    chunk_rows=st.integers(1, 700),
    cuts=st.lists(st.integers(1, 4999), max_size=8),
)
def test_plan_rows_covers_every_row_once_and_each_chunk_whole_or_loose(
    total: int, chunk_rows: int, cuts: list[int]
) -> None:
    bounds = sorted({0, total, *(c for c in cuts if c < total)})
    seen = np.zeros(total, dtype=int)
    direct_chunks: list[int] = []
    loose_rows = np.zeros(total, dtype=bool)
    for start, stop in itertools.pairwise(bounds):
        chunks, loose = plan_rows(start, stop, chunk_rows, total)
        for c in chunks:
            lo, hi = c * chunk_rows, min((c + 1) * chunk_rows, total)
            assert start <= lo and hi <= stop  # a direct chunk lies inside its range
            seen[lo:hi] += 1
        for lo, hi in loose:
            assert start <= lo < hi <= stop
            seen[lo:hi] += 1
            loose_rows[lo:hi] = True
        direct_chunks += chunks
    assert (seen == 1).all()
    assert len(direct_chunks) == len(set(direct_chunks))
    for c in direct_chunks:  # no chunk is both written whole and written row-wise
        assert not loose_rows[c * chunk_rows : (c + 1) * chunk_rows].any()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 3000),
    width=st.sampled_from([(), (3,), (63,)]),
    dtype=st.sampled_from([np.float32, np.int8, np.int32]),
    batch=st.integers(1, 1200),
)
def test_direct_chunks_read_back_as_written(
    tmp_path_factory, rows: int, width: tuple[int, ...], dtype: type, batch: int
) -> None:
    rng = np.random.default_rng(rows)
    data = (rng.normal(size=(rows, *width)) * 100).astype(dtype)
    row_bytes = data.itemsize * int(np.prod(width, dtype=np.int64))
    chunk_rows = chunk_rows_for(row_bytes, batch, rows)
    path = Path(tmp_path_factory.mktemp("h5")) / "x.h5"
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset(
            "x",
            shape=data.shape,
            dtype=dtype,
            chunks=(chunk_rows, *width),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        for start in range(0, rows, batch):
            stop = min(start + batch, rows)
            chunks, loose = plan_rows(start, stop, chunk_rows, rows)
            for c in chunks:
                block = data[c * chunk_rows : (c + 1) * chunk_rows]
                ds.id.write_direct_chunk(
                    (c * chunk_rows,) + (0,) * len(width), encode_chunk(block, chunk_rows, 1)
                )
            for lo, hi in loose:
                ds[lo:hi] = data[lo:hi]
    with h5py.File(path, "r") as h5:
        np.testing.assert_array_equal(h5["x"][...], data)


def test_chunk_rows_divide_the_batch_when_they_can() -> None:
    assert 8192 % chunk_rows_for(189 * 4, 8192, 10**6) == 0
    assert chunk_rows_for(189 * 4, 8192, 10**6) * 189 * 4 <= 1 << 20
    assert chunk_rows_for(1, 8192, 10**6) == 8192
    assert chunk_rows_for(1, 8192, 100) == 100  # never more rows than the dataset


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.float64])
def test_a_contiguous_dataset_is_its_own_region_of_the_file(tmp_path: Path, dtype: type) -> None:
    """Its bytes, read at the place given, are what HDF5 reads; a chunked dataset has none."""
    from vposer_data.h5chunks import column_region

    data = (np.random.default_rng(0).normal(size=(5000, 63)) * 50).astype(dtype)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("x", data=data)
        h5.create_dataset("chunked", data=data, chunks=(100, 63))
    with h5py.File(path, "r") as h5:
        region = column_region(h5["x"])
        assert column_region(h5["chunked"]) is None
    assert region is not None and region[0] == path
    with open(path, "rb") as handle:
        handle.seek(region[1])
        assert handle.read(data.nbytes) == data.tobytes()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 3000),
    width=st.sampled_from([(), (3,), (4, 5)]),
    dtype=st.sampled_from([np.float64, np.float32, np.int8]),
    chunk_rows=st.integers(1, 900),
    compression=st.sampled_from(["gzip", "lzf", None]),
)
def test_write_column_writes_the_rows_hdf5_reads(
    tmp_path_factory,
    rows: int,
    width: tuple[int, ...],
    dtype: type,
    chunk_rows: int,
    compression: str | None,
) -> None:
    """As float32 for floats (Stage III's dtype), as they are otherwise."""
    from concurrent.futures import ThreadPoolExecutor

    from vposer_data.h5chunks import write_column

    data = (np.random.default_rng(rows).normal(size=(rows, *width)) * 50).astype(dtype)
    folder = Path(tmp_path_factory.mktemp("h5"))
    with h5py.File(folder / "x.h5", "w") as h5:
        h5.create_dataset(
            "x",
            data=data,
            chunks=(min(chunk_rows, rows), *width),
            compression=compression,
            shuffle=compression is not None,
        )
    target = np.dtype(np.float32) if data.dtype.kind == "f" else data.dtype
    with h5py.File(folder / "x.h5", "r") as h5, ThreadPoolExecutor(2) as pool:
        fd = os.open(folder / "x.bin", os.O_WRONLY | os.O_CREAT)
        try:
            write_column(h5["x"], fd, target, pool)
        finally:
            os.close(fd)
    assert (folder / "x.bin").read_bytes() == data.astype(target).tobytes()


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_write_column_of_many_blocks(tmp_path: Path, compression: str) -> None:
    """40 MB: many chunks inflated a few at a time (gzip), several blocks read by HDF5
    (lzf, 16 MB each)."""
    from concurrent.futures import ThreadPoolExecutor

    from vposer_data.h5chunks import COPY_BLOCK_BYTES, write_column

    data = np.random.default_rng(0).normal(size=(55_000, 189)).astype(np.float32)
    assert data.nbytes > 2 * COPY_BLOCK_BYTES
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5.create_dataset("x", data=data, chunks=(1000, 189), compression=compression, shuffle=True)
    with h5py.File(tmp_path / "x.h5", "r") as h5, ThreadPoolExecutor(2) as pool:
        fd = os.open(tmp_path / "x.bin", os.O_WRONLY | os.O_CREAT)
        try:
            write_column(h5["x"], fd, data.dtype, pool)
        finally:
            os.close(fd)
    assert (tmp_path / "x.bin").read_bytes() == data.tobytes()
