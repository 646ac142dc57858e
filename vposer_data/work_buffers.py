"""Work buffers reused from call to call by the forward-kinematics loops, one set per thread.

A block of forward kinematics needs a few megabytes of temporaries. Allocated afresh, they are
handed back to the system when freed (the C allocator trims its heap, or they were mappings of
their own) and the next block faults every page in again: on the machines we measured, the
page faults took longer than the arithmetic (the feet of a 2,048-frame motion: 1.9 ms with
fresh temporaries, 0.75 ms with these). A buffer here is kept for the life of the thread, grown
when a larger one is asked for, never shrunk: a few megabytes, bounded by the block size, until
:func:`release_work_buffers`.

A buffer holds whatever was last written to it: callers overwrite what they read, and none
returns one to its own caller.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["release_work_buffers", "work_buffer"]

_local = threading.local()


def work_buffer(name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, the same memory each time
    this thread asks for ``name`` (two names never share memory)."""
    buffers: dict[tuple[str, np.dtype], np.ndarray] | None = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    key = (name, dtype)
    flat = buffers.get(key)
    if flat is None or flat.size < size:
        flat = buffers[key] = np.empty(size, dtype=dtype)
    return flat[:size].reshape(shape)


def release_work_buffers() -> None:
    """Let this thread's buffers go (the driver calls it after each split, so that a process
    that prepared with ``num_workers=0`` does not keep them)."""
    _local.buffers = {}
