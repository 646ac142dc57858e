"""``torch.save`` files of tensors whose bytes are never all in memory.

A ``.pt`` file of one tensor is torch's zip archive: a head (the pickle, a few small records and
the data record's header), the tensor's bytes, and a tail (more small records, the central
directory). Head and tail depend on the bytes only through their CRC-32, which torch computes
by reading the whole tensor before it writes it. So the head and tail of a tensor are found by
saving a stand-in of the same shape and dtype: zero bytes whose last four are chosen to give the
real bytes' CRC-32 (:func:`vposer_data.checksums.crc32_forge_tail`), in an untouched anonymous
mapping, which reads as the kernel's shared zero page and so never counts as this process's
memory. The real bytes go to the file from where they are, a window at a time; the result is
byte for byte what ``torch.save`` of the whole tensor writes to a file handle.

- :class:`TensorAppender` (Stage I): rows appended as they are read, straight to their place in
  the file, behind room left for the head; CRC-32 of the file, from the pieces'.
- :func:`save_file_region` (Stage III): a tensor whose bytes lie in a file (a contiguous HDF5
  dataset, a spill file), copied window by window and checksummed on the way.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import itertools
import math
import mmap
import os
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vposer_data.checksums import crc32, crc32_combine, crc32_forge_tail, crc32_zeros
from vposer_data.errors import PrepareError
from vposer_data.interrupts import check
from vposer_data.memory import libc
from vposer_data.tensorfile import Checksum, FileRecord, save_tensor

__all__ = ["TensorAppender", "file_region_crc32", "save_file_region", "torch_frame"]

#: Bytes of a source file mapped at once while it is copied or checksummed (a multiple of
#: mmap.ALLOCATIONGRANULARITY): this, not the tensor, is what counts as this process's memory.
WINDOW_BYTES = 32 << 20
#: Rows of the stand-in that finds where an appended tensor's bytes will start: past 65535, the
#: pickle stores the row count in four bytes, as for the tensors worth streaming.
_PROBE_ROWS = 1 << 16
_PAGE = mmap.PAGESIZE
#: Seconds between two looks for Ctrl-C while a stand-in is framed (see :func:`torch_frame`).
_FRAME_POLL = 0.05


def _nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    return math.prod(shape) * dtype.itemsize


@contextlib.contextmanager
def _zero_stand_in(nbytes: int) -> Iterator[tuple[mmap.mmap, int]]:
    """A read-only anonymous mapping of ``nbytes`` zero bytes (no memory is committed for it)
    whose last page is writable, and its address."""
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    try:
        with contextlib.suppress(OSError, AttributeError):  # fewer, larger zero-page faults
            buffer.madvise(mmap.MADV_HUGEPAGE)
        view = np.frombuffer(buffer, np.uint8)
        address = view.ctypes.data
        del view
        last_page = (address + nbytes - 1) // _PAGE * _PAGE
        if libc().mprotect(
            ctypes.c_void_p(last_page), ctypes.c_size_t(_PAGE), mmap.PROT_READ | mmap.PROT_WRITE
        ):
            raise OSError(ctypes.get_errno(), "mprotect of the stand-in's last page failed")
        yield buffer, address
    finally:
        with contextlib.suppress(BufferError):  # a traceback may hold a view: unmapped with it
            buffer.close()


class _Recorder:
    """A write-only file object that keeps what ``torch.save`` writes around the stand-in's
    bytes (which it checks arrive whole, in order, in one stretch) and drops those bytes.
    ``seek``/``tell`` serve torch's ``skip_data`` mode, which skips them instead."""

    def __init__(self, address: int, nbytes: int) -> None:
        self.start, self.nbytes = address, nbytes
        self.head: list[bytes] = []
        self.tail: list[bytes] = []
        self.seen = 0  # stand-in bytes passed so far
        self.position = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = view.nbytes
        address = np.frombuffer(view, np.uint8).ctypes.data if size else 0
        if size and self.start <= address < self.start + self.nbytes:
            if address != self.start + self.seen or self.tail:
                raise RuntimeError("torch.save wrote a tensor's bytes out of order")
            self.seen += size
        elif self.seen or self.position > sum(map(len, self.head)):
            self.tail.append(bytes(view))
        else:
            self.head.append(bytes(view))
        self.position += size
        return size

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self.position = offset if whence == os.SEEK_SET else self.position + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass


def _stand_in_tensor(buffer: mmap.mmap, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
    array = np.frombuffer(buffer, np.uint8, count=_nbytes(shape, dtype))
    with warnings.catch_warnings():  # read-only on purpose: torch.save only reads it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array.view(dtype).reshape(shape))


def _frame(shape: tuple[int, ...], dtype: np.dtype[Any], data_crc: int) -> tuple[bytes, bytes]:
    nbytes = _nbytes(shape, dtype)
    with _zero_stand_in(nbytes) as (buffer, address):
        forged = crc32_forge_tail(crc32_zeros(nbytes - 4), data_crc)
        ctypes.memmove(address + nbytes - 4, forged, 4)
        recorder = _Recorder(address, nbytes)
        tensor = _stand_in_tensor(buffer, shape, dtype)
        try:
            torch.save(tensor, recorder)  # type: ignore[arg-type]
        finally:
            del tensor
    if recorder.seen != nbytes:
        raise RuntimeError(f"torch.save wrote {recorder.seen} of a tensor's {nbytes} bytes")
    return b"".join(recorder.head), b"".join(recorder.tail)


def torch_frame(shape: tuple[int, ...], dtype: np.dtype[Any], data_crc: int) -> tuple[bytes, bytes]:
    """What ``torch.save`` writes to a file handle before and after the bytes of a C-contiguous
    tensor of this shape and (numpy) dtype whose bytes have CRC-32 ``data_crc`` (at least four
    bytes: fewer cannot carry a chosen CRC).

    torch.save reads every byte of the stand-in for its CRC-32 (about 0.6 s per GB here), in one
    call too long to wait for after Ctrl-C: it runs on a helper thread while this one looks for
    Ctrl-C (safe point ``tensor.frame``); a stop leaves the thread to finish alone (the
    command leaves without waiting for it, see :func:`vposer_data.cli.run`)."""
    dtype = np.dtype(dtype)
    nbytes = _nbytes(shape, dtype)
    if nbytes < 4:
        raise ValueError(f"a stand-in needs at least 4 bytes, shape {shape} {dtype} has {nbytes}")
    outcome: list[tuple[bytes, bytes] | BaseException] = []
    done = threading.Event()

    def frame() -> None:
        try:
            outcome.append(_frame(shape, dtype, data_crc))
        except BaseException as exc:  # raised in the caller's thread below
            outcome.append(exc)
        finally:
            done.set()

    # not a daemon: the interpreter's exit waits for it (one killed inside torch.save aborts)
    threading.Thread(target=frame, name="vposer_data-torch-frame").start()
    while True:
        check("tensor.frame")
        if done.wait(_FRAME_POLL):
            break
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


@functools.cache
def _head_length(row_shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    """Where the bytes of a large tensor with rows of this shape start in its ``.pt`` file,
    found without reading a stand-in (torch's ``skip_data``); where torch lacks it, from the
    head of a one-row tensor. A tensor whose head turns out longer or shorter is moved."""
    skip_data = getattr(torch.serialization, "skip_data", None)
    if skip_data is None or _nbytes((_PROBE_ROWS, *row_shape), dtype) < 4:  # pragma: no cover
        probe = (1, *row_shape)
        return len(torch_frame(probe, dtype, 0)[0]) if _nbytes(probe, dtype) >= 4 else 0
    shape = (_PROBE_ROWS, *row_shape)
    with _zero_stand_in(_nbytes(shape, dtype)) as (buffer, address):
        recorder = _Recorder(address, _nbytes(shape, dtype))
        tensor = _stand_in_tensor(buffer, shape, dtype)
        try:
            with skip_data():
                torch.save(tensor, recorder)  # type: ignore[arg-type]
        finally:
            del tensor
    return sum(map(len, recorder.head))


def _pwrite_all(fd: int, data: Any, position: int) -> None:
    with memoryview(data).cast("B") as view:
        written = 0
        while written < view.nbytes:
            written += os.pwrite(fd, view[written:], position + written)


def _move(fd: int, source: int, target: int, length: int) -> None:
    """Move ``length`` bytes of a file from ``source`` to ``target`` (overlap allowed)."""
    step = WINDOW_BYTES
    starts = range(0, length, step)
    for start in reversed(starts) if target > source else starts:
        block = os.pread(fd, min(step, length - start), source + start)
        _pwrite_all(fd, block, target + start)


class TensorAppender:
    """One tensor's ``.pt`` file, written as its rows arrive (Stage I): each block of rows goes
    straight to its place, after room left for the head, so memory holds one block; the head
    and tail are written by :meth:`finish`. The file's CRC-32 is put together from the pieces'
    (:func:`~vposer_data.checksums.crc32_combine`), without reading it back."""

    def __init__(self, path: Path, shown_as: Path, head_room: int | None = None) -> None:
        """``head_room``: bytes left before the rows for torch's head (None: as long as the
        head of a large tensor of such rows; a head of another length moves the rows)."""
        self.path, self.shown_as = path, shown_as
        self.head_room = head_room
        self.row_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype[Any] | None = None
        self.rows = 0
        self.nbytes = 0
        self.crc = 0  # of the rows' bytes
        self._offset = 0  # where the rows start in the file
        self._fd: int | None = None

    def _open(self, rows: np.ndarray) -> int:
        self.row_shape, self.dtype = tuple(rows.shape[1:]), rows.dtype
        room = self.head_room
        self._offset = _head_length(self.row_shape, rows.dtype) if room is None else room
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        return self._fd

    def append(self, rows: np.ndarray) -> None:
        """Append rows (``(k, *row_shape)``, one dtype for every call)."""
        rows = np.ascontiguousarray(rows)
        fd = self._fd if self._fd is not None else self._open(rows)
        if tuple(rows.shape[1:]) != self.row_shape or rows.dtype != self.dtype:
            raise ValueError(
                f"{self.shown_as}: rows {rows.shape[1:]} {rows.dtype} appended to a tensor of "
                f"rows {self.row_shape} {self.dtype}"
            )
        data = rows.reshape(-1).view(np.uint8)
        try:
            _pwrite_all(fd, data, self._offset + self.nbytes)
        except OSError as exc:  # a full disk, a file-size limit: say which file
            raise PrepareError(f"could not write {self.shown_as}: {exc}") from exc
        self.crc = crc32(data, self.crc)
        self.nbytes += data.nbytes
        self.rows += rows.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, *(self.row_shape or ()))

    def finish(self) -> FileRecord:
        """Write the head and tail; returns the file's size and CRC-32."""
        if self._fd is None or self.dtype is None:
            raise ValueError(f"{self.shown_as}: no rows were appended")
        fd, self._fd = self._fd, None
        try:
            if self.nbytes < 4:  # too few bytes to stand in for: save them as they are
                data = os.pread(fd, self.nbytes, self._offset)
                array = np.frombuffer(data, self.dtype).reshape(self.shape).copy()
                os.close(fd)
                return save_tensor(
                    self.path, torch.from_numpy(array), self.shown_as, checksum="crc32"
                )
            head, tail = torch_frame(self.shape, self.dtype, self.crc)
            if len(head) != self._offset:
                _move(fd, self._offset, len(head), self.nbytes)
            _pwrite_all(fd, head, 0)
            _pwrite_all(fd, tail, len(head) + self.nbytes)
            size = len(head) + self.nbytes + len(tail)
            os.ftruncate(fd, size)
        except OSError as exc:
            raise PrepareError(f"could not write {self.shown_as}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        value = crc32(tail, crc32_combine(crc32(head), self.crc, self.nbytes))
        return FileRecord(bytes=size, checksum="crc32", value=f"{value:08x}")

    def close(self) -> None:
        """Close the file, if :meth:`finish` has not (on an error: the folder is dropped)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def _windows(path: Path, offset: int, length: int) -> Iterator[Iterator[memoryview]]:
    """The bytes ``offset .. offset + length`` of a file, as read-only views of one mapped
    window at a time: each window is unmapped when the next is asked for, so the pages count
    as this process's memory only while in use."""
    with open(path, "rb") as handle:

        def views() -> Iterator[memoryview]:
            position, end = offset, offset + length
            while position < end:
                start = position - position % mmap.ALLOCATIONGRANULARITY
                size = min(WINDOW_BYTES, end - start)
                with (
                    mmap.mmap(handle.fileno(), size, offset=start, access=mmap.ACCESS_READ) as m,
                    memoryview(m) as whole,
                    whole[position - start :] as view,
                ):
                    yield view
                position = start + size

        yield views()


def file_region_crc32(path: Path, offset: int, length: int) -> int:
    """CRC-32 of ``length`` bytes of a file from ``offset``, one mapped window at a time."""
    value = 0
    with _windows(path, offset, length) as views:
        for view in views:
            check("region.crc")
            value = crc32(view, value)
    return value


class _Crc32Digest:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any) -> None:
        self.value = crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


def save_file_region(
    path: Path,
    source: Path,
    offset: int,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    shown_as: Path,
    checksum: Checksum = "sha256",
) -> FileRecord:
    """``torch.save`` (to a handle) of the C-contiguous tensor whose bytes are ``source`` from
    ``offset``, written to ``path`` one mapped window at a time; returns its size and checksum
    (SHA-256 on a helper thread, beside the write). Errors name ``shown_as``."""
    dtype = np.dtype(dtype)
    nbytes = _nbytes(shape, dtype)
    if nbytes < 4:  # too few bytes to stand in for: save them as they are
        with open(source, "rb") as handle:
            handle.seek(offset)
            array = np.frombuffer(handle.read(nbytes), dtype).reshape(shape).copy()
        return save_tensor(path, torch.from_numpy(array), shown_as, checksum=checksum)
    head, tail = torch_frame(shape, dtype, file_region_crc32(source, offset, nbytes))
    digest: Any = hashlib.sha256() if checksum == "sha256" else _Crc32Digest()
    try:
        with (
            open(path, "wb") as handle,
            ThreadPoolExecutor(1) as hasher,
            _windows(source, offset, nbytes) as views,
        ):
            pieces: Iterator[bytes | memoryview] = itertools.chain([head], views, [tail])
            for piece in pieces:  # one window at a time
                check("region.copy")  # the hasher is idle here: leaving the pool cannot wait
                hashed = hasher.submit(digest.update, piece)
                handle.write(piece)
                hashed.result()
    except OSError as exc:  # a full disk, a file-size limit: say which file
        raise PrepareError(f"could not write {shown_as}: {exc}") from exc
    return FileRecord(
        bytes=len(head) + nbytes + len(tail), checksum=checksum, value=digest.hexdigest()
    )
