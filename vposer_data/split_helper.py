"""The smaller splits prepared beside the largest one, in a forked helper process.

Each stage keeps about 1.7 of 2 cores busy, and the gaps (worker start-up, the end of a
split, Stage III waiting on the disk) add up to about a core-second at 2M raw frames. Run
alongside the largest split, the other splits fill those gaps: at 2M a run's stages took
3.6-4.1 s instead of 4.2-5.3 s.

The helper only makes outputs (each in its temporary place, renamed when complete, as in the
main process); it never writes the manifest nor the log. Everything it has to say travels
through a mailbox, an unlinked file both processes hold: its log lines, each finished
(stage, split) with its record, and at the end "done" or the error that stopped it. Writing
there never blocks, however long the main process takes to read it (a pipe's buffer would
fill with one Stage I record at the scale of all AMASS); the main process reads it between
its own steps and at the end, records what the helper finished, and logs what it said.

The helper is forked before any thread or worker of this run exists, dies with the main
process (``PR_SET_PDEATHSIG``), leaves by ``os._exit`` (never through the caller's cleanup,
which would release the folder's lock), and is stopped with Ctrl-C's signal when the main
process fails, so that it removes its temporary outputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from vposer_data.errors import PrepareError
from vposer_data.runlog import RunLog

__all__ = ["HelperLog", "Outbox", "SplitHelper"]

_HEADER = struct.Struct("<Q")
_PR_SET_PDEATHSIG = 1
#: The helper's (and its workers') scheduling niceness: the largest split's chain is the
#: run's critical path, so the helper takes what that chain leaves idle first (at 2M, 3.2-3.8 s
#: of stages against 3.5-4.0 s with the same priority; starved at no niceness, 19, on a
#: machine others also use).
_NICENESS = 10
#: How long a stopped helper may take to remove its temporary outputs before it is killed.
_STOP_SECONDS = 30.0


class Outbox:
    """The helper's end of the mailbox: one message per ``write``, appended."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, *message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with memoryview(_HEADER.pack(len(data)) + data) as view:
            written = 0
            while written < len(view):
                written += os.write(self.fd, view[written:])


class HelperLog(RunLog):
    """The helper's log: lines go to the main process, which writes them where the run's log
    goes, with the time they were said."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(None, None)
        self.outbox = outbox

    def _write(self, level: int, message: str, stamp: str | None = None) -> None:
        self.outbox.send("log", level, stamp or time.strftime("%Y-%m-%d %H:%M:%S"), message)


def _die_with_parent(parent: int) -> None:
    """Be killed when the main process dies (Linux), whatever kills it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


class SplitHelper:
    """A running helper process and the main process's end of its mailbox."""

    def __init__(self, pid: int, mailbox: IO[bytes], splits: list[str]) -> None:
        self.pid = pid
        self.mailbox = mailbox
        self.splits = splits
        self._offset = 0
        self._status: int | None = None  # wait status, once reaped
        self._ended = False  # "done" or "error" read

    @classmethod
    def start(cls, splits: list[str], work: Callable[[Outbox], None]) -> SplitHelper:
        """Fork a helper that runs ``work`` and reports through the mailbox. Ctrl-C is held
        back during the fork and raised right after (as for DataLoader workers)."""
        mailbox = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        parent = os.getpid()
        held: list[int] = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
        try:
            pid = os.fork()
            if pid == 0:  # the helper: never returns
                signal.signal(signal.SIGINT, previous)
                _helper_main(parent, Outbox(mailbox.fileno()), work, bool(held))
        finally:
            signal.signal(signal.SIGINT, previous)
        helper = cls(pid, mailbox, splits)
        if held:
            helper.stop()
            raise KeyboardInterrupt
        return helper

    def _messages(self) -> Iterator[tuple[Any, ...]]:
        """The complete messages written since the last call."""
        fd = self.mailbox.fileno()
        size = os.fstat(fd).st_size
        while self._offset + _HEADER.size <= size:
            (length,) = _HEADER.unpack(os.pread(fd, _HEADER.size, self._offset))
            start = self._offset + _HEADER.size
            if start + length > size:
                return  # still being written
            data = bytearray()
            while len(data) < length:
                data += os.pread(fd, length - len(data), start + len(data))
            self._offset = start + length
            yield pickle.loads(data)

    def deliver(self, apply: Callable[[tuple[Any, ...]], None]) -> None:
        """Hand every message that has arrived to ``apply`` (log lines and records); raise
        the helper's error when it reported one."""
        for message in self._messages():
            if message[0] == "done":
                self._ended = True
            elif message[0] == "error":
                self._ended = True
                self._reap(block=True)
                raise _error_from(message[1], message[2], self.splits)
            else:
                apply(message)

    def finish(self, apply: Callable[[tuple[Any, ...]], None]) -> None:
        """Wait for the helper to end, delivering its messages meanwhile."""
        while True:
            self.deliver(apply)
            if self._ended:
                self._reap(block=True)
                return
            if self._reap(block=False):
                self.deliver(apply)  # what it wrote before it ended
                if not self._ended:
                    raise PrepareError(
                        f"the helper process preparing split(s) {self.splits} ended without "
                        f"finishing ({_describe(self._status)}); run again to resume"
                    )
                return
            time.sleep(0.01)

    def stop(self, apply: Callable[[tuple[Any, ...]], None] | None = None) -> None:
        """Stop the helper (when the main process fails): Ctrl-C's signal, so that it removes
        its temporary outputs, then a kill if it takes too long. What it finished before is
        still handed to ``apply``."""
        if not self._reap(block=False):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + _STOP_SECONDS
            while not self._reap(block=False) and time.monotonic() < deadline:
                time.sleep(0.01)
            if not self._reap(block=False):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self._reap(block=True)
        if apply is not None:
            for message in self._messages():
                if message[0] not in ("done", "error"):
                    apply(message)

    def close(self) -> None:
        self.mailbox.close()

    def _reap(self, block: bool) -> bool:
        """Whether the helper has ended (reaping it)."""
        if self._status is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler ignoring children)
                self._status = 0
                return True
            if pid == 0:
                return False
            self._status = status
        return True


def _helper_main(parent: int, outbox: Outbox, work: Callable[[Outbox], None], held: bool) -> None:
    """The helper's whole life: run ``work``, report how it ended, and leave."""
    code = 1
    try:
        _die_with_parent(parent)
        with contextlib.suppress(OSError):
            os.nice(_NICENESS)
        if held:
            raise KeyboardInterrupt
        work(outbox)
        outbox.send("done")
        code = 0
    except BaseException as exc:  # everything, Ctrl-C included, is reported, then the exit
        payload: bytes | None = None
        with contextlib.suppress(Exception):
            pickled = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(pickled)  # an error that does not come back whole goes as text
            payload = pickled
        with contextlib.suppress(BaseException):
            outbox.send("error", payload, f"{type(exc).__name__}: {exc}")
    finally:
        os._exit(code)  # never the caller's cleanup (its lock, its log, atexit)


def _error_from(payload: bytes | None, text: str, splits: list[str]) -> BaseException:
    """The helper's error as it was raised there, or a PrepareError quoting it."""
    if payload is not None:
        with contextlib.suppress(Exception):
            error = pickle.loads(payload)
            if isinstance(error, BaseException):
                return error
    return PrepareError(f"preparing split(s) {splits} failed: {text}")


def _describe(status: int | None) -> str:
    if status is None:
        return "still running"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
