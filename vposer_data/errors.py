"""The package's exceptions: one family, so a caller (and the command line) can tell a problem
the user can fix from a bug.

Every error a user can cause derives from :class:`VPoserDataError` and, where that is what it
is, also from the built-in type callers already catch (``ValueError`` for bad values,
``FileNotFoundError`` for missing data). Reading errors (``AmassFormatError``) live in
``amass``, split errors (``SplitError``) in ``splits``, dataset errors in ``dataset``; each
derives from the base here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "REBUILD_HINT",
    "ConfigError",
    "FileFormatError",
    "PrepareError",
    "StaleOutputError",
    "VPoserDataError",
]

#: How a stale or damaged output folder is rebuilt, in Python's words: the one remedy text of
#: such errors, which the last line starts with (the command line puts that line in its own
#: words instead).
REBUILD_HINT = "Pass overwrite=True (vposer-data prepare --overwrite) to rebuild it"


class VPoserDataError(Exception):
    """Base of every error a user can cause: a bad setting, input file, split or folder."""


class ConfigError(VPoserDataError, ValueError):
    """A setting out of range or of the wrong type; the message shows the value found."""


class FileFormatError(VPoserDataError, ValueError):
    """An input file that cannot be used: ``path`` and ``problem`` (what was expected), the
    message being ``"<path>: <problem>"``. Pickled whole, when raised in another process."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem))


class PrepareError(VPoserDataError, RuntimeError):
    """Preparation cannot go on; the message says which split, file or setting, and why."""


class StaleOutputError(PrepareError):
    """The output folder holds data prepared with other settings; the message lists them."""
