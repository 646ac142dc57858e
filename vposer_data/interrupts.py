"""Ctrl-C during preparation: a request to stop, honoured at the next safe point.

While :class:`Interrupts` is active, the SIGINT handler only records the request; it never
raises. The pipeline calls :func:`check` at safe points between blocks of bounded length (one
motion file read, one batch augmented, 32 MB copied, one file flushed, ...: :data:`SITES`), and
there, in this package's own code, raises :class:`Interrupted`, a ``KeyboardInterrupt``. An
interruption raised by the handler itself would land wherever the main thread happens to be,
also inside library code holding a lock (a ``ThreadPoolExecutor``'s, a ``Semaphore``'s),
leaving the lock held and the run hanging for ever in ``shutdown(wait=True)``; here that cannot
happen, whatever the timing.

- Worker processes never see Ctrl-C: :func:`start_workers` forks them with SIGINT blocked, and
  this process stops them when it stops.
- A second Ctrl-C is the same request: the run is already on its way to the next safe point.
- The handler is installed with SA_RESTART: a system call the signal interrupts in library code
  resumes rather than failing with EINTR. An error that still comes after Ctrl-C, before a
  safe point saw it, ends the run as the interruption (its cause kept).
- Only the process that installed the handler stops at the safe points (a forked worker that
  reaches one goes on).
- A Python handler the caller installed is replaced while the run lasts, then restored and
  called once, after the run stopped, with the Ctrl-C it missed. A caller that ignores SIGINT
  (``SIG_IGN``) or runs in another thread than the main one keeps its own handling.

:func:`ctrl_c_at` and :func:`checks_reached` are the test surface: a real SIGINT at the n-th
visit of a safe point, and the count of visits per safe point.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "SITES",
    "Interrupted",
    "Interrupts",
    "check",
    "checks_reached",
    "ctrl_c_at",
    "start_workers",
]

T = TypeVar("T")

#: Every safe point, by name, with the block that separates two visits of it: a stop waits
#: for at most the block in progress (and, with reader or augmenting worker processes, for
#: each worker to finish the item it is working on).
SITES: dict[str, str] = {
    "lock": "waiting for the output folder's lock: polled every 0.1 s",
    "walk": "finding a split's .npz files: one folder listed",
    "inputs": "fingerprinting a split's inputs: one file's size and time, or its zip directory"
    " (also one motion's model found, or one body model read)",
    "stage1.read": "Stage I: one motion file read and appended (in workers: one item of 8 files)",
    "stage1.field": "Stage I: one field's file completed (its head and tail written)",
    "stage2.batch": "Stage II: one batch augmented and written",
    "stage3.column": "Stage III: one field's column",
    "stage3.block": "Stage III, compressed input: one chunk inflated, or 16 MB of rows read",
    "tensor.frame": "saving a tensor: polled every 0.05 s while torch.save frames its stand-in",
    "region.crc": "saving a column: 32 MB checksummed",
    "region.copy": "saving a column: 32 MB copied and hashed",
    "stats.block": "statistics: one block of rows",
    "crc.window": "checksumming a file: one 64 MB window",
    "durable.file": "making a split durable: one file flushed to disk",
    "split.done": "a stage's split done, before it is renamed and recorded",
    "end": "every split done, before the folder is recorded complete",
}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, raised at a safe point. ``site``: the safe point that first saw the request."""

    def __init__(self, site: str) -> None:
        super().__init__(f"interrupted (Ctrl-C) at {site}: {SITES.get(site, site)}")
        self.site = site


@dataclass
class _State:
    pid: int | None = None  # the process whose handler is installed; None: none is
    requested: bool = False
    noticed: str | None = None  # the first safe point that saw the request
    # the test surface: visits per safe point, and where to press Ctrl-C
    counts: Counter[str] | None = None
    press_at: tuple[str, int] | None = None
    pressed: bool = False


_state = _State()


def _handle(signum: int, frame: Any) -> None:
    """The SIGINT handler: record the request, nothing else."""
    _state.requested = True


def _reached(site: str) -> bool:
    """Count a visit of ``site`` (tests), and whether a stop was requested."""
    if _state.counts is not None:
        _state.counts[site] += 1
        if _state.press_at == (site, _state.counts[site]) and not _state.pressed:
            _press(site)
    if not _state.requested or _state.pid != os.getpid():
        return False
    if _state.noticed is None:
        _state.noticed = site
    return True


def check(site: str) -> None:
    """At a safe point: raise :class:`Interrupted` if Ctrl-C was pressed (only where
    :class:`Interrupts` is active, in the process that made it)."""
    if _reached(site):
        raise Interrupted(_state.noticed or site)


class Interrupts:
    """While active, Ctrl-C is a request to stop at the next :func:`check`. Nested uses share
    the outer one. On leaving after Ctrl-C without having stopped at a safe point (pressed after
    the last one, or an error came first), it raises :class:`Interrupted` there: no Ctrl-C is
    lost, and a stop asked for ends as one."""

    def __init__(self) -> None:
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        if _state.pid == os.getpid() or threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # SIG_IGN or SIG_DFL: the caller's choice
            return self
        _state.requested, _state.noticed = False, None
        _state.pid = os.getpid()
        self._previous = signal.signal(signal.SIGINT, _handle)
        # system calls the signal interrupts are resumed, in library code too (HDF5, torch),
        # which could otherwise take EINTR for an error
        signal.siginterrupt(signal.SIGINT, False)
        self._installed = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, *rest: object
    ) -> None:
        if not self._installed:
            return
        signal.signal(signal.SIGINT, self._previous)
        pressed, noticed = _state.requested, _state.noticed
        _state.pid, _state.requested, _state.noticed = None, False, None
        if not pressed:
            return
        if self._previous is not signal.default_int_handler:
            self._previous(signal.SIGINT, None)  # the caller's handler, told after the stop
        elif kind is None:
            if noticed is None:  # Ctrl-C after the last safe point
                raise Interrupted("end")
        elif isinstance(error, Exception):  # an error after Ctrl-C, before a safe point saw
            raise Interrupted(noticed or "end") from error  # it: the stop asked for, exit 130


def start_workers(loader: Iterable[T]) -> Iterator[T]:
    """``iter(loader)``, which forks a DataLoader's workers, with SIGINT blocked meanwhile:
    the workers inherit the block and never see Ctrl-C (this process stops them), and a
    Ctrl-C pressed meanwhile reaches this process once the block is lifted."""
    if not hasattr(signal, "pthread_sigmask"):
        return iter(loader)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# --- test surface -----------------------------------------------------------------------------


def _press(site: str) -> None:
    """Ctrl-C now, as a terminal sends it: SIGINT to this process, handled by whatever handler
    is installed (on another thread than the main one, that handler is called here, so that
    the press happens before ``site`` looks for it)."""
    _state.pressed = True
    if _state.noticed is None and _state.pid == os.getpid():
        _state.noticed = site  # whichever thread sees it first, it was pressed here
    if threading.current_thread() is threading.main_thread():
        signal.raise_signal(signal.SIGINT)  # the handler runs before this returns
    else:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):  # else ignored (SIG_IGN), as the signal would be
            handler(signal.SIGINT, None)


@contextmanager
def checks_reached() -> Iterator[Counter[str]]:
    """For tests: the visits of each safe point while the context lasts."""
    previous = _state.counts
    _state.counts = Counter()
    try:
        yield _state.counts
    finally:
        _state.counts = previous


@contextmanager
def ctrl_c_at(site: str, visit: int = 1) -> Iterator[Counter[str]]:
    """For tests: press Ctrl-C (a real SIGINT to this process) when the run reaches the
    ``visit``-th visit of the safe point ``site``, just before that point looks for it.
    Yields the visits per safe point, as :func:`checks_reached`."""
    if site not in SITES:
        raise ValueError(f"no safe point {site!r}; expected one of {sorted(SITES)}")
    with checks_reached() as counts:
        _state.press_at, _state.pressed = (site, visit), False
        try:
            yield counts
        finally:
            _state.press_at, _state.pressed = None, False
