"""What the manifest keeps of each stage's split, declared: the records and their JSON form.

``manifest.json`` holds each record's JSON form (``to_json``); the package reads records back
with ``from_json``, so a reader sees what a record holds and a type checker sees every use.
``from_json`` fills what folders made by earlier versions lack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "FileCheck",
    "InputsRecord",
    "MotionEntry",
    "PathReason",
    "RateOverride",
    "ShortMotion",
    "Stage1Record",
    "Stage2Record",
    "Stage3Record",
    "StageRecord",
    "StatisticsEntry",
    "TensorEntry",
]


@dataclass(frozen=True)
class FileCheck:
    """What a recorded file is checked against: its size and a checksum (SHA-256 for final
    files, CRC-32 as 8 hex digits for intermediates), if recorded."""

    bytes: int
    sha256: str | None = None
    crc32: str | None = None


@dataclass(frozen=True)
class TensorEntry:
    """One field of a split: shape and dtype; with its file's size and checksum when the field
    is a file of its own (Stages I and III; Stage II's fields are datasets of one file)."""

    shape: list[int]
    dtype: str
    bytes: int | None = None
    sha256: str | None = None
    crc32: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.bytes is not None:
            data["bytes"] = self.bytes
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        if self.crc32 is not None:
            data["crc32"] = self.crc32
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorEntry:
        return cls(
            list(data["shape"]),
            data["dtype"],
            data.get("bytes"),
            data.get("sha256"),
            data.get("crc32"),
        )

    @property
    def check(self) -> FileCheck:
        assert self.bytes is not None, "a field without a file of its own"
        return FileCheck(self.bytes, self.sha256, self.crc32)


def _tensors_to_json(fields: Mapping[str, TensorEntry]) -> dict[str, Any]:
    return {name: entry.to_json() for name, entry in fields.items()}


def _tensors_from_json(data: Mapping[str, Any]) -> dict[str, TensorEntry]:
    return {name: TensorEntry.from_json(entry) for name, entry in data.items()}


@dataclass(frozen=True)
class MotionEntry:
    """A motion file Stage I used: its dataset, family, rate used, frames, samples kept."""

    path: str
    dataset: str
    family: str
    fps: float
    frames: int
    kept: int


@dataclass(frozen=True)
class PathReason:
    """A file left out, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ShortMotion:
    """A valid motion too short to yield a sample: its frame count (None in records made
    before counts were kept) and why."""

    path: str
    frames: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShortMotion:
        frames = data.get("frames")
        return cls(data["path"], None if frames is None else int(frames), data["reason"])


@dataclass(frozen=True)
class RateOverride:
    """A file whose frame rate an ``fps_overrides`` pattern fixed."""

    path: str
    pattern: str
    file_fps: float
    fps: float


@dataclass(frozen=True)
class InputsRecord:
    """The fingerprint of a split's AMASS files (:func:`vposer_data.inputs.fingerprint`): their
    count, one SHA-256 over every (path, size, time), and per file, in sorted path order, a
    stamp of its size and time and a stamp of its content. Records made before the stamps
    were kept have none."""

    count: int
    sha256: str
    stamps: str | None = None
    contents: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputsRecord:
        return cls(int(data["count"]), data["sha256"], data.get("stamps"), data.get("contents"))


@dataclass(frozen=True)
class Stage1Record:
    """Stage I's record of a split. ``inputs``: the fingerprint of its AMASS files (None in
    folders made before inputs were recorded)."""

    samples: int
    fields: dict[str, TensorEntry]
    datasets: dict[str, int]
    dropped_fields: dict[str, int] = field(default_factory=dict)
    files: list[MotionEntry] = field(default_factory=list)
    skipped: list[PathReason] = field(default_factory=list)
    not_motions: list[str] = field(default_factory=list)
    too_short: list[ShortMotion] = field(default_factory=list)
    excluded: list[PathReason] = field(default_factory=list)
    fps_overrides: list[RateOverride] = field(default_factory=list)
    inputs: InputsRecord | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "samples": self.samples,
            "fields": _tensors_to_json(self.fields),
            "datasets": dict(self.datasets),
            "dropped_fields": dict(self.dropped_fields),
            "files": [asdict(item) for item in self.files],
            "skipped": [asdict(item) for item in self.skipped],
            "not_motions": list(self.not_motions),
            "too_short": [item.to_json() for item in self.too_short],
            "excluded": [asdict(item) for item in self.excluded],
            "fps_overrides": [asdict(item) for item in self.fps_overrides],
        }
        if self.inputs is not None:
            data["inputs"] = self.inputs.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage1Record:
        return cls(
            samples=int(data["samples"]),
            fields=_tensors_from_json(data.get("fields", {})),
            datasets=dict(data.get("datasets", {})),
            dropped_fields=dict(data.get("dropped_fields", {})),
            files=[MotionEntry(**item) for item in data.get("files", [])],
            skipped=[PathReason(**item) for item in data.get("skipped", [])],
            not_motions=list(data.get("not_motions", [])),
            too_short=[ShortMotion.from_json(item) for item in data.get("too_short", [])],
            excluded=[PathReason(**item) for item in data.get("excluded", [])],
            fps_overrides=[RateOverride(**item) for item in data.get("fps_overrides", [])],
            inputs=None if "inputs" not in data else InputsRecord.from_json(data["inputs"]),
        )

    def paths(self) -> set[str]:
        """Every input file the record names: used, skipped, not motions, too short, excluded."""
        return (
            {item.path for item in self.files}
            | {item.path for item in self.skipped}
            | set(self.not_motions)
            | {item.path for item in self.too_short}
            | {item.path for item in self.excluded}
        )


@dataclass(frozen=True)
class Stage2Record:
    """Stage II's record of a split: its HDF5 file (size, CRC-32) and the fields in it."""

    samples: int
    file: str
    bytes: int
    crc32: str
    fields: dict[str, TensorEntry]

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "file": self.file,
            "bytes": self.bytes,
            "crc32": self.crc32,
            "fields": _tensors_to_json(self.fields),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage2Record:
        return cls(
            int(data["samples"]),
            data["file"],
            int(data["bytes"]),
            data["crc32"],
            _tensors_from_json(data.get("fields", {})),
        )


@dataclass(frozen=True)
class StatisticsEntry:
    """The training statistics file (``statistics.pt``) and its provenance, kept in the
    statistics split's Stage III record."""

    file: str
    bytes: int
    sha256: str
    split: str
    samples: int
    frames: int
    clip_frames: int | None
    fields: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def check(self) -> FileCheck:
        return FileCheck(self.bytes, sha256=self.sha256)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatisticsEntry:
        clip_frames = data.get("clip_frames")
        return cls(
            file=data["file"],
            bytes=int(data["bytes"]),
            sha256=data["sha256"],
            split=data["split"],
            samples=int(data["samples"]),
            frames=int(data["frames"]),
            clip_frames=None if clip_frames is None else int(clip_frames),
            fields=list(data.get("fields", [])),
        )


@dataclass(frozen=True)
class Stage3Record:
    """Stage III's record of a split: its final tensors; for the statistics split, the
    statistics file. ``legacy_stats``: the record is from a version that kept only mean and
    std in the manifest (no statistics file)."""

    samples: int
    fields: dict[str, TensorEntry]
    statistics: StatisticsEntry | None = None
    legacy_stats: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"samples": self.samples, "fields": _tensors_to_json(self.fields)}
        if self.statistics is not None:
            data["statistics"] = self.statistics.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage3Record:
        statistics = data.get("statistics")
        return cls(
            int(data["samples"]),
            _tensors_from_json(data.get("fields", {})),
            None if statistics is None else StatisticsEntry.from_json(statistics),
            legacy_stats="stats" in data,
        )


StageRecord = Stage1Record | Stage2Record | Stage3Record
