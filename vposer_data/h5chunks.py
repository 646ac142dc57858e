"""HDF5 chunks encoded outside the writer, so compression runs in parallel workers.

HDF5 compresses chunk by chunk in the process that writes, which would make the one writer of
Stage II the bottleneck. Instead, workers encode whole chunks exactly as HDF5's shuffle +
deflate filter pipeline would (byte shuffle, then zlib), and the writer stores the bytes with
``write_direct_chunk``. Rows of chunks that straddle two batches are written the ordinary way.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from concurrent.futures import Executor, Future, wait
from pathlib import Path
from typing import Any

import numpy as np

from vposer_data.interrupts import check

__all__ = [
    "chunk_rows_for",
    "column_region",
    "encode_chunk",
    "plan_rows",
    "write_column",
]

CHUNK_BYTES = 1 << 20
#: Bytes of rows HDF5 reads at once where :func:`write_column` cannot inflate chunks itself.
COPY_BLOCK_BYTES = 16 << 20
#: Chunks :func:`write_column` inflates at once (about a megabyte each).
_INFLATE_AHEAD = 8
_MIN_DIRECT_ROWS = 64


def chunk_rows_for(row_bytes: int, batch_size: int, total_rows: int) -> int:
    """Rows per chunk: about ``CHUNK_BYTES`` per chunk, and a divisor of ``batch_size`` when
    that keeps chunks large enough, so that batches hold whole chunks."""
    limit = max(1, CHUNK_BYTES // max(1, row_bytes))
    if batch_size <= limit:
        rows = batch_size
    else:
        rows = max(
            (
                d
                for d in range(1, int(batch_size**0.5) + 1)
                if batch_size % d == 0
                for d in (d, batch_size // d)
                if d <= limit
            ),
            default=1,
        )
        if rows < _MIN_DIRECT_ROWS:
            rows = limit
    return max(1, min(rows, total_rows))


def plan_rows(
    start: int, stop: int, chunk_rows: int, total_rows: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Split rows ``[start, stop)`` into whole chunks this range alone covers (their indices;
    the dataset's last chunk counts as whole when the range reaches the end) and the loose row
    ranges left over, which belong to chunks shared with a neighbouring range."""
    first = -(-start // chunk_rows)
    end_full = stop // chunk_rows
    chunks = list(range(first, end_full))
    last = (total_rows - 1) // chunk_rows
    if stop == total_rows and total_rows % chunk_rows and last >= first:
        chunks.append(last)
    if not chunks:
        return [], [(start, stop)]
    covered_start = chunks[0] * chunk_rows
    covered_stop = min((chunks[-1] + 1) * chunk_rows, total_rows)
    loose = []
    if covered_start > start:
        loose.append((start, covered_start))
    if covered_stop < stop:
        loose.append((covered_stop, stop))
    return chunks, loose


def encode_chunk(rows: np.ndarray, chunk_rows: int, level: int) -> bytes:
    """One chunk as HDF5's shuffle + deflate filters store it (zero-padded to full size)."""
    rows = np.ascontiguousarray(rows)
    if rows.shape[0] < chunk_rows:
        padding = np.zeros((chunk_rows - rows.shape[0], *rows.shape[1:]), dtype=rows.dtype)
        rows = np.concatenate([rows, padding])
    itemsize = rows.dtype.itemsize
    shuffled = rows.view(np.uint8).reshape(-1, itemsize).T.tobytes()
    return zlib.compress(shuffled, level)


def column_region(dataset: Any) -> tuple[Path, int] | None:
    """Where a dataset's bytes lie whole, in order, in its own file: (file, offset), for a
    contiguous dataset without filters or external storage; None otherwise. A dataset cut
    short (the file ends before it does) is an OSError."""
    shape, dtype = dataset.shape, dataset.dtype
    offset = dataset.id.get_offset() if dataset.chunks is None else None
    if offset is None or dtype.fields is not None or dataset.external or 0 in shape:
        return None
    path = Path(dataset.file.filename)
    end = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if end > path.stat().st_size:
        raise OSError(f"{path}: dataset {dataset.name} is cut short")
    return path, offset


def _inflate(
    payload: bytes, dtype: np.dtype[Any], chunk_rows: int, row_shape: tuple[int, ...]
) -> np.ndarray:
    """One shuffle + deflate chunk's rows."""
    raw = np.frombuffer(zlib.decompress(payload), dtype=np.uint8)
    block = np.ascontiguousarray(raw.reshape(dtype.itemsize, -1).T).view(dtype)
    return block.reshape(chunk_rows, *row_shape)


def _deflated_whole_rows(dataset: Any) -> bool:
    """Whether every chunk holds whole rows, shuffled and deflated (what this module inflates)."""
    chunks, shape = dataset.chunks, dataset.shape
    return (
        dataset.compression == "gzip"
        and dataset.shuffle
        and chunks is not None
        and tuple(chunks[1:]) == tuple(shape[1:])
        and shape[0] > 0
    )


def write_column(dataset: Any, fd: int, dtype: np.dtype[Any], pool: Executor | None = None) -> None:
    """Write a dataset's rows as ``dtype`` to the file ``fd``, in order from its start, a few
    blocks of rows at a time, so that memory holds those blocks, not the column. Shuffle +
    deflate chunks are inflated on ``pool``'s threads (zlib releases the GIL) instead of one
    after another inside HDF5; other datasets, and chunks stored with a filter skipped, are
    read by HDF5, about ``COPY_BLOCK_BYTES`` at a time."""
    shape = dataset.shape
    row_shape = tuple(shape[1:])
    row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))

    def put(start: int, rows: np.ndarray) -> None:
        data = np.ascontiguousarray(rows, dtype=dtype).reshape(-1).view(np.uint8)
        with data.data as view:
            written = 0
            while written < view.nbytes:  # pwrite may write less than asked
                written += os.pwrite(fd, view[written:], start * row_bytes + written)

    if pool is None or not _deflated_whole_rows(dataset):
        step = max(1, COPY_BLOCK_BYTES // max(1, row_bytes))
        for start in range(0, shape[0], step):
            check("stage3.block")
            put(start, dataset[start : start + step])
        return
    chunk_rows = dataset.chunks[0]

    def inflate(start: int, payload: bytes) -> None:
        stop = min(start + chunk_rows, shape[0])
        put(start, _inflate(payload, dataset.dtype, chunk_rows, row_shape)[: stop - start])

    ahead: deque[Future[None]] = deque()  # chunks being inflated
    try:
        for start in range(0, shape[0], chunk_rows):
            check("stage3.block")
            while len(ahead) >= _INFLATE_AHEAD:
                ahead.popleft().result()
            mask, payload = dataset.id.read_direct_chunk((start,) + (0,) * len(row_shape))
            if mask:  # some filter was skipped for this chunk: let HDF5 decode it
                put(start, dataset[start : start + chunk_rows])
                continue
            ahead.append(pool.submit(inflate, start, payload))
        for future in ahead:
            future.result()
    finally:
        # stopped (Ctrl-C, a full disk): no chunk may still write to ``fd`` once the caller
        # closes it; the chunks not started are dropped, those inflating (a few) waited for
        for future in ahead:
            future.cancel()
        wait(ahead)
