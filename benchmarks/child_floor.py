"""Benchmark child: the I/O floor of the pipeline's work, in a fresh interpreter.

    python benchmarks/child_floor.py SPEC_JSON OUT_DIR

The least any implementation has to do to turn this input into this output durably:

1. ``import torch, h5py`` (any implementation writing ``.pt`` files from AMASS needs torch;
   h5py is what this one's intermediate files are written with);
2. read every byte of every input file once (the motion files of the splits, as listed by
   the parent: ``SPEC["inputs"]``), into one reused buffer;
3. write the same output bytes: one file per final output file (``SPEC["outputs"]``: split,
   name, size in bytes, those of the pipeline's ``stage_III``), of the same size, under
   ``OUT_DIR/<split>/``, with the same durability as the pipeline: each file ``fsync``-ed,
   then each folder, so names and contents survive a crash.

One thread, no computation. Prints one result line (``result_line.emit``) with the seconds
of each part and the bytes read and written.
"""

from __future__ import annotations

import json
import os
import sys
import time

from result_line import emit

CHUNK = 1 << 23  # 8 MiB: one read or write call moves at most this much


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_all(paths: list[str]) -> int:
    """Read every byte of every file once; returns the bytes read."""
    buffer = bytearray(CHUNK)
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                total += count
    return total


def write_all(outputs: list[tuple[str, str, int]], out_dir: str) -> tuple[int, int]:
    """Write each (split, name, size) output as ``out_dir/split/name`` of ``size`` bytes,
    fsync each file and each folder; returns (bytes written, files)."""
    zeros = memoryview(bytes(CHUNK))
    folders = {out_dir}
    total = 0
    for split, name, size in outputs:
        folder = os.path.join(out_dir, split)
        if folder not in folders:
            os.makedirs(folder, exist_ok=True)
            folders.add(folder)
        remaining = size
        with open(os.path.join(folder, name), "wb", buffering=0) as handle:
            while remaining:
                written = handle.write(zeros[: min(remaining, CHUNK)])
                remaining -= written
                total += written
            os.fsync(handle.fileno())
    for folder in sorted(folders, reverse=True):  # the split folders, then OUT_DIR
        fsync_dir(folder)
    return total, len(outputs)


def main(argv: list[str]) -> None:
    started = time.perf_counter()
    import h5py  # noqa: F401  (part of the floor: the pipeline cannot avoid these imports)
    import torch  # noqa: F401

    imported = time.perf_counter()
    spec_path, out_dir = argv[0], argv[1]
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    outputs = [(str(split), str(name), int(size)) for split, name, size in spec["outputs"]]
    os.makedirs(out_dir, exist_ok=True)
    listed = time.perf_counter()
    read_bytes = read_all(spec["inputs"])
    read = time.perf_counter()
    written_bytes, written_files = write_all(outputs, out_dir)
    wrote = time.perf_counter()
    emit(
        {
            "imports": imported - started,
            "read": read - listed,
            "write": wrote - read,
            "files": len(spec["inputs"]),
            "read_bytes": read_bytes,
            "written_bytes": written_bytes,
            "written_files": written_files,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1:])
