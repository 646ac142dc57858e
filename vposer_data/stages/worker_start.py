"""How the stages start their worker processes: forked on Linux, whatever Python's default.

A forked worker starts at once and inherits this process's descriptors (Stage I's memory
files); one started by ``forkserver`` or ``spawn`` imports torch afresh and inherits none.
Forking is safe here: the workers run CPU code on data they map themselves and never touch
CUDA. Elsewhere the platform's default is kept. Measurements: docs/notes/reading-performance.md.
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
