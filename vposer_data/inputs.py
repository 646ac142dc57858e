"""Fingerprints of the AMASS files a split was prepared from, so changed inputs are noticed.

A prepared folder's identity is its settings and split mapping; the fingerprint adds the
input files themselves, so that adding, removing or replacing AMASS files under an existing
output is an error, not a silent reuse. A file is the same input when its relative path, its
size and its modification time in nanoseconds (``st_mtime_ns``) match, as make and rsync know
files: one ``stat`` per file costs nothing next to reading the file.

A copy that does not keep modification times (``cp`` without ``-p``, some sync tools) changes
every time but no content, so the time alone does not decide: when a file's time changed, its
content stamp is compared, a digest of its size and of the name and CRC-32 of each zip member
as its central directory records them (a few KB read per file, never a member). Same
stamp: the same input (logged once per split with the count); another stamp, or a file that is
not a readable zip: replaced. A replacement given its predecessor's size and members' CRC-32s
on purpose goes unnoticed, as one given its predecessor's time always did.

The Stage I record keeps the file count, one SHA-256 over every (path, size, time), and, in the
sorted order of the paths (the paths themselves are in the record already), an 8-hex-digit
stamp per file naming the files whose size or time changed, and a 16-hex-digit content stamp
per file: about 24 bytes per file in the manifest. Records written before content stamps were
kept compare times only; those written before times were kept compare sizes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from vposer_data.interrupts import check
from vposer_data.npz_reader import member_checksums
from vposer_data.records import InputsRecord, Stage1Record
from vposer_data.splits import SourceFile

__all__ = ["fingerprint", "input_changes"]

#: Hex digits of each file's stamp (32 bits: it names changed files; the SHA-256 decides).
_STAMP_DIGITS = 8
#: Hex digits of each file's content stamp (64 bits: it alone decides that a file whose time
#: changed is the same input).
_CONTENT_DIGITS = 16
#: The content stamp of a file that is not a readable zip: equal to no stamp, itself included.
_UNREADABLE = "-" * _CONTENT_DIGITS
#: How many changed files a message names per kind.
_NAMED = 3

_log = logging.getLogger(__name__)

_Stat = tuple[int, int]  # (size, mtime_ns); (-1, -1) for a file that vanished or is unreadable


def _stats(amass_dir: Path, sources: Sequence[SourceFile]) -> dict[str, _Stat]:
    stats = {}
    for source in sources:
        check("inputs")
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


def _content_stamp(amass_dir: Path, path: str, size: int) -> str:
    """A digest of the file's size and its zip members' names and CRC-32s, read from its
    central directory; _UNREADABLE when it is not a readable zip."""
    check("inputs")
    members = None if size < 0 else member_checksums(amass_dir / path)
    if members is None:
        return _UNREADABLE
    text = f"{size}\n" + "".join(f"{name}\t{crc:08x}\n" for name, crc in members)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=_CONTENT_DIGITS // 2).hexdigest()


def fingerprint(amass_dir: Path, sources: Sequence[SourceFile]) -> InputsRecord:
    """What the Stage I record keeps of a split's inputs: count, digest, per-file stamps and
    per-file content stamps."""
    stats = _stats(amass_dir, sources)
    paths = sorted(stats)
    return InputsRecord(
        count=len(stats),
        sha256=_digest(stats),
        stamps="".join(_stamp(path, stats[path]) for path in paths),
        contents="".join(_content_stamp(amass_dir, path, stats[path][0]) for path in paths),
    )


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


def _same_content(
    amass_dir: Path,
    stats: Mapping[str, _Stat],
    recorded_paths: list[str],
    contents: str | None,
    changed: list[str],
) -> set[str]:
    """Those of the ``changed`` files whose content stamp now equals the recorded one (their
    zip directories are read, nothing else); empty when the record has no content stamps."""
    if contents is None or len(contents) != _CONTENT_DIGITS * len(recorded_paths):
        return set()
    position = {path: i for i, path in enumerate(recorded_paths)}
    same = set()
    for path in changed:
        at = position[path] * _CONTENT_DIGITS
        before = contents[at : at + _CONTENT_DIGITS]
        now = _content_stamp(amass_dir, path, stats[path][0])
        if now != _UNREADABLE and now == before:
            same.add(path)
    return same


def _some(paths: list[str]) -> str:
    return f"e.g. {', '.join(paths[:_NAMED])}"


def input_changes(
    split: str,
    record: Stage1Record,
    amass_dir: Path,
    sources: Sequence[SourceFile],
    log: Callable[[str], None] = _log.info,
) -> str | None:
    """A sentence describing how a split's inputs differ from its Stage I record, or None.

    Files whose time changed but whose content stamp did not are the same input: ``log``
    hears once how many there are.
    """
    recorded = record.inputs
    if recorded is None:
        return None
    stats = _stats(amass_dir, sources)
    stamps = recorded.stamps
    if _digest(stats, times=stamps is not None) == recorded.sha256:
        return None
    before = record.paths()
    added, removed = sorted(set(stats) - before), sorted(before - set(stats))
    replaced = _replaced(stats, sorted(before), stamps)
    if replaced:
        same = _same_content(amass_dir, stats, sorted(before), recorded.contents, replaced)
        if same:
            log(
                f"split {split!r}: {len(same)} AMASS files have new modification times and "
                "the same content (the CRC-32s of their zip members match): the same inputs"
            )
            replaced = [path for path in replaced if path not in same]
            if not (added or removed or replaced):
                return None
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
