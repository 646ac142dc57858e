"""The kinematics' reused work buffers: the same memory for the same name, grown when asked
for more, never shared between names, dtypes or threads, and let go on request."""

from __future__ import annotations

import threading

import numpy as np

from vposer_data.work_buffers import release_work_buffers, work_buffer


def address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def test_a_name_gets_its_memory_back_and_grows() -> None:
    first = work_buffer("test.a", (4, 8), np.float64)
    assert first.shape == (4, 8) and first.dtype == np.float64 and first.flags.c_contiguous
    first[:] = 7.0
    again = work_buffer("test.a", (2, 3), np.float64)  # smaller: the same memory
    assert address(again) == address(first) and (again == 7.0).all()
    larger = work_buffer("test.a", (100, 100), np.float64)
    assert larger.shape == (100, 100)
    assert address(work_buffer("test.a", (4, 8), np.float64)) == address(larger)


def test_names_dtypes_and_threads_never_share() -> None:
    a = work_buffer("test.b", (16,), np.float64)
    b = work_buffer("test.c", (16,), np.float64)
    c = work_buffer("test.b", (16,), np.float32)
    assert len({address(a), address(b), address(c)}) == 3
    seen: list[int] = []
    thread = threading.Thread(
        target=lambda: seen.append(address(work_buffer("test.b", (16,), np.float64)))
    )
    thread.start()
    thread.join()
    assert seen and seen[0] != address(a)


def test_release_lets_the_buffers_go() -> None:
    kept = work_buffer("test.d", (1000,), np.float64)
    release_work_buffers()
    fresh = work_buffer("test.d", (1000,), np.float64)
    assert fresh.base is not kept.base
