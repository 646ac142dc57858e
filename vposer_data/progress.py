"""The stages' progress bars (tqdm), made only when they are shown.

tqdm starts its monitor thread with the first bar it makes, shown or not, and leaves it
running in the caller's process; with the bars off, no bar is made, so no thread is left
behind (a process with threads that later forks, as DataLoader workers do, risks inheriting
a lock held, and Python 3.12 warns of it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(iterable: Iterable[T], show: bool | None, **options: Any) -> Iterable[T]:
    """``iterable`` behind a bar when ``show`` (None: when stderr is a terminal, as tqdm's
    own default), else ``iterable`` itself. ``options`` are tqdm's."""
    if show is None:
        show = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return tqdm(iterable, **options) if show else iterable
