"""Fingerprints of the AMASS files a split was prepared from, so changed inputs are noticed.

A prepared folder's identity is its settings and split mapping; the fingerprint adds the
input files themselves (relative path and size of every ``.npz`` found), so that adding,
removing or replacing AMASS files under an existing output is an error, not a silent reuse.
Sizes, not modification times: copying a download elsewhere keeps sizes but not times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vposer_data.splits import SourceFile

__all__ = ["fingerprint", "input_changes"]


def _sizes(amass_dir: Path, sources: Sequence[SourceFile]) -> dict[str, int]:
    sizes = {}
    for source in sources:
        try:
            sizes[source.path] = (amass_dir / source.path).stat().st_size
        except OSError:
            sizes[source.path] = -1  # vanished or unreadable: still part of the identity
    return sizes


def _digest(sizes: Mapping[str, int]) -> str:
    text = "\n".join(f"{path}\t{size}" for path, size in sorted(sizes.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(amass_dir: Path, sources: Sequence[SourceFile]) -> dict[str, Any]:
    """What the Stage I record keeps of a split's inputs."""
    sizes = _sizes(amass_dir, sources)
    return {"count": len(sizes), "sha256": _digest(sizes)}


def input_changes(
    split: str, record: Mapping[str, Any], amass_dir: Path, sources: Sequence[SourceFile]
) -> str | None:
    """A sentence describing how a split's inputs differ from its Stage I record, or None."""
    recorded = record.get("inputs")
    if recorded is None:
        return None
    sizes = _sizes(amass_dir, sources)
    if _digest(sizes) == recorded["sha256"]:
        return None
    before = {f["path"] for f in record.get("files", [])}
    before |= {s["path"] for s in record.get("skipped", [])}
    before |= set(record.get("not_motions", []))
    added, removed = sorted(set(sizes) - before), sorted(before - set(sizes))
    parts = []
    if added:
        parts.append(f"{len(added)} added (e.g. {', '.join(added[:3])})")
    if removed:
        parts.append(f"{len(removed)} removed (e.g. {', '.join(removed[:3])})")
    if not parts:
        parts.append("files replaced (same names, other sizes)")
    return f"split {split!r}: the AMASS files changed since it was prepared: " + "; ".join(parts)
