"""Returning memory to the system: file-mapping pages a process is done with, the storage
of memory files, and the heap pages the C allocator keeps after large frees."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap

__all__ = ["free_file_range", "libc", "release_free_memory", "release_mapped_pages"]

_PAGE = mmap.PAGESIZE


def release_mapped_pages(address: int, length: int) -> None:
    """Unmap from this process the pages of a read-only file mapping from the one holding
    ``address`` to the last one wholly before ``address + length``: its resident size no
    longer counts them, and the page cache keeps them, so a later read maps them again
    unchanged. For a mapping read once in order (Stage II's workers, each call starting where
    the previous one ended), this keeps each process's RSS to what it is working on."""
    start = address - address % _PAGE
    stop = (address + length) // _PAGE * _PAGE
    if stop <= start or not hasattr(mmap, "MADV_DONTNEED"):
        return
    with contextlib.suppress(OSError, AttributeError):  # advice only: nothing lost if refused
        libc().madvise(ctypes.c_void_p(start), ctypes.c_size_t(stop - start), mmap.MADV_DONTNEED)


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (linux/falloc.h)


def free_file_range(fd: int, start: int, stop: int) -> bool:
    """Free the storage of bytes ``start .. stop`` of a file (they read as zeros after; its
    size is kept): for a memory file, its pages go back to the system. Whole pages are freed,
    partial ones zeroed. Returns whether the system did it (Linux ``fallocate``)."""
    if stop <= start:
        return True
    fallocate = getattr(libc(), "fallocate", None)
    if fallocate is None:
        return False
    fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    return bool(fallocate(fd, _PUNCH_HOLE, start, stop - start) == 0)


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS. glibc keeps them after large frees (notably from
    reader threads' arenas), which would make each stage's peak the floor of the next."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        libc().malloc_trim(0)
