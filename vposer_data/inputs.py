"""Fingerprints of the AMASS files a split was prepared from, so changed inputs are noticed.

A prepared folder's identity is its settings and split mapping; the fingerprint adds the
input files themselves, so that adding, removing or replacing AMASS files under an existing
output is an error, not a silent reuse. A file is known by its relative path, its size and its
modification time in nanoseconds (``st_mtime_ns``), as make and rsync know files: a file
replaced by another of the same size almost always has a new modification time, and one
``stat`` per file costs nothing next to reading the file.

The price: a copy that does not keep modification times (``cp`` without ``-p``, some sync
tools) counts as replaced, and a replacement given its predecessor's time on purpose goes
unnoticed. ``cp -p`` and ``rsync -a`` keep times; after a copy that did not, pass
``amass_dir=None`` to use the prepared data as it is, or rebuild it.

The Stage I record keeps the file count, one SHA-256 over every (path, size, time), and, to
name the files that changed, an 8-hex-digit stamp per file in the sorted order of its paths
(the paths themselves are in the record already): about 8 bytes per file in the manifest.
Records written before times were kept have no stamps; their inputs are compared by size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vposer_data.splits import SourceFile

__all__ = ["fingerprint", "input_changes"]

#: Hex digits of each file's stamp (32 bits: it names changed files; the SHA-256 decides).
_STAMP_DIGITS = 8
#: How many changed files a message names per kind.
_NAMED = 3

_Stat = tuple[int, int]  # (size, mtime_ns); (-1, -1) for a file that vanished or is unreadable


def _stats(amass_dir: Path, sources: Sequence[SourceFile]) -> dict[str, _Stat]:
    stats = {}
    for source in sources:
        try:
            found = (amass_dir / source.path).stat()
            stats[source.path] = (found.st_size, found.st_mtime_ns)
        except OSError:
            stats[source.path] = (-1, -1)  # vanished or unreadable: still part of the identity
    return stats


def _digest(stats: Mapping[str, _Stat], times: bool = True) -> str:
    """SHA-256 over every file's path and size, and modification time unless ``times`` is
    False (the form of records written before times were kept)."""
    lines = (
        f"{path}\t{size}\t{mtime_ns}" if times else f"{path}\t{size}"
        for path, (size, mtime_ns) in sorted(stats.items())
    )
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _stamp(path: str, stat: _Stat) -> str:
    text = f"{path}\t{stat[0]}\t{stat[1]}".encode()
    return hashlib.blake2b(text, digest_size=_STAMP_DIGITS // 2).hexdigest()


def fingerprint(amass_dir: Path, sources: Sequence[SourceFile]) -> dict[str, Any]:
    """What the Stage I record keeps of a split's inputs: count, digest and per-file stamps."""
    stats = _stats(amass_dir, sources)
    return {
        "count": len(stats),
        "sha256": _digest(stats),
        "stamps": "".join(_stamp(path, stats[path]) for path in sorted(stats)),
    }


def _replaced(
    stats: Mapping[str, _Stat], recorded_paths: list[str], stamps: str | None
) -> list[str] | None:
    """Files present before and now whose size or time differs, sorted; None when the record
    cannot tell (no stamps, or stamps that do not match its paths)."""
    if stamps is None or len(stamps) != _STAMP_DIGITS * len(recorded_paths):
        return None
    before = {
        path: stamps[i * _STAMP_DIGITS : (i + 1) * _STAMP_DIGITS]
        for i, path in enumerate(recorded_paths)
    }
    return sorted(
        path
        for path, stat in stats.items()
        if path in before and _stamp(path, stat) != before[path]
    )


def _some(paths: list[str]) -> str:
    return f"e.g. {', '.join(paths[:_NAMED])}"


def input_changes(
    split: str, record: Mapping[str, Any], amass_dir: Path, sources: Sequence[SourceFile]
) -> str | None:
    """A sentence describing how a split's inputs differ from its Stage I record, or None."""
    recorded = record.get("inputs")
    if recorded is None:
        return None
    stats = _stats(amass_dir, sources)
    stamps = recorded.get("stamps")
    if _digest(stats, times=stamps is not None) == recorded["sha256"]:
        return None
    before = {f["path"] for f in record.get("files", [])}
    before |= {s["path"] for s in record.get("skipped", [])}
    before |= set(record.get("not_motions", []))
    before |= {s["path"] for s in record.get("too_short", [])}
    before |= {s["path"] for s in record.get("excluded", [])}
    added, removed = sorted(set(stats) - before), sorted(before - set(stats))
    replaced = _replaced(stats, sorted(before), stamps)
    parts = []
    if added:
        parts.append(f"{len(added)} added ({_some(added)})")
    if removed:
        parts.append(f"{len(removed)} removed ({_some(removed)})")
    if replaced:
        parts.append(
            f"{len(replaced)} replaced, same name but other size or modification time "
            f"({_some(replaced)})"
        )
    if not parts:
        what = "sizes" if stamps is None else "sizes or modification times"
        parts.append(f"files replaced (same names, other {what})")
    return f"split {split!r}: the AMASS files changed since it was prepared: " + "; ".join(parts)
