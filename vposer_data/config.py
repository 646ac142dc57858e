"""PrepareConfig: every setting of the pipeline, as plain values, validated up front."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vposer_data.augment import AugmentSpec, parse_augmentations

__all__ = ["OUTPUT_SETTINGS", "PrepareConfig", "settings_differences"]

SAMPLING_MODES = ("random", "fps")
COMPRESSIONS = ("gzip", "lzf", "none")

#: Settings that change the prepared data. Others (workers, strictness, progress bars) do not,
#: so changing them over an existing output is allowed.
OUTPUT_SETTINGS = (
    "keep_rate",
    "trim",
    "sampling",
    "target_fps",
    "seed",
    "default_fps",
    "augmentations",
    "augment_passes",
    "batch_size",
    "hdf5_compression",
    "hdf5_compression_level",
)


@dataclass(frozen=True)
class PrepareConfig:
    """How AMASS is turned into VPoser data.

    Args:
        keep_rate: with ``sampling="random"``, the fraction of each motion's frames kept after
            trimming (the original VPoser recipe: 0.3).
        trim: the fraction of frames dropped at each end of a motion (initial T-poses): 0.1.
        sampling: "random" (``keep_rate`` of the frames, drawn per file) or "fps" (the frames
            nearest to a regular clock at ``target_fps``, from each file's own rate).
        target_fps: the clock rate for ``sampling="fps"``, in Hz.
        seed: every random draw follows from it and from each file's relative path.
        default_fps: frame rate assumed for files without a frame-rate key (None: such files
            are unusable).
        augmentations: names (``"matrot"``) or mappings (``{"name": "noise", "sigma": 0.01}``),
            applied in order in Stage II; default ``("matrot",)``.
        augment_passes: how many independent augmented copies of each split Stage II writes.
        num_workers: DataLoader workers in Stage II and reader threads in Stage I.
        batch_size: rows per Stage II batch (random draws are per batch, so it is part of
            the output's identity).
        strict: stop at the first unusable motion file instead of skipping it.
        hdf5_compression: "gzip" (readable everywhere), "lzf" (faster, h5py only) or "none".
        hdf5_compression_level: gzip level 0-9.
        progress: show progress bars (None: only on a terminal).
    """

    keep_rate: float = 0.3
    trim: float = 0.1
    sampling: str = "random"
    target_fps: float | None = None
    seed: int = 0
    default_fps: float | None = None
    augmentations: tuple[AugmentSpec, ...] = field(default=("matrot",))  # type: ignore[arg-type]
    augment_passes: int = 1
    num_workers: int = 2
    batch_size: int = 8192
    strict: bool = False
    hdf5_compression: str = "gzip"
    hdf5_compression_level: int = 1
    progress: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "augmentations", parse_augmentations(self.augmentations))
        problems = []
        if not 0 < self.keep_rate <= 1:
            problems.append(f"keep_rate={self.keep_rate!r}: expected 0 < keep_rate <= 1")
        if not 0 <= self.trim < 0.5:
            problems.append(f"trim={self.trim!r}: expected 0 <= trim < 0.5")
        if self.sampling not in SAMPLING_MODES:
            problems.append(f"sampling={self.sampling!r}: expected one of {SAMPLING_MODES}")
        if self.sampling == "fps" and (self.target_fps is None or not self.target_fps > 0):
            problems.append(f"target_fps={self.target_fps!r}: sampling='fps' needs a rate > 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed={self.seed!r}: expected an integer >= 0")
        if self.default_fps is not None and not self.default_fps > 0:
            problems.append(f"default_fps={self.default_fps!r}: expected a rate > 0 or None")
        if not isinstance(self.augment_passes, int) or self.augment_passes < 1:
            problems.append(f"augment_passes={self.augment_passes!r}: expected an integer >= 1")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            problems.append(f"num_workers={self.num_workers!r}: expected an integer >= 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size!r}: expected an integer >= 1")
        if self.hdf5_compression not in COMPRESSIONS:
            problems.append(
                f"hdf5_compression={self.hdf5_compression!r}: expected one of {COMPRESSIONS}"
            )
        if not 0 <= self.hdf5_compression_level <= 9:
            problems.append(f"hdf5_compression_level={self.hdf5_compression_level!r}: expected 0-9")
        if problems:
            raise ValueError("invalid PrepareConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (augmentations as a list of mappings)."""
        values = dataclasses.asdict(self)
        values["augmentations"] = [spec.as_dict() for spec in self.augmentations]
        return values

    def output_settings(self) -> dict[str, Any]:
        """The settings that decide the output's content; the identity of a prepared folder."""
        values = self.to_dict()
        return {name: values[name] for name in OUTPUT_SETTINGS}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PrepareConfig:
        """Build from plain values, refusing unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown PrepareConfig settings {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def progress_disabled(self) -> bool | None:
        """tqdm's ``disable``: None lets tqdm decide (bars on a terminal only)."""
        return None if self.progress is None else not self.progress

    def replace(self, **changes: Any) -> PrepareConfig:
        return dataclasses.replace(self, **changes)


def settings_differences(existing: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """One line per setting that differs between two folder identities (``{"splits": ...,
    "config": ...}``), e.g. ``keep_rate: existing 0.3, requested 0.5`` or ``splits.vald: ...``."""

    def flat(settings: Mapping[str, Any]) -> dict[str, Any]:
        values = {f"splits.{k}": v for k, v in settings.get("splits", {}).items()}
        values.update(settings.get("config", {}))
        return values

    old, new = flat(existing), flat(requested)
    return [
        f"{key}: existing {old.get(key)!r}, requested {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
