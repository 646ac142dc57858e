"""Stage I's readers: worker processes hand arrays back through shared memory, in order, the
same as threads; errors come through; nothing (processes, descriptors, memory) outlives the
results."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.stages.file_readers import (
    _AHEAD_PER_THREAD,
    FILES_PER_ITEM,
    read_in_order,
    read_items_in_order,
    workers_can_share,
)

pytestmark = pytest.mark.skipif(
    not workers_can_share(2), reason="worker processes share memory on Linux with fork only"
)

SHARED = ("frames", "source_root", "arrays.a", "arrays.b", "arrays.empty")


@dataclass
class Result:
    """Shaped like Stage I's: shared fields, shared dict entries, and what travels pickled."""

    index: int
    frames: np.ndarray
    arrays: dict[str, np.ndarray]
    betas: np.ndarray  # not shared: pickled
    source_root: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Unusable:
    index: int
    reason: str


def _read(index: int) -> Result | Unusable:
    """A deterministic result of varying size per index: odd shapes and dtypes, empty arrays,
    optional entries, and now and then no arrays at all."""
    rng = np.random.default_rng(index)
    if index % 11 == 7:
        return Unusable(index, f"file {index} is not a motion")
    rows = int(rng.integers(0, 300))
    arrays = {"a": rng.standard_normal((rows, 3)).astype(np.float32)}
    if index % 3:
        arrays["b"] = rng.standard_normal((rows, 5, 7)).astype(np.float32)[:, ::2]  # strided
    if index % 5 == 0:
        arrays["empty"] = np.zeros((rows, 0), np.float32)
    return Result(
        index=index,
        frames=np.sort(rng.choice(10_000, size=rows, replace=False)).astype(np.int64),
        arrays=arrays,
        betas=rng.standard_normal(16).astype(np.float32),
        source_root=rng.standard_normal((rows, 3)) if index % 2 else None,
        notes=[f"read {index}"],
    )


def _same(got: Result | Unusable, expected: Result | Unusable) -> None:
    assert type(got) is type(expected)
    if isinstance(expected, Unusable):
        assert got == expected
        return
    assert isinstance(got, Result)
    assert got.index == expected.index and got.notes == expected.notes
    np.testing.assert_array_equal(got.betas, expected.betas)
    for name in ("frames", "source_root"):
        want, have = getattr(expected, name), getattr(got, name)
        if want is None:
            assert have is None
            continue
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_array_equal(have, want)
    assert sorted(got.arrays) == sorted(expected.arrays)
    for key, want in expected.arrays.items():
        have = got.arrays[key]
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_array_equal(have, want)


def _descriptors() -> set[str]:
    """This process's open descriptors (after the cyclic collection that closes a finished
    DataLoader iterator's pipes); also checks that no worker is left running."""
    assert multiprocessing.active_children() == []
    gc.collect()
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            found.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
    return found


def _assert_descriptors_return_to(before: set[str], seconds: float = 10.0) -> None:
    """This process's descriptors are ``before``'s again, within ``seconds``: a stopped
    DataLoader's queues close their pipes on their feeder threads, a moment after it returns
    (a loaded machine once caught two still open); a leak never settles."""
    deadline = time.monotonic() + seconds
    while (now := _descriptors()) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now == before, f"left open: {sorted(now - before)}; closed: {sorted(before - now)}"


def _memory_files_mapped() -> int:
    """How many mappings of the readers' memory files this process has."""
    return Path("/proc/self/maps").read_text().count("memfd:vposer_data-")


@pytest.mark.parametrize("count", [1, FILES_PER_ITEM, FILES_PER_ITEM + 1, 1_000])
def test_workers_return_what_threads_return_in_order(count: int) -> None:
    expected = [_read(i) for i in range(count)]
    for workers in (1, 2, 3):
        got = list(read_in_order(_read, range(count), workers, SHARED))
        assert len(got) == count
        for have, want in zip(got, expected, strict=True):
            _same(have, want)
    threads = list(read_in_order(_read, range(count), 0, SHARED))
    for have, want in zip(threads, expected, strict=True):
        _same(have, want)


def _items_read(item: Sequence[int]) -> list[tuple[int, ...]]:
    """For each file of an item: the files read with it."""
    return [tuple(item) for _ in item]


@pytest.mark.parametrize("count", [1, FILES_PER_ITEM + 3, 3 * FILES_PER_ITEM])
def test_files_are_read_together_in_the_same_items_in_threads_and_workers(count: int) -> None:
    """``read_items_in_order`` reads the same items of FILES_PER_ITEM files in threads and in
    any number of worker processes: work shared within an item (Stage I's kinematics) gives
    the same results whatever the number of workers."""
    expected = [
        tuple(range(i - i % FILES_PER_ITEM, min(count, i - i % FILES_PER_ITEM + FILES_PER_ITEM)))
        for i in range(count)
    ]
    for workers in (0, 1, 2):
        got = read_items_in_order(_items_read, range(count), workers, ())
        assert list(got) == expected, workers


def test_shared_arrays_are_aligned_read_only_views_until_dropped() -> None:
    before = _descriptors()
    got = list(read_in_order(_read, range(200), 2, SHARED))
    assert _memory_files_mapped() > 0
    arrays = [r.arrays["a"] for r in got if isinstance(r, Result) and r.arrays["a"].size]
    assert all(a.ctypes.data % 64 == 0 and not a.flags.writeable for a in arrays)
    del got, arrays
    # the last view took the memory, and the descriptor a mapping keeps, with it
    assert _memory_files_mapped() == 0
    _assert_descriptors_return_to(before)


@dataclass
class Big:
    frames: np.ndarray
    crc: int


def _read_big(index: int) -> Big:
    values = np.random.default_rng(index).integers(0, 2**62, size=8 * 2**20, dtype=np.int64)
    return Big(values, zlib.crc32(values.tobytes()))


def test_a_large_split_keeps_its_bits() -> None:
    """Realistic sizes: 64 MB per file across two workers, checksummed both ways."""
    results = list(read_in_order(_read_big, range(6), 2, ("frames",)))
    assert [zlib.crc32(r.frames.tobytes()) for r in results] == [r.crc for r in results]


class Broken(RuntimeError):
    pass


def _read_failing(index: int) -> Result | Unusable:
    if index == 37:
        raise Broken(f"cannot read {index}")
    return _read(index)


def test_an_error_in_a_worker_reaches_the_caller_and_stops_the_workers() -> None:
    before = _descriptors()
    with pytest.raises(Broken, match="cannot read 37") as raised:
        list(read_in_order(_read_failing, range(100), 2, SHARED))
    assert "in _read_failing" in str(raised.value.__cause__)  # where it failed, in the worker
    _assert_descriptors_return_to(before)
    assert _memory_files_mapped() == 0


class TwoArguments(Exception):
    """An error that pickles but does not unpickle (its ``args`` are not its signature)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def _read_odd_error(index: int) -> Result | Unusable:
    if index == 5:
        raise TwoArguments(f"file {index}", "odd")
    return _read(index)


def test_an_error_that_cannot_travel_comes_back_as_its_traceback() -> None:
    with pytest.raises(RuntimeError, match=r"TwoArguments: file 5: odd"):
        list(read_in_order(_read_odd_error, range(30), 2, SHARED))
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(120)
def test_a_result_that_cannot_be_pickled_is_an_error_not_a_hang() -> None:
    class Local:  # a class pickle cannot find by name
        pass

    def read(index: int) -> Local:
        return Local()

    before = _descriptors()
    with pytest.raises(AttributeError, match="pickle"):
        list(read_in_order(read, range(20), 2, SHARED))
    _assert_descriptors_return_to(before)


def test_stopping_early_stops_the_workers_and_frees_everything() -> None:
    """As Stage I's strict mode does at the first unusable file."""
    before = _descriptors()
    results = read_in_order(_read, range(500), 2, SHARED)
    for result in results:
        if isinstance(result, Unusable):
            results.close()
            break
    _assert_descriptors_return_to(before)
    assert _memory_files_mapped() == 0


@settings(max_examples=15, deadline=None)
@given(count=st.integers(1, 40), workers=st.integers(1, 3))
def test_any_count_and_worker_number_gives_the_sequential_results(count: int, workers: int) -> None:
    got = list(read_in_order(_read, range(count), workers, SHARED))
    for have, want in zip(got, [_read(i) for i in range(count)], strict=True):
        _same(have, want)


def test_arrays_that_do_not_fit_in_shared_memory_come_pickled_with_a_warning(
    tmp_path: Path,
) -> None:
    """A file-size limit (as with a full disk) caps the memory files: the arrays past it
    travel through the pipes, the results are the same, and the caller is told once."""
    script = tmp_path / "limited.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import resource, signal, sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_file_readers import SHARED, _read, _same
            from vposer_data.stages.file_readers import read_in_order

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
            warnings = []
            got = list(read_in_order(_read, range(300), 2, SHARED, warn=warnings.append))
            for have, index in zip(got, range(300), strict=True):
                _same(have, _read(index))
            print(len(warnings), warnings[0] if warnings else "")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    count, message = done.stdout.strip().split(" ", 1)
    assert count == "1"
    assert "did not fit in shared memory" in message and "File too large" in message


@dataclass
class Piece:
    index: int
    frames: np.ndarray


def _read_piece(index: int) -> Piece:
    return Piece(index, np.full(1 << 17, index, np.int64))  # 1 MB


def _memory_file_bytes() -> tuple[int, int]:
    """Bytes the readers' memory files hold (allocated, whatever their size), and bytes of
    them mapped in this process."""
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:vposer_data-"):
                held += os.stat(f"/proc/self/fd/{fd}").st_blocks * 512
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    mapped = 0
    for line in Path("/proc/self/maps").read_text().splitlines():
        if "memfd:vposer_data-" in line:
            start, end = line.split()[0].split("-")
            mapped += int(end, 16) - int(start, 16)
    return held, mapped


def test_memory_holds_the_files_in_flight_not_all_read() -> None:
    """400 files of 1 MB: each is given back once the caller lets go of it, so the memory
    files hold what the workers read ahead (about 12 items of 8 files: 4 queued per worker,
    one being read by each, one in use) and this process maps about one item, not the 400 MB
    read."""
    most_held = most_mapped = 0
    count = 0
    for result in read_in_order(_read_piece, range(400), 2, ("frames",)):
        assert (result.frames == result.index).all() and result.index == count
        held, mapped = _memory_file_bytes()
        most_held, most_mapped = max(most_held, held), max(most_mapped, mapped)
        count += 1
        del result
    assert count == 400
    assert 0 < most_held < 160 << 20
    assert 0 < most_mapped <= 2 * FILES_PER_ITEM << 20


def test_threads_read_a_few_items_ahead_not_all() -> None:
    """Where files are read in threads, as many results as files would otherwise pile up
    when the caller is slower than the readers: the item the caller is in, and at most
    ``_AHEAD_PER_THREAD`` more per thread, are read."""
    started: list[int] = []

    def read(index: int) -> int:
        started.append(index)
        return index

    for index in read_in_order(read, range(200), 0, ()):  # 0: one thread
        time.sleep(0.001)  # a slow caller
        item_end = (index // FILES_PER_ITEM + 1) * FILES_PER_ITEM
        assert len(started) <= item_end + _AHEAD_PER_THREAD * FILES_PER_ITEM
    assert sorted(started) == list(range(200))
