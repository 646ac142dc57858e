"""Ctrl-C during preparation: stop cleanly wherever it lands, and never record an
interrupted split as done.

Two places need care. The interpreter swallows a KeyboardInterrupt raised inside a finalizer,
a weakref callback or an at-fork hook, so the run would go on: :class:`Interrupts` remembers
every Ctrl-C and ``check()`` raises it again before anything is recorded. And a Ctrl-C landing
while a DataLoader forks its workers would be swallowed or break the half-made iterator:
:func:`start_workers` holds it back for that moment.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Interrupts", "start_workers"]

T = TypeVar("T")


class Interrupts:
    """Ctrl-C raises KeyboardInterrupt as usual and is also remembered; ``check`` before each
    record stops the run there (and a swallowed one is not printed as an "Exception ignored"
    traceback)."""

    def __init__(self) -> None:
        self.received = False
        self._previous: Any = None
        self._previous_hook: Any = None

    def __enter__(self) -> Interrupts:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._previous_hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        raise KeyboardInterrupt

    def _unraisable(self, unraisable: Any) -> None:
        if not (self.received and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            self._previous_hook(unraisable)

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed, even if it was swallowed."""
        if self.received:
            raise KeyboardInterrupt

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            sys.unraisablehook = self._previous_hook


def start_workers(loader: Iterable[T]) -> Iterator[T]:
    """``iter(loader)``, which forks a DataLoader's workers, with Ctrl-C held back meanwhile
    and raised right after. The workers inherit the holding handler, so they leave Ctrl-C to
    this process, which stops them."""
    if threading.current_thread() is not threading.main_thread():
        return iter(loader)
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        batches = iter(loader)
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        del batches  # stops the workers
        raise KeyboardInterrupt
    return batches
