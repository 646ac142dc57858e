"""Benchmark child: the I/O floor of the pipeline's work, in a fresh interpreter.

    python benchmarks/child_floor.py SPEC_JSON OUT_DIR

The least any implementation has to do to turn this input into these outputs, as issue 12
defines it: "read every input byte once, write the same output bytes with the same
durability, plus ``import torch, h5py``", counting every byte the three stages write:

1. ``import torch, h5py`` (any implementation writing ``.pt`` files from AMASS needs torch;
   h5py is what this one's intermediate files are written with);
2. read every byte of every input file once (the motion files of the splits, as listed by
   the parent: ``SPEC["inputs"]``), into one reused buffer;
3. write the intermediate bytes (``SPEC["intermediates"]``: folder, name, size in bytes, those
   of the pipeline's ``stage_I/<split>/`` files then its ``stage_II/<split>.h5`` files), each
   file of the same size under ``OUT_DIR/<folder>/``, with the pipeline's durability for them:
   written and closed, never ``fsync``-ed (the pipeline does not flush its intermediates; it
   checks them by checksum when it reuses them);
4. write the final bytes (``SPEC["outputs"]``: the same for its ``stage_III/<split>/`` files)
   likewise, with the pipeline's durability for them: each file ``fsync``-ed, then each
   folder, so names and contents survive a crash.

The intermediates go first, as in the pipeline, so the finals are flushed with as much dirty
data in the page cache as there. With no intermediates in the spec this is the floor of the
final bytes only (the floor issue 3 was judged on). One thread, no computation. Prints one
result line (``result_line.emit``) with the seconds of each part and the bytes read and written.
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


def write_all(files: list[tuple[str, str, int]], out_dir: str, durable: bool) -> int:
    """Write each (folder, name, size) as ``out_dir/folder/name`` of ``size`` bytes; if
    ``durable``, fsync each file, then each folder holding one and its parents up to
    ``out_dir``. Returns the bytes written."""
    zeros = memoryview(bytes(CHUNK))
    made: set[str] = set()
    total = 0
    for relative, name, size in files:
        if relative not in made:
            os.makedirs(os.path.join(out_dir, relative), exist_ok=True)
            made.add(relative)
        remaining = size
        with open(os.path.join(out_dir, relative, name), "wb", buffering=0) as handle:
            while remaining:
                written = handle.write(zeros[: min(remaining, CHUNK)])
                remaining -= written
                total += written
            if durable:
                os.fsync(handle.fileno())
    if durable:
        folders = {out_dir}  # each folder holding a file, with its parents up to OUT_DIR
        for relative in made:
            parts = relative.split("/")
            folders.update(os.path.join(out_dir, *parts[:i]) for i in range(1, len(parts) + 1))
        for folder in sorted(folders, reverse=True):  # the deepest first, OUT_DIR last
            fsync_dir(folder)
    return total


def main(argv: list[str]) -> None:
    started = time.perf_counter()
    import h5py  # noqa: F401  (part of the floor: the pipeline cannot avoid these imports)
    import torch  # noqa: F401

    imported = time.perf_counter()
    spec_path, out_dir = argv[0], argv[1]
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    intermediates, finals = (
        [(str(folder), str(name), int(size)) for folder, name, size in spec[key]]
        for key in ("intermediates", "outputs")
    )
    os.makedirs(out_dir, exist_ok=True)
    listed = time.perf_counter()
    read_bytes = read_all(spec["inputs"])
    read = time.perf_counter()
    intermediate_bytes = write_all(intermediates, out_dir, durable=False)
    wrote_intermediates = time.perf_counter()
    final_bytes = write_all(finals, out_dir, durable=True)
    wrote_finals = time.perf_counter()
    emit(
        {
            "imports": imported - started,
            "read": read - listed,
            "write_intermediates": wrote_intermediates - read,
            "write_finals": wrote_finals - wrote_intermediates,
            "files": len(spec["inputs"]),
            "read_bytes": read_bytes,
            "intermediate_bytes": intermediate_bytes,
            "intermediate_files": len(intermediates),
            "final_bytes": final_bytes,
            "final_files": len(finals),
        }
    )


if __name__ == "__main__":
    main(sys.argv[1:])
