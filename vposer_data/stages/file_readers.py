"""Stage I's motion files read in worker processes, their samples handed back through shared
memory, results in the files' order.

Processes, because reader threads hold the GIL much of the time. The samples do not travel
through the workers' pipes (unpickling them would cost about as much as reading them): each
worker appends its arrays to an anonymous shared-memory file (``memfd``) of its own, and
sends back only where each array lies. The main process maps those files read-only, without
copying, item by item as results arrive, and gives each part back (unmapped, its pages of the
memory file freed) once the caller has let go of its arrays: memory holds about the items in
flight, not the split. Where files are read in threads, a few items are read ahead, no more.

Worker processes are used where they are forked (the memory files are inherited: Linux, see
:mod:`vposer_data.stages.worker_start`) and the platform has ``memfd_create`` and ``pwrite``;
elsewhere, and with ``num_workers=0``, files are read in threads of this process. The results
are the same either way. Measurements: docs/notes/reading-performance.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import mmap
import os
import pickle
import traceback
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

import numpy as np
from torch.utils.data import DataLoader, Dataset, get_worker_info

from vposer_data.interrupts import check, start_workers
from vposer_data.memory import free_file_range
from vposer_data.stages.worker_start import worker_context

__all__ = ["read_in_order", "read_items_in_order", "workers_can_share"]

_log = logging.getLogger(__name__)
S = TypeVar("S")
R = TypeVar("R")

#: Files per DataLoader item: enough to keep the per-item traffic small, few enough to keep
#: the workers evenly loaded at the end of a split.
FILES_PER_ITEM = 8
#: Where each array starts in its memory file: numpy's alignment for any dtype.
_ALIGN = 64
_PAGE = mmap.PAGESIZE
#: Items read ahead of the caller per reader thread, where files are read in threads.
_AHEAD_PER_THREAD = 2


@dataclass(frozen=True)
class _Placed:
    """Where a worker put an array: in the memory file of ``worker``, at ``offset``."""

    worker: int
    offset: int
    dtype: str
    shape: tuple[int, ...]


def workers_can_share(num_workers: int) -> bool:
    """Whether files can be read in worker processes here (see the module's docstring)."""
    return (
        num_workers > 0
        and hasattr(os, "memfd_create")
        and hasattr(os, "pwrite")
        and worker_context() is not None  # forked: the memory files are inherited
    )


def _replace_arrays(result: Any, names: frozenset[str], change: Callable[[str, Any], Any]) -> None:
    """Replace, in place, each array of ``result`` (a dataclass) named in ``names`` by
    ``change(name, value)``: a field ``x``, or ``x.key`` for an entry of a dict field ``x``."""
    if not dataclasses.is_dataclass(result) or isinstance(result, type):
        return
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if field.name in names and value is not None:
            setattr(result, field.name, change(field.name, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                if f"{field.name}.{key}" in names:
                    value[key] = change(f"{field.name}.{key}", item)


class _ReadInWorkers(Dataset[bytes], Generic[S]):
    """Item ``i``: the results of files ``i * FILES_PER_ITEM ...``, arrays placed in the
    calling worker's memory file."""

    def __init__(
        self,
        read: Callable[[Sequence[S]], list[Any]],
        sources: Sequence[S],
        files: list[int],
        shared: Sequence[str],
    ) -> None:
        self.read = read  # an item's sources at once
        self.sources = sources
        self.files = files  # the memory file of each worker
        self.names = frozenset(shared)
        self.end = 0  # in a worker: the end of its memory file
        self.unshared = ""  # in a worker: why an array did not fit in shared memory, if one did not

    def __len__(self) -> int:
        return -(-len(self.sources) // FILES_PER_ITEM)

    def _place(self, worker: int, name: str, value: np.ndarray) -> _Placed | np.ndarray:
        """The array written to shared memory and where; or, where it does not fit (a memory
        or file-size limit), the array itself, to travel pickled."""
        array = np.ascontiguousarray(value)
        offset = -(-self.end // _ALIGN) * _ALIGN
        data = array.reshape(-1).view(np.uint8).data
        written = 0
        try:
            while written < len(data):  # pwrite may write less than asked
                written += os.pwrite(self.files[worker], data[written:], offset + written)
        except OSError as exc:
            self.unshared = self.unshared or f"{name}: {exc}"
            return array
        self.end = offset + len(data)
        return _Placed(worker, offset, array.dtype.str, tuple(array.shape))

    def __getitem__(self, index: int) -> bytes:
        """The item's results, or the error that stopped them, pickled here: a failure to
        pickle is then raised where it can be reported (the DataLoader's queue pickles on a
        helper thread, which would drop the item and leave the caller waiting for ever), and an
        error comes back as data, so the caller stops the workers before raising it."""
        try:
            info = get_worker_info()
            worker = info.id if info is not None else 0
            start = index * FILES_PER_ITEM
            results = self.read(self.sources[start : start + FILES_PER_ITEM])
            for result in results:
                _replace_arrays(result, self.names, lambda name, v: self._place(worker, name, v))
            unshared, self.unshared = self.unshared, ""
            return pickle.dumps((results, unshared, None), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            try:
                error: bytes | None = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                error = None
            return pickle.dumps(([], "", _Failure(error, traceback.format_exc())))


@dataclass
class _Failure:
    """An error raised in a worker (pickled, where it pickles) and its traceback there."""

    error: bytes | None
    text: str

    def raise_here(self) -> NoReturn:
        """Raise the worker's error here, caused by its traceback there; an error that does
        not travel is a RuntimeError with that traceback."""
        remote = _WorkerTraceback(self.text)
        try:
            error = pickle.loads(self.error) if self.error is not None else None
        except Exception:
            error = None
        if not isinstance(error, BaseException):
            raise RuntimeError(f"a Stage I reader process failed:\n{self.text}") from remote
        raise error from remote


class _WorkerTraceback(Exception):
    """Shown as the cause of an error raised in a reader process: where it happened there."""

    def __init__(self, text: str) -> None:
        super().__init__(f'\n"""\n(in a Stage I reader process)\n{text}"""')


class _MemoryFiles:
    """The readers' memory files as this process uses them: the arrays of each item mapped
    when it arrives (read-only, without copying), and given back once no view of them is
    left: unmapped, and their pages of the memory file freed. Each worker's memory file is
    filled and used in the same order, so what is given back is always a file's front part,
    and memory holds about the items in flight, whatever the number of files."""

    def __init__(self, files: list[int]) -> None:
        self.files = files
        # per worker: the mappings not yet given back, in file order, each with the offset
        # its data end at; and the offset below which the file was freed
        self.held: dict[int, deque[tuple[mmap.mmap, int]]] = {}
        self.freed: dict[int, int] = {}

    def place(self, results: list[Any], names: frozenset[str]) -> None:
        """Replace the placeholders in ``results`` by views of the memory files."""
        spans: dict[int, tuple[int, int]] = {}

        def note(name: str, placed: Any) -> Any:
            if not isinstance(placed, _Placed):
                return placed
            end = placed.offset + math.prod(placed.shape) * np.dtype(placed.dtype).itemsize
            if end > placed.offset:
                low, high = spans.get(placed.worker, (placed.offset, end))
                spans[placed.worker] = (min(low, placed.offset), max(high, end))
            return placed

        for result in results:
            _replace_arrays(result, names, note)
        maps: dict[int, tuple[mmap.mmap, int]] = {}
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        for worker, (low, high) in spans.items():
            start = low - low % mmap.ALLOCATIONGRANULARITY
            maps[worker] = (
                mmap.mmap(self.files[worker], high - start, flags, mmap.PROT_READ, offset=start),
                start,
            )
            self.held.setdefault(worker, deque()).append((maps[worker][0], high))

        def view(name: str, placed: Any) -> Any:
            if not isinstance(placed, _Placed):
                return placed  # it came pickled
            dtype = np.dtype(placed.dtype)
            count = math.prod(placed.shape)
            if count == 0:
                return np.empty(placed.shape, dtype)
            mapped, start = maps[placed.worker]
            array = np.frombuffer(mapped, dtype, count=count, offset=placed.offset - start)
            return array.reshape(placed.shape)

        for result in results:
            _replace_arrays(result, names, view)

    def give_back(self) -> None:
        """Unmap, in file order, the mappings no view holds any more, and free what they
        covered (from where the file was last freed, so pages shared by two items go too)."""
        for worker, mappings in self.held.items():
            end = None
            while mappings:
                mapped, high = mappings[0]
                try:
                    mapped.close()
                except BufferError:  # the caller still holds a view: later
                    break
                mappings.popleft()
                end = high
            if end is not None:
                start = self.freed.get(worker, 0)
                free_file_range(self.files[worker], start - start % _PAGE, end)
                self.freed[worker] = end

    def let_go(self) -> None:
        """Unmap what no view holds; leave the rest to the views (each unmaps with its last)."""
        self.give_back()
        self.held.clear()


def _stop_workers(batches: Any) -> None:
    """Stop a DataLoader iterator's workers now, not when it is collected (which a traceback
    holding it would delay)."""
    stop = getattr(batches, "_shutdown_workers", None)  # torch's, private: else at collection
    if stop is not None:
        stop()


def _in_workers(
    read: Callable[[Sequence[S]], list[R]],
    sources: Sequence[S],
    num_workers: int,
    shared: Sequence[str],
    warn: Callable[[str], None],
) -> Iterator[R]:
    files: list[int] = []
    memory = _MemoryFiles(files)
    try:
        for worker in range(num_workers):
            files.append(os.memfd_create(f"vposer_data-{worker}"))
        loader = DataLoader(
            _ReadInWorkers(read, sources, files, shared),
            batch_size=None,
            shuffle=False,
            num_workers=num_workers,
            prefetch_factor=4,  # items are bytes, which the default collate leaves as they are
            multiprocessing_context=worker_context(),
        )
        names = frozenset(shared)
        failure: _Failure | None = None
        warned = False
        batches = start_workers(loader)
        try:
            for pickled in batches:
                try:
                    results, unshared, failure = pickle.loads(pickled)
                except Exception as exc:
                    results, unshared = [], ""
                    failure = _Failure(None, f"{type(exc).__name__}: {exc}")
                if failure is not None:
                    break
                check("stage1.read")  # the readers are stopped below, the files closed
                if unshared and not warned:
                    warned = True
                    warn(
                        f"an array did not fit in shared memory ({unshared}): "
                        "such arrays come back through the reader processes' pipes, more slowly"
                    )
                memory.place(results, names)
                while results:  # held here no longer than by the caller
                    yield results.pop(0)
                memory.give_back()
        finally:
            _stop_workers(batches)
            del batches
        if failure is not None:
            failure.raise_here()
    finally:
        memory.let_go()
        for fd in files:
            os.close(fd)  # a mapping keeps its memory file until its last view goes


def _in_threads(
    read: Callable[[Sequence[S]], list[R]], sources: Sequence[S], num_workers: int
) -> Iterator[R]:
    """``read`` over ``sources`` in threads, an item of ``FILES_PER_ITEM`` files at a time as
    the worker processes read them (the same results, whatever the number of workers), in
    order, a few items ahead of the caller (not all of them: the results would pile up in
    memory when the caller is slower)."""
    threads = max(1, num_workers)
    items = (sources[i : i + FILES_PER_ITEM] for i in range(0, len(sources), FILES_PER_ITEM))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead: deque[Future[list[R]]] = deque()
        for item in itertools.islice(items, threads * _AHEAD_PER_THREAD):
            ahead.append(pool.submit(read, item))
        try:
            while ahead:
                results = ahead.popleft().result()
                check("stage1.read")  # the reads not started are cancelled below
                for item in itertools.islice(items, 1):
                    ahead.append(pool.submit(read, item))
                while results:  # held here no longer than by the caller
                    yield results.pop(0)
        finally:
            for future in ahead:
                future.cancel()


def read_in_order(
    read: Callable[[S], R],
    sources: Sequence[S],
    num_workers: int,
    shared: Sequence[str],
    warn: Callable[[str], None] = _log.warning,
) -> Generator[R, None, None]:
    """``read(source)`` for each source, in order, in ``num_workers`` worker processes where
    :func:`workers_can_share`, else in threads (:func:`read_items_in_order`, one file at a
    time)."""
    yield from read_items_in_order(
        lambda item: [read(source) for source in item], sources, num_workers, shared, warn
    )


def read_items_in_order(
    read_item: Callable[[Sequence[S]], list[R]],
    sources: Sequence[S],
    num_workers: int,
    shared: Sequence[str],
    warn: Callable[[str], None] = _log.warning,
) -> Generator[R, None, None]:
    """The result of each source, in order: ``read_item`` reads an item of ``FILES_PER_ITEM``
    sources at once (work shared across files, such as Stage I's kinematics) and returns one
    result per source, in ``num_workers`` worker processes where :func:`workers_can_share`,
    else in threads; the items are the same either way.

    A result is a dataclass; the arrays it names in ``shared`` (fields ``x``, or entries
    ``x.key`` of dict fields) come back through shared memory, the rest through the workers'
    pipes. They arrive as read-only views of that memory, which goes back to the system soon
    after the caller drops them (when a later result is asked for): a caller that uses each
    result and lets go of its arrays holds only the files in flight, whatever their number.
    An array that does not fit in shared memory travels pickled, and ``warn`` says so once."""
    if not workers_can_share(num_workers):
        yield from _in_threads(read_item, sources, num_workers)
        return
    yield from _in_workers(read_item, sources, num_workers, shared, warn)
