#!/usr/bin/env python
"""Measure ``load_sequence`` against its reference path, and what its CRC-32 check costs.

On a synthetic AMASS tree of ``--frames`` raw frames (the tree ``bench_prepare.py`` cached under
``--work-dir`` for the same frames, release and seed; else one generated and cached there as
``reader-...``; or the tree given with ``--tree``), after one warm-up pass that brings every
file into the page cache, each repeat times, in one thread:

- ``load_sequence``: ``vposer_data.amass.load_sequence`` of every motion file (CRC check
  included: it is always on), plus the finite check it does over every array it returns;
- ``reference path``: the same through ``np.load`` and zipfile (``_load_with_numpy``, what
  ``load_sequence`` falls back to for archives its own zip reader leaves alone), timed
  alternately with the line above; both also with 2 threads, as Stage I reads;
- ``crc (mmap)``: the reader's CRC-32 (``vposer_data.checksums.crc32``: python-isal's, else
  zlib's) alone over exactly the members ``load_sequence`` maps (stored, keys it reads), each
  file mapped once, as the reader does;
- ``crc (read)``: the same CRCs over buffered reads of ``--block`` bytes, the alternative.

The best of ``--repeat`` is reported (wall time, and CPU time per file in one thread), with
the CRC's share of the read time (crc / load).

    python benchmarks/bench_reader.py                       # 2,000,000 frames, SMPL+H
    python benchmarks/bench_reader.py --frames 200000 --repeat 5
    python benchmarks/bench_reader.py --tree /data/amass --repeat 1
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import struct
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vposer_data.amass import (
    AmassSequence,
    NotAMotionError,
    _load_with_numpy,
    is_non_motion_name,
    load_sequence,
)
from vposer_data.checksums import crc32
from vposer_data.synthetic import write_amass_tree

GB = 1e9
#: Every key load_sequence may read (it reads the split keys only when ``poses`` is absent).
READ_KEYS = {"poses", "trans", "betas", "dmpls", "gender", "mocap_framerate", "mocap_frame_rate"}
SPLIT_KEYS = {"root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye"}


def cached_tree(work_dir: Path, frames: int, release: str, seed: int) -> Path:
    """bench_prepare.py's cached tree for these parameters if there is one, else this script's
    own (generated on first use)."""
    shared = work_dir / f"amass-{release}-f{frames}-s{seed}"
    if (shared / "bench_tree.json").is_file():
        return shared / "amass"
    own = work_dir / f"reader-{release}-f{frames}-s{seed}"
    if not (own / "complete").is_file():
        print(f"generating {frames:,} raw frames ({release}, seed {seed}) into {own} ...")
        started = time.perf_counter()
        shutil.rmtree(own, ignore_errors=True)
        write_amass_tree(own / "amass", total_frames=frames, release=release, seed=seed)
        (own / "complete").write_text(f"{time.perf_counter() - started:.1f} s\n")
    return own / "amass"


def motion_files(tree: Path) -> list[Path]:
    """Every ``.npz`` below ``tree`` that is not named as a subject shape file, sorted."""
    found = (Path(d) / n for d, _, names in os.walk(tree) for n in names if n.endswith(".npz"))
    return sorted(p for p in found if not is_non_motion_name(p))


def mapped_members(path: Path) -> list[tuple[int, int, int]]:
    """(data start, size, recorded CRC) of each member load_sequence memory-maps."""
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        keys = {name.removesuffix(".npy") for name in archive.namelist()}
        wanted = READ_KEYS if "poses" in keys else READ_KEYS | SPLIT_KEYS
        members = []
        for info in archive.infolist():
            if info.filename.removesuffix(".npy") not in wanted:
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                continue
            handle.seek(info.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", handle.read(4))
            start = info.header_offset + 30 + name_length + extra_length
            members.append((start, info.compress_size, info.CRC))
    return members


def crc_mmap(files: list[tuple[Path, list[tuple[int, int, int]]]]) -> int:
    """CRC of every mapped member through one read-only mapping per file; returns bytes."""
    total = 0
    for path, members in files:
        if not members:
            continue
        with open(path, "rb") as handle:
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        with mapping, memoryview(mapping) as view:
            for start, size, expected in members:
                with view[start : start + size] as stored:
                    if crc32(stored) != expected:
                        raise SystemExit(f"{path}: CRC-32 mismatch")
                total += size
    return total


def crc_read(files: list[tuple[Path, list[tuple[int, int, int]]]], block: int) -> int:
    """CRC of every mapped member through buffered reads of ``block`` bytes; returns bytes."""
    buffer = bytearray(block)
    total = 0
    with memoryview(buffer) as view:
        for path, members in files:
            with open(path, "rb", buffering=0) as handle:
                for start, size, expected in members:
                    handle.seek(start)
                    crc, left = 0, size
                    while left > 0:
                        got = handle.readinto(view[: min(block, left)])
                        if not got:
                            raise SystemExit(f"{path}: ends inside a member")
                        crc = crc32(view[:got], crc)
                        left -= got
                    if crc != expected:
                        raise SystemExit(f"{path}: CRC-32 mismatch")
                    total += size
    return total


def load_all(paths: list[Path], threads: int = 1, reference: bool = False) -> int:
    """load_sequence (or its reference path) every file in ``threads`` threads; the frames."""
    load: Callable[[Path], AmassSequence] = (
        (lambda path: _load_with_numpy(path, None)) if reference else load_sequence
    )

    def frames(path: Path) -> int:
        try:
            return load(path).num_frames
        except NotAMotionError:
            return 0

    if threads == 1:
        return sum(map(frames, paths))
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(frames, paths))


def alternate(repeat: int, runs: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) seconds of each run, the runs taking turns so that a noisy machine
    slows them alike."""
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=2_000_000, help="raw frames in the tree")
    parser.add_argument("--release", choices=("smplh", "smplx"), default="smplh")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic tree")
    parser.add_argument(
        "--work-dir", type=Path, default=Path("/tmp/vposer_bench"), help="cache of trees"
    )
    parser.add_argument("--tree", type=Path, help="an existing AMASS tree to read instead")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; the best is reported")
    parser.add_argument("--block", type=int, default=8 << 20, help="read size for crc (read)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.block < 1:
        parser.error("--repeat and --block must be at least 1")
    tree = args.tree or cached_tree(args.work_dir, args.frames, args.release, args.seed)
    print(f"tree {tree}")
    paths = motion_files(tree)
    files = [(p, mapped_members(p)) for p in paths]
    file_bytes = sum(p.stat().st_size for p in paths)
    print(f"warm-up: reading {len(paths)} files ({file_bytes / GB:.2f} GB) ...", flush=True)
    frames = load_all(paths)
    crc_bytes = crc_mmap(files)

    reads = alternate(
        args.repeat,
        {
            "load_sequence": lambda: load_all(paths),
            "reference path": lambda: load_all(paths, reference=True),
            "load_sequence, 2 threads": lambda: load_all(paths, threads=2),
            "reference path, 2 threads": lambda: load_all(paths, threads=2, reference=True),
        },
    )
    load = reads["load_sequence"][0]
    by_map = best_of(args.repeat, lambda: crc_mmap(files))
    by_read = best_of(args.repeat, lambda: crc_read(files, args.block))
    members = sum(len(m) for _, m in files)
    print(f"\n{len(paths)} motion files, {frames:,} frames, {file_bytes / GB:.2f} GB on disk")
    print(f"{members} mapped members checked, {crc_bytes / GB:.2f} GB; best of {args.repeat}, warm")
    for name, (wall, cpu) in reads.items():
        per_file = "" if "threads" in name else f"  {cpu / len(paths) * 1e3:.3f} ms CPU a file"
        print(f"  {name:<27} {wall:7.3f} s  {file_bytes / wall / GB:5.2f} GB/s{per_file}")
    print(f"  (load_sequence / reference path: {load / reads['reference path'][0]:.2f})")
    print(f"  crc (mmap)                  {by_map:7.3f} s  {crc_bytes / by_map / GB:5.2f} GB/s")
    block = f"{args.block / (1 << 20):g} MiB"
    label = f"crc (read, {block} blocks)"
    print(f"  {label:<27} {by_read:7.3f} s  {crc_bytes / by_read / GB:5.2f} GB/s")
    print(f"CRC check's share of the read time: {by_map / load:.0%} (crc (mmap) / load_sequence)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
