"""The run's log: lines go to ``prepare.log`` in the output folder and to the caller's logger.

The caller's logger may be a ``logging.Logger`` or, as in the original VPoser tools, any
callable taking a string. A run that stops early says so in the log (:func:`stopped_line`), and
the run that takes it up says what it resumes (:func:`resumed_line`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["LoggerLike", "RunLog", "resumed_line", "stopped_line"]

LoggerLike = logging.Logger | Callable[[str], None] | None
_module_log = logging.getLogger("vposer_data")


class RunLog:
    """Append timestamped lines to a file and forward them to a logger."""

    def __init__(self, path: Path | None, logger: LoggerLike = None) -> None:
        self.path = path
        self.logger = logger
        self._handle: TextIO | None = None

    def open(self, path: Path) -> None:
        """Start writing to ``path`` (appending: the file keeps every run's history)."""
        self.path = path
        self._handle = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _write(self, level: int, message: str) -> None:
        if self._handle is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for line in message.splitlines() or [""]:
                self._handle.write(f"{stamp} {logging.getLevelName(level):7s} {line}\n")
        if isinstance(self.logger, logging.Logger):
            self.logger.log(level, message)
        elif self.logger is not None:
            self.logger(message if level < logging.WARNING else f"WARNING: {message}")
        else:
            _module_log.log(level, message)

    def info(self, message: str) -> None:
        self._write(logging.INFO, message)

    def warning(self, message: str) -> None:
        self._write(logging.WARNING, message)


def _listed(pairs: Sequence[str]) -> str:
    return ", ".join(pairs) if pairs else "nothing"


def stopped_line(error: BaseException, kept: Sequence[str]) -> str:
    """The log line of a run that stops early: why, and the (stage, split) pairs it keeps."""
    if isinstance(error, KeyboardInterrupt):
        why = "interrupted (Ctrl-C)"
    else:
        first = (str(error).splitlines() or [""])[0]
        why = f"stopped by {type(error).__name__}: {first}"
    return (
        f"run {why}; kept (recorded in the manifest): {_listed(kept)}; "
        "the next run resumes from there"
    )


def resumed_line(started: str | None, kept: Sequence[str], todo: Sequence[str]) -> str | None:
    """The log line of a run that takes up an earlier, unfinished one (None for a fresh run):
    what is already recorded and what this run does."""
    if not kept:
        return None
    return (
        f"resuming the preparation started {started or 'earlier'}: already recorded: "
        f"{_listed(kept)}; to do: {_listed(todo)}"
    )
