"""What fresh memory costs on this machine: touching memory the process has never used, against
touching memory freed a moment ago, and the same for writing a new file into the page cache.

    python benchmarks/bench_first_touch.py [--megabytes 1024] [--idle 5] [--dir /tmp]

On a virtual machine whose host backs guest memory lazily and takes freed pages back (free
page reporting), a page the guest has not used recently costs a fault on the host as well:
several times the cost of a page reused at once. Every stage's fresh allocations and new files
pay it, the I/O floor's too, so it is part of why the same run varies between minutes, and a
reason to reuse memory rather than allocate it anew. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def touch(megabytes: int) -> float:
    """Seconds to allocate and write ``megabytes`` of fresh anonymous memory (then freed)."""
    started = time.perf_counter()
    block = np.ones(megabytes * 2**20 // 8)
    seconds = time.perf_counter() - started
    del block
    return seconds


def write_file(folder: Path, megabytes: int, buffer: bytes) -> float:
    """Seconds to write a new file of ``megabytes`` (not flushed; then deleted)."""
    path = folder / "first_touch.bin"
    started = time.perf_counter()
    with open(path, "wb") as handle:
        for _ in range(megabytes * 2**20 // len(buffer)):
            handle.write(buffer)
    seconds = time.perf_counter() - started
    path.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before a 'cold' try")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    buffer = bytes(8 * 2**20)
    size = args.megabytes / 1024
    rows = []
    for label, measure in (
        ("anonymous memory", lambda: touch(args.megabytes)),
        ("new file, page cache", lambda: write_file(args.dir, args.megabytes, buffer)),
    ):
        time.sleep(args.idle)
        cold = measure()
        warm = measure()  # right after the same amount was freed
        time.sleep(args.idle)
        cold_again = measure()
        rows.append((label, cold, warm, cold_again))
    print(f"{size:.2f} GB each; 'cold' after {args.idle:g} s idle, 'warm' right after a free")
    print(f"  {'':22s} {'cold':>9s} {'warm':>9s} {'cold again':>11s} {'cold / warm':>12s}")
    for label, cold, warm, cold_again in rows:
        print(
            f"  {label:22s} {cold:8.3f}s {warm:8.3f}s {cold_again:10.3f}s "
            f"{min(cold, cold_again) / warm:11.1f}x"
        )


if __name__ == "__main__":
    main()
