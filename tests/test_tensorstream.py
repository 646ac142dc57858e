"""``torch.save`` files made without the tensor in memory: byte for byte what ``torch.save`` of
the whole tensor writes to a file handle, with the record's checksum that of the file; and
memory (the peak resident size of a fresh process) that stays at a block or window while
hundreds of megabytes go through."""

from __future__ import annotations

import hashlib
import io
import itertools
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.tensorstream import (
    WINDOW_BYTES,
    TensorAppender,
    file_region_crc32,
    save_file_region,
    torch_frame,
)

DTYPES = [np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.float16]


def _reference_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(np.ascontiguousarray(array)).clone(), buffer)
    return buffer.getvalue()


def _array(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-100, 100, size=shape).astype(dtype) * np.asarray(1, dtype)


shapes = st.lists(st.integers(0, 30), min_size=1, max_size=3).map(tuple)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_head_bytes_tail_is_what_torch_save_writes(
    shape: tuple[int, ...], dtype: type, seed: int
) -> None:
    array = _array(shape, dtype, seed)
    if array.nbytes < 4:
        with pytest.raises(ValueError, match="at least 4 bytes"):
            torch_frame(shape, array.dtype, 0)
        return
    head, tail = torch_frame(shape, array.dtype, zlib.crc32(array.tobytes()))
    assert head + array.tobytes() + tail == _reference_bytes(array)


@settings(max_examples=60, deadline=None)
@given(
    shape=shapes,
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
    cuts=st.lists(st.integers(0, 30), max_size=4),
    head_room=st.sampled_from([None, 0, 100, 704, 5000]),
)
def test_rows_appended_in_any_pieces_make_torch_saves_file(
    tmp_path_factory: pytest.TempPathFactory,
    shape: tuple[int, ...],
    dtype: type,
    seed: int,
    cuts: list[int],
    head_room: int | None,
) -> None:
    """Whatever the room left for the head (too little, too much: the rows are moved) and
    however the rows arrive, even in empty pieces or fewer than four bytes in all."""
    array = _array(shape, dtype, seed)
    path = tmp_path_factory.mktemp("append") / "x.pt"
    appender = TensorAppender(path, Path("/final/x.pt"), head_room=head_room)
    bounds = sorted({0, shape[0], *(min(c, shape[0]) for c in cuts)})
    appender.append(array[:0])
    for start, stop in itertools.pairwise(bounds):
        appender.append(array[start:stop])
    record = appender.finish()
    data = path.read_bytes()
    assert data == _reference_bytes(array)
    assert record.as_dict() == {"bytes": len(data), "crc32": f"{zlib.crc32(data):08x}"}
    assert appender.shape == shape


@pytest.mark.parametrize(
    ("row_shape", "dtype"),
    [((90,), np.float32), ((), np.int8), ((16, 189), np.float32), ((3,), np.float64)],
)
def test_the_room_left_is_the_head_of_a_large_tensor(row_shape: tuple[int, ...], dtype: type):
    """The rows of a large tensor are written where torch puts them: never moved."""
    from vposer_data.tensorstream import _head_length

    shape = (70_000, *row_shape)
    assert _head_length(row_shape, np.dtype(dtype)) == len(torch_frame(shape, dtype, 0)[0])


def test_rows_of_another_shape_or_dtype_are_refused(tmp_path: Path) -> None:
    appender = TensorAppender(tmp_path / "x.pt", Path("/final/x.pt"))
    appender.append(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"/final/x\.pt: rows \(5,\) float32"):
        appender.append(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="int32"):
        appender.append(np.zeros((2, 4), np.int32))
    appender.close()


@pytest.mark.parametrize("checksum", ["sha256", "crc32"])
@pytest.mark.parametrize(
    ("shape", "offset"),
    [((0, 3), 10), ((1,), 7), ((3,), 5), ((1000, 63), 12345), ((70_000, 300), 4097)],
    ids=["empty", "one-int8", "three-int8", "small", "84MB-three-windows"],
)
def test_a_file_region_saved_is_torch_saves_file(
    tmp_path: Path, checksum: str, shape: tuple[int, ...], offset: int
) -> None:
    """Regions anywhere in a file (between other bytes), of every size class: fewer bytes
    than a stand-in can carry, and more than one mapped window."""
    dtype = np.int8 if len(shape) == 1 else np.float32
    array = _array(shape, dtype, 3)
    source = tmp_path / "source.bin"
    source.write_bytes(b"\x07" * offset + array.tobytes() + b"\x09" * 1000)
    if array.nbytes > 4:
        assert file_region_crc32(source, offset, array.nbytes) == zlib.crc32(array.tobytes())
    path = tmp_path / "x.pt"
    record = save_file_region(
        path, source, offset, shape, array.dtype, Path("/final/x.pt"), checksum=checksum
    )  # type: ignore[arg-type]
    data = path.read_bytes()
    assert data == _reference_bytes(array)
    expected = (
        hashlib.sha256(data).hexdigest() if checksum == "sha256" else f"{zlib.crc32(data):08x}"
    )
    assert record.as_dict() == {"bytes": len(data), checksum: expected}
    if shape[0] == 70_000:
        assert array.nbytes > 2 * WINDOW_BYTES


#: Run in a fresh process: the peak resident size (VmHWM) grows by what the operation holds
#: at once, above what imports and a warm-up already took; then by the column read whole,
#: the yardstick that shows the measure sees it.
MEMORY_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from vposer_data.statistics import column_stats
from vposer_data.tensorstream import TensorAppender, save_file_region

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

def peak():
    return status("VmHWM")

folder, operation, total = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
block = np.arange(1 << 20, dtype=np.float32).reshape(-1, 64)  # 4 MB of rows
blocks = total // block.nbytes
raw = folder / "raw.bin"
with open(raw, "wb") as handle:
    for _ in range(blocks):
        handle.write(block.tobytes())
shape = (blocks * block.shape[0], 64)
small = TensorAppender(folder / "warm.pt", folder / "warm.pt")  # imports, caches: the baseline
small.append(block[:10])
small.finish()
column_stats(block[:100])
before = peak()
if operation == "append":
    appender = TensorAppender(folder / "x.pt", folder / "x.pt")
    for _ in range(blocks):
        appender.append(block)
    size = appender.finish().bytes
elif operation == "region":
    size = save_file_region(
        folder / "x.pt", raw, 0, shape, np.dtype(np.float32), folder / "x.pt"
    ).bytes
elif operation == "stats":
    column = np.memmap(raw, dtype=np.float32, mode="r", shape=shape)
    size = column_stats(column, release=True)[1]
grown = peak() - before
resident = status("VmRSS")  # the yardstick from here: memory may have been given back since
whole = np.fromfile(raw, dtype=np.float32)
print(grown, peak() - resident, size)
"""


@pytest.mark.parametrize("operation", ["append", "region", "stats"])
def test_memory_holds_a_block_not_the_tensor(tmp_path: Path, operation: str) -> None:
    """256 MB through each: appended rows (Stage I), a file region saved with its SHA-256
    and the statistics of a mapped column (Stage III) hold at most a window (32 MB) and
    pages mapped ahead; the column read whole afterwards, the yardstick, holds it all."""
    total = 256 << 20
    script = textwrap.dedent(MEMORY_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), operation, str(total)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    grown, yardstick, size = map(int, done.stdout.split())
    assert grown < 64 << 20, f"{operation}: the peak grew by {grown / 2**20:.0f} MB"
    assert yardstick > total * 0.9
    rows = total // (64 * 4)
    assert size == (rows if operation == "stats" else (tmp_path / "x.pt").stat().st_size)
