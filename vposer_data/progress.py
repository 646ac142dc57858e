"""The stages' progress bars (tqdm), made only when they are shown.

tqdm starts its monitor thread with the first bar it makes, shown or not, and a thread in this
process keeps a later run from forking its helper (:mod:`vposer_data.split_helper`); with the
bars off, no bar is made.
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
