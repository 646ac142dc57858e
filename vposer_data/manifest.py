"""A prepared folder: its layout, its identity, its manifest (what each stage finished) and
its lock. Torch-free, so that reading a prepared folder's description loads no torch.

``manifest.json`` is the only record of completion. A stage's split counts as done when its
record is in the manifest, which is written (atomically) after the split's files are renamed
into place; a file merely existing proves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from vposer_data.atomic import atomic_write_text
from vposer_data.checksums import file_crc32, file_sha256
from vposer_data.config import PrepareConfig, settings_differences
from vposer_data.errors import REBUILD_HINT, PrepareError, StaleOutputError
from vposer_data.records import (
    FileCheck,
    Stage1Record,
    Stage2Record,
    Stage3Record,
    StageRecord,
)
from vposer_data.splits import SplitError, normalize_splits

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "STAGES",
    "STAGE_I",
    "STAGE_II",
    "STAGE_III",
    "Manifest",
    "ManifestError",
    "check_file",
    "lock_for",
    "output_identity",
    "split_dir",
    "stage_path",
]

FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".vposer_data.lock"
#: The stages' names: the manifest's keys and the folder layout's.
STAGE_I, STAGE_II, STAGE_III = STAGES = ("stage_I", "stage_II", "stage_III")


_RECORD_TYPES: dict[str, type[Stage1Record] | type[Stage2Record] | type[Stage3Record]] = {
    STAGE_I: Stage1Record,
    STAGE_II: Stage2Record,
    STAGE_III: Stage3Record,
}


class ManifestError(PrepareError):
    """A prepared folder whose manifest is unreadable, or whose files no longer match it (a
    PrepareError, so that the command reports it in one line)."""


def stage_path(root: str | Path, stage: str, split: str) -> Path:
    """Where a stage puts a split: ``stage_I/<split>/``, ``stage_II/<split>.h5``,
    ``stage_III/<split>/``."""
    return Path(root) / stage / (f"{split}.h5" if stage == STAGE_II else split)


def split_dir(root: str | Path, split: str) -> Path:
    """Where the final tensors of ``split`` live: ``stage_III/<split>/``."""
    return stage_path(root, STAGE_III, split)


def output_identity(splits: Mapping[str, Sequence[str]], config: PrepareConfig) -> dict[str, Any]:
    """What identifies a prepared folder: the split mapping and the settings that change the
    final tensors, in the form the manifest stores (so the two compare equal)."""
    if not isinstance(splits, Mapping):
        raise PrepareError(
            f"amass_splits is a {type(splits).__name__}; expected a mapping such as "
            "{'train': ['CMU', ...], 'vald': [...], 'test': [...]}"
        )
    if not splits:  # else nothing would run and an empty folder would count as prepared
        raise SplitError("the split mapping is empty; expected e.g. {'train': [...], ...}")
    settings = {"splits": normalize_splits(splits), "config": config.identity()}
    return json.loads(json.dumps(settings))


def _upgrade(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest stored every output setting, also those that do not change the
    final tensors; its identity is recomputed from them (the data are the same)."""
    settings = data.get("settings", {})
    try:
        config = PrepareConfig.from_mapping(settings.get("config", {}))
    except ValueError as exc:
        raise ManifestError(f"{path}: settings of format 1 not understood ({exc})") from None
    settings["config"] = json.loads(json.dumps(config.identity()))
    data["format_version"] = FORMAT_VERSION
    return data


def check_file(path: Path, meta: FileCheck, checksums: bool = False) -> str | None:
    """The problem with one recorded file (missing, resized, or with ``checksums`` altered),
    or None when it matches its record."""
    if not path.is_file():
        return f"{path}: missing (recorded {meta.bytes} bytes)"
    size = path.stat().st_size
    if size != meta.bytes:
        return f"{path}: {size} bytes, the manifest records {meta.bytes}"
    if checksums and _checksum_differs(path, meta):
        return f"{path}: checksum differs from the manifest (file was altered)"
    return None


def _checksum_differs(path: Path, meta: FileCheck) -> bool:
    """Whether a file's checksum (SHA-256 for final files, CRC-32 for the HDF5 intermediate)
    differs from its record."""
    if meta.sha256 is not None:
        return file_sha256(path) != meta.sha256
    if meta.crc32 is not None:
        return file_crc32(path) != meta.crc32
    return False


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
                f"{path} is unreadable ({exc}).\n{REBUILD_HINT}, or delete the folder."
            ) from None
        if isinstance(data, dict) and data.get("format_version") == 1:
            data = _upgrade(path, data)
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ManifestError(
                f"{path} is not a vposer_data manifest of format {FORMAT_VERSION}.\n"
                f"{REBUILD_HINT}, or delete the folder."
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
        """A (stage, split)'s record in its JSON form, as ``manifest.json`` holds it; the
        package reads the declared form (:meth:`stage1`, :meth:`stage2`, :meth:`stage3`)."""
        return self.data.get("stages", {}).get(stage, {}).get(split)

    def stage1(self, split: str) -> Stage1Record | None:
        """Stage I's record of ``split``, or None when it has none."""
        data = self.record(STAGE_I, split)
        return None if data is None else Stage1Record.from_json(data)

    def stage2(self, split: str) -> Stage2Record | None:
        """Stage II's record of ``split``, or None when it has none."""
        data = self.record(STAGE_II, split)
        return None if data is None else Stage2Record.from_json(data)

    def stage3(self, split: str) -> Stage3Record | None:
        """Stage III's record of ``split``, or None when it has none."""
        data = self.record(STAGE_III, split)
        return None if data is None else Stage3Record.from_json(data)

    def has_record(self, stage: str, split: str) -> bool:
        return self.record(stage, split) is not None

    def recorded(self) -> list[str]:
        """The (stage, split) pairs recorded as done, as ``stage/split``, in pipeline order."""
        stages = self.data.get("stages", {})
        return [f"{stage}/{split}" for stage in STAGES for split in stages.get(stage, {})]

    def set_record(self, stage: str, split: str, record: StageRecord) -> None:
        if not isinstance(record, _RECORD_TYPES[stage]):
            raise TypeError(f"{stage} records a {_RECORD_TYPES[stage].__name__}, got {record!r}")
        self.data["stages"][stage][split] = record.to_json()
        self.save()

    def update(self, **values: Any) -> None:
        self.data.update(values)
        self.save()

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # compact: json's C encoder (an indent falls back to its Python one, seconds for
        # the file lists of all of AMASS); `python -m json.tool` shows it indented
        text = json.dumps(self.data, separators=(",", ":"), sort_keys=False)
        atomic_write_text(self.path, text + "\n")

    def recorded_files(self, stage: str, split: str) -> dict[Path, FileCheck]:
        """The files a (stage, split) record lists: path -> its size and checksum."""
        path = stage_path(self.root, stage, split)
        if stage == STAGE_II:
            stage2 = self.stage2(split)
            return {} if stage2 is None else {path: FileCheck(stage2.bytes, crc32=stage2.crc32)}
        record = self.stage1(split) if stage == STAGE_I else self.stage3(split)
        if record is None:
            return {}
        files = {path / f"{name}.pt": meta.check for name, meta in record.fields.items()}
        if isinstance(record, Stage3Record) and record.statistics is not None:
            files[self.root / record.statistics.file] = record.statistics.check
        return files

    def check_files(self, stage: str, split: str, checksums: bool = False) -> list[str]:
        """Problems with a (stage, split)'s recorded files: missing, resized, or (with
        ``checksums``) altered."""
        return [
            problem
            for path, meta in self.recorded_files(stage, split).items()
            if (problem := check_file(path, meta, checksums)) is not None
        ]

    def verify(self, checksums: bool = False) -> list[str]:
        """Problems with the final (Stage III) files of every split."""
        return [p for split in self.splits for p in self.check_files(STAGE_III, split, checksums)]

    def stale_error(
        self, expected: Mapping[str, Any], remedy: str, whose: str = ""
    ) -> StaleOutputError | None:
        """The one identity check of a folder: None when it was prepared with ``expected``
        (:func:`output_identity`) or holds nothing yet, else the error listing each setting
        that differs, then ``remedy``; ``whose`` ends "other settings" ("than ...")."""
        if not self.exists or self.settings == expected:
            return None
        return StaleOutputError(
            f"{self.root} holds data prepared with other settings{whose}:\n  "
            + "\n  ".join(settings_differences(self.settings, expected))
            + f"\n{remedy}"
        )

    def require_intact(self, remedy: str = f"{REBUILD_HINT}.") -> None:
        """Raise ManifestError naming every final file that no longer matches its record."""
        problems = self.verify()
        if problems:
            raise ManifestError(
                f"{self.root}: the prepared files no longer match manifest.json:\n  "
                + "\n  ".join(problems)
                + f"\n{remedy}"
            )
