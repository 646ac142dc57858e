"""HDF5 chunks encoded outside the writer, so compression runs in parallel workers.

HDF5 compresses chunk by chunk in the process that writes, which would make the one writer of
Stage II the bottleneck. Instead, workers encode whole chunks exactly as HDF5's shuffle +
deflate filter pipeline would (byte shuffle, then zlib), and the writer stores the bytes with
``write_direct_chunk``. Rows of chunks that straddle two batches are written the ordinary way.
"""

from __future__ import annotations

import zlib
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["chunk_rows_for", "encode_chunk", "plan_rows", "read_column"]

CHUNK_BYTES = 1 << 20
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


def read_column(dataset: Any, pool: Executor | None = None) -> np.ndarray:
    """A whole HDF5 dataset. A contiguous one is mapped straight from the file (copy-on-write,
    so the array is writable and the file never changes): no copy, no fresh memory to fault
    in, and the pages are the page cache's. Shuffle + deflate chunks are inflated on
    ``pool``'s threads (zlib releases the GIL) instead of one after another inside HDF5.
    Datasets with other filters, or chunks stored with filters skipped, are read the ordinary
    way."""
    shape, dtype, chunks = dataset.shape, dataset.dtype, dataset.chunks
    offset = dataset.id.get_offset() if chunks is None else None
    if offset is not None and dtype.fields is None and not dataset.external and 0 not in shape:
        path = dataset.file.filename
        end = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end > Path(path).stat().st_size:
            raise OSError(f"{path}: dataset {dataset.name} is cut short")
        return np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=tuple(shape))
    if (
        pool is None
        or dataset.compression != "gzip"
        or not dataset.shuffle
        or chunks is None
        or tuple(chunks[1:]) != tuple(shape[1:])
        or shape[0] == 0
    ):
        return np.asarray(dataset[...])
    chunk_rows, row_shape = chunks[0], tuple(shape[1:])
    out = np.empty(shape, dtype=dtype)

    def inflate(start: int, payload: bytes) -> None:
        raw = np.frombuffer(zlib.decompress(payload), dtype=np.uint8)
        block = np.ascontiguousarray(raw.reshape(dtype.itemsize, -1).T).view(dtype)
        stop = min(start + chunk_rows, shape[0])
        out[start:stop] = block.reshape(chunk_rows, *row_shape)[: stop - start]

    pending = []
    for start in range(0, shape[0], chunk_rows):
        mask, payload = dataset.id.read_direct_chunk((start,) + (0,) * len(row_shape))
        if mask:  # some filter was skipped for this chunk: let HDF5 decode it
            out[start : start + chunk_rows] = dataset[start : start + chunk_rows]
            continue
        pending.append(pool.submit(inflate, start, payload))
    for future in pending:
        future.result()
    return out
