"""How the stages start their worker processes: forked on Linux, whatever Python's default.

Python 3.14 made ``forkserver`` the default start method on Linux (``spawn`` is the default on
macOS and Windows). A worker started that way imports torch afresh, about a second per worker,
split and stage, and inherits none of this process's descriptors, so Stage I could not share
its memory files and fell back to threads: at 2M raw frames a run took 11.7 s instead of 4.9 s
(Stage II 7.8 s instead of 1.0 s). Forking is safe for these workers: they run this package's
CPU code on data they map themselves and never touch CUDA, so a caller that has started CUDA
(a Lightning ``Trainer`` calling ``prepare_data``) does not disturb them. Elsewhere the
platform's default is kept.
"""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.context import BaseContext

__all__ = ["worker_context"]


def worker_context() -> BaseContext | None:
    """The context the stages' DataLoaders start workers with: ``fork`` on Linux, else None
    (the platform's default)."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None
