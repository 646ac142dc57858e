"""The manifest of a prepared folder: its identity, what each stage finished, and the lock.

``manifest.json`` is the only record of completion. A stage's split counts as done when its
record is in the manifest, which is written (atomically) after the split's files are renamed
into place; a file merely existing proves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from vposer_data.atomic import atomic_write_text, file_sha256
from vposer_data.errors import PrepareError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "STAGES",
    "Manifest",
    "ManifestError",
    "lock_for",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".vposer_data.lock"
STAGES = ("stage_I", "stage_II", "stage_III")


class ManifestError(PrepareError):
    """A prepared folder whose manifest is unreadable, or whose files no longer match it (a
    PrepareError, so that the command reports it in one line)."""


def lock_for(root: str | Path, timeout: float = -1) -> FileLock:
    """The inter-process lock of a prepared folder (waits forever by default)."""
    return FileLock(str(Path(root) / LOCK_NAME), timeout=timeout)


class Manifest:
    """Read and update ``manifest.json``; every update is written through atomically."""

    def __init__(self, root: str | Path, data: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self.data: dict[str, Any] = data if data is not None else {}

    @classmethod
    def load(cls, root: str | Path) -> Manifest:
        """The manifest at ``root``, or an empty one when there is none."""
        path = Path(root) / MANIFEST_NAME
        if not path.exists():
            return cls(root)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ManifestError(
                f"{path} is unreadable ({exc}); delete the folder or pass overwrite=True"
            ) from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ManifestError(
                f"{path} is not a vposer_data manifest of format {FORMAT_VERSION}; "
                "delete the folder or pass overwrite=True"
            )
        return cls(root, data)

    @property
    def exists(self) -> bool:
        return bool(self.data)

    def start(self, settings: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        """Begin a fresh manifest with the output's identity (``settings``) and context."""
        self.data = {
            "format_version": FORMAT_VERSION,
            "settings": dict(settings),
            **info,
            "stages": {stage: {} for stage in STAGES},
            "complete": False,
        }
        self.save()

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.data.get("settings", {}))

    @property
    def complete(self) -> bool:
        return bool(self.data.get("complete"))

    @property
    def splits(self) -> list[str]:
        return list(self.settings.get("splits", {}))

    def record(self, stage: str, split: str) -> dict[str, Any] | None:
        return self.data.get("stages", {}).get(stage, {}).get(split)

    def set_record(self, stage: str, split: str, record: Mapping[str, Any]) -> None:
        self.data["stages"][stage][split] = dict(record)
        self.save()

    def update(self, **values: Any) -> None:
        self.data.update(values)
        self.save()

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=False) + "\n")

    def final_files(self) -> dict[str, dict[str, Any]]:
        """Every Stage III file this manifest records: relative path -> {bytes, sha256, ...}."""
        files = {}
        for split in self.splits:
            record = self.record("stage_III", split) or {}
            for name, meta in record.get("fields", {}).items():
                files[f"stage_III/{split}/{name}.pt"] = meta
        return files

    def verify(self, checksums: bool = False) -> list[str]:
        """Problems with the final files: missing, resized, or (with ``checksums``) altered."""
        problems = []
        for rel, meta in self.final_files().items():
            path = self.root / rel
            if not path.is_file():
                problems.append(f"{path}: missing (recorded {meta['bytes']} bytes)")
                continue
            size = path.stat().st_size
            if size != meta["bytes"]:
                problems.append(f"{path}: {size} bytes, the manifest records {meta['bytes']}")
            elif checksums and file_sha256(path) != meta["sha256"]:
                problems.append(f"{path}: checksum differs from the manifest (file was altered)")
        return problems

    def require_intact(self, remedy: str) -> None:
        """Raise ManifestError naming every final file that no longer matches its record."""
        problems = self.verify()
        if problems:
            raise ManifestError(
                f"{self.root}: the prepared files no longer match manifest.json:\n  "
                + "\n  ".join(problems)
                + f"\n{remedy}"
            )
