"""What both benchmarks share: waiting for a quiet machine before a measured run."""

from __future__ import annotations

import time

import psutil


def wait_until_idle(limit: float, threshold: float = 10.0, window: float = 2.0) -> float:
    """Wait (at most ``limit`` seconds) until the machine's CPU is below ``threshold`` percent
    busy over ``window`` seconds; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if psutil.cpu_percent(interval=window) < threshold:
            break
    return time.perf_counter() - started
