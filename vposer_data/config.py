"""PrepareConfig: the one declaration of every preparation setting.

Each setting is a dataclass field with its type, default and metadata: one line of help,
whether it changes the prepared data (``output``), and, for those that matter only in some
modes, when they do (``applies``). From this one declaration come the ``prepare`` command's
flags (:mod:`vposer_data.cli`), the identity of a prepared folder (:meth:`PrepareConfig.
identity`), the documentation's settings table (:func:`settings_table`, compared by a test) and the
DataModule's ``prepare`` argument. Adding a setting is one field here plus the code that uses
it. Torch-free.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from vposer_data.augment.registry import AugmentSpec, is_random, parse_augmentations
from vposer_data.errata import (
    AMASS_FPS_ERRATA,
    EXCLUSION_PRESETS,
    Exclusion,
    parse_exclusions,
    parse_fps_overrides,
)
from vposer_data.errors import ConfigError

__all__ = [
    "BODY_MODEL_GENDERS",
    "COMPRESSIONS",
    "SAMPLING_MODES",
    "PrepareConfig",
    "settings_differences",
    "settings_table",
]

SAMPLING_MODES = ("random", "fps", "clips")
#: ``body_model_gender``: each motion's own gender, or the neutral model for every motion.
BODY_MODEL_GENDERS = ("file", "neutral")
COMPRESSIONS = ("none", "gzip", "lzf")


def setting(
    default: Any,
    help: str,
    *,
    output: bool = True,
    applies: Callable[[PrepareConfig], bool] | None = None,
    flag: str | None = None,
    shown: str | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A PrepareConfig field. ``output``: changes the prepared data (part of the folder's
    identity); ``applies``: for an output setting, when it does (else it is left out of the
    identity); ``flag``: the command-line flag when not ``--<name-with-dashes>``; ``shown``:
    the default as the settings table shows it; ``choices``: the valid values of a string."""
    metadata = {
        "help": help,
        "output": output,
        "applies": applies,
        "flag": flag,
        "shown": shown,
        "choices": choices,
    }
    if isinstance(default, Mapping):  # a fresh plain dict for every config
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: copy.copy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _random_sampling(c: PrepareConfig) -> bool:
    return c.sampling == "random"


def _clocked(c: PrepareConfig) -> bool:
    return c.sampling != "random"


def _rates_used(c: PrepareConfig) -> bool:
    return c.uses_frame_rates


def _clips(c: PrepareConfig) -> bool:
    return c.sampling == "clips"


def _random_augmentation(c: PrepareConfig) -> bool:
    return is_random(c.augmentations)


def _pose_changing(c: PrepareConfig) -> bool:
    return bool(c.pose_augmentations)


def _body_model_fields(c: PrepareConfig) -> bool:
    return bool(c.body_model_augmentations)


@dataclass(frozen=True)
class PrepareConfig:
    """How AMASS is turned into training data. Every field is a setting; see
    :func:`settings_table` (and docs/reference/settings.md) for each one's meaning and default."""

    keep_rate: float = setting(
        0.3,
        "fraction of each motion's frames kept after trimming, drawn per file "
        '(`sampling="random"`; the original VPoser recipe)',
        applies=_random_sampling,
    )
    trim: float = setting(0.1, "fraction of frames dropped at each end of a motion (T-poses)")
    sampling: str = setting(
        "random",
        '"random" (a `keep_rate` fraction per file), "fps" (the frames nearest to a regular '
        'clock at `target_fps`, by each file\'s own rate) or "clips" (windows of '
        "`clip_frames` ticks of that clock)",
        choices=SAMPLING_MODES,
    )
    target_fps: float | None = setting(
        None,
        'clock rate in Hz for `sampling="fps"` and `"clips"`; on the command line, giving it '
        'alone selects "fps"',
        applies=_clocked,
    )
    clip_frames: int | None = setting(
        None,
        'frames per clip (T >= 2) for `sampling="clips"`; on the command line, giving it '
        'selects "clips"',
        applies=_clips,
    )
    clip_stride: int | None = setting(
        None,
        "ticks between the starts of consecutive clips (None: `clip_frames`, no overlap)",
        applies=_clips,
    )
    canonicalize: bool = setting(
        True,
        "move each clip rigidly about the vertical so its first frame faces +y at x = y = 0 "
        "(`canon_yaw` and `canon_offset` restore it)",
        applies=_clips,
    )
    seed: int = setting(
        0,
        "each file's draw comes from the seed and its relative path; each augmentation "
        "batch's from the seed, pass and batch index",
    )
    default_fps: float | None = setting(
        None, "frame rate assumed for files without one (None: such files are skipped)"
    )
    fps_overrides: Mapping[str, float] = setting(
        AMASS_FPS_ERRATA,
        "path pattern -> true frame rate in Hz, for files whose stated rate is wrong; patterns "
        "match paths below amass_dir (either release's dataset names); the default is the "
        "documented preset of known errata; `{}` disables it",
        applies=_rates_used,
        shown="`AMASS_FPS_ERRATA`",
    )
    exclude: tuple[Exclusion, ...] = setting(
        (),
        "files left out by name: `{pattern, reason}` entries or preset names "
        f"({', '.join(EXCLUSION_PRESETS)}); none by default (the VPoser recipe)",
        shown="`()`",
    )
    augmentations: tuple[AugmentSpec, ...] = setting(
        ("matrot",),
        "applied in order in Stage II: names or mappings such as "
        '`{"name": "noise", "sigma": 0.02}`; pose-changing ones before `matrot`',
        flag="--augment",
        shown='`["matrot"]`',
    )
    augment_passes: int = setting(
        1,
        "independent augmented copies written of each split in `augment_splits` (needs a "
        "random augmentation when > 1)",
    )
    augment_splits: tuple[str, ...] = setting(
        ("train",),
        "the splits the pose-changing augmentations (mirror, random_zrot, noise, remove_zrot) "
        "apply to; every other split holds its source poses, and the derived fields (matrot, "
        "rot6d, quat, velocities) are in every split",
        applies=_pose_changing,
        shown='`["train"]`',
    )
    body_model_dir: str | None = setting(
        None,
        "folder of the user's SMPL-family model files, needed by the `joints` and `contacts` "
        "augmentations: `<family>/<gender>/model.npz` (AMASS) or `<family>/<FAMILY>_<GENDER>"
        ".npz` (the smplx package); the SHA-256 of the model files used, not this path, is "
        "part of the output's identity",
        output=False,
    )
    body_model_gender: str = setting(
        "file",
        '"file": each motion uses the model of its own gender (`neutral` for neutral files); '
        '"neutral": the neutral model for every motion',
        applies=_body_model_fields,
        choices=BODY_MODEL_GENDERS,
    )
    batch_size: int = setting(
        8192,
        "Stage II frames per batch (clips: `batch_size // clip_frames` clips); random draws "
        "are per batch, so with a random augmentation it is part of the output's identity",
        applies=_random_augmentation,
    )
    stats_split: str | None = setting(
        "train",
        "the split whose statistics (per field and dimension: mean, std, min, max) are stored; "
        "None: none",
    )
    hdf5_compression: str = setting(
        "none",
        'Stage II HDF5 compression: "none" (readable by every HDF5 reader), "gzip" or '
        '"lzf"; does not change the final tensors',
        output=False,
        flag="--compression",
        choices=COMPRESSIONS,
    )
    hdf5_compression_level: int = setting(
        1, "gzip level 0-9", output=False, flag="--compression-level"
    )
    num_workers: int = setting(
        2,
        "Stage I reader processes and Stage II DataLoader workers (0: all in this process); "
        "does not change the output",
        output=False,
    )
    strict: bool = setting(
        False,
        "stop at the first unusable (damaged) motion file instead of skipping it; a motion "
        "too short to yield a sample is listed as such and never stops the run",
        output=False,
    )
    progress: bool | None = setting(
        None, "show progress bars (None: only on a terminal)", output=False
    )

    def __post_init__(self) -> None:
        try:
            augmentations = parse_augmentations(self.augmentations)
        except ConfigError as exc:
            raise ConfigError(f"invalid PrepareConfig: augmentations: {exc}") from None
        object.__setattr__(self, "augmentations", augmentations)
        try:
            overrides = parse_fps_overrides(self.fps_overrides)
        except ValueError as exc:
            raise ConfigError(f"invalid PrepareConfig: fps_overrides: {exc}") from None
        object.__setattr__(self, "fps_overrides", overrides)
        object.__setattr__(self, "exclude", _parse_exclude(self.exclude))
        if isinstance(self.body_model_dir, os.PathLike):  # a Path is kept as its text
            object.__setattr__(self, "body_model_dir", os.fspath(self.body_model_dir))
        splits = self.augment_splits
        if isinstance(splits, str):
            splits = (splits,)
        if isinstance(splits, (list, tuple)) and all(isinstance(s, str) for s in splits):
            object.__setattr__(self, "augment_splits", tuple(sorted(set(splits))))
        problems = _problems(self)
        if problems:
            raise ConfigError("invalid PrepareConfig: " + "; ".join(problems))

    # -- views -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (augmentations as a list of mappings)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["augmentations"] = [spec.as_dict() for spec in self.augmentations]
        values["fps_overrides"] = dict(self.fps_overrides)
        values["exclude"] = [entry.as_dict() for entry in self.exclude]
        values["augment_splits"] = list(self.augment_splits)
        return values

    def identity(self) -> dict[str, Any]:
        """The settings that decide the final tensors, where they apply: the identity of a
        prepared folder. Workers, strictness, progress bars and the intermediate HDF5's
        compression are not part of it; nor is ``keep_rate`` under ``sampling="fps"``, nor
        ``target_fps`` under ``"random"``."""
        values = self.to_dict()
        if self.sampling == "clips":  # the stride clips use, given or not
            values["clip_stride"] = self.stride
        return {
            f.name: values[f.name]
            for f in dataclasses.fields(self)
            if f.metadata["output"]
            and (f.metadata["applies"] is None or f.metadata["applies"](self))
        }

    @classmethod
    def from_mapping(cls, values: PrepareConfig | Mapping[str, Any]) -> PrepareConfig:
        """Build from plain values, refusing unknown keys by name."""
        if isinstance(values, PrepareConfig):
            return values
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"prepare={values!r}: expected a PrepareConfig or a mapping of its settings"
            )
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown PrepareConfig settings {unknown}; known: {known}")
        return cls(**dict(values))

    @property
    def pose_augmentations(self) -> tuple[AugmentSpec, ...]:
        """The configured augmentations that change poses (mirror, random_zrot, noise,
        remove_zrot): applied to the ``augment_splits`` only."""
        return tuple(s for s in self.augmentations if s.augmentation.changes_poses)

    @property
    def body_model_augmentations(self) -> tuple[AugmentSpec, ...]:
        """The configured augmentations that need the user's body models (joints, contacts)."""
        return tuple(s for s in self.augmentations if s.augmentation.needs_body_model)

    @property
    def uses_frame_rates(self) -> bool:
        """Whether the files' frame rates shape the output (so ``fps_overrides`` apply): the
        clock and clips do, and so do labels of the source motion (``contacts``: speeds in m/s)
        under any sampling."""
        return self.sampling != "random" or any(
            s.augmentation.from_source for s in self.augmentations
        )

    def require_body_model_dir(self) -> None:
        """ConfigError when an augmentation needs body models and ``body_model_dir`` is None
        (checked where the stages may run, not where a prepared folder is served)."""
        if self.body_model_augmentations and self.body_model_dir is None:
            names = [s.name for s in self.body_model_augmentations]
            raise ConfigError(
                f"invalid PrepareConfig: augmentations {names} need the SMPL-family body "
                "models, and body_model_dir is None: pass body_model_dir=<your models' folder: "
                "<family>/<gender>/model.npz or <family>/<FAMILY>_<GENDER>.npz>"
            )

    def augments(self, split: str) -> bool:
        """Whether ``split`` gets the pose-changing augmentations (and the passes)."""
        return bool(self.pose_augmentations) and split in self.augment_splits

    def split_augmentations(self, split: str) -> tuple[AugmentSpec, ...]:
        """The augmentations applied to ``split``: all of them in the ``augment_splits``,
        elsewhere only those that add derived fields, so that every split has the same
        fields and the poses of the others are their source frames."""
        if self.augments(split):
            return self.augmentations
        return tuple(s for s in self.augmentations if not s.augmentation.changes_poses)

    def split_passes(self, split: str) -> int:
        """The augmentation passes written of ``split``: ``augment_passes`` in the
        ``augment_splits``, else 1 (unaugmented passes would be identical copies)."""
        return self.augment_passes if self.augments(split) else 1

    def check_splits(self, splits: Collection[str]) -> None:
        """Raise ConfigError when a setting names a split the mapping lacks."""
        if self.stats_split is not None and self.stats_split not in splits:
            raise ConfigError(
                f"stats_split={self.stats_split!r}: the split mapping has no such split "
                f"(splits: {list(splits)}); name the split to compute training "
                "statistics on, or pass stats_split=None to store none"
            )
        absent = [s for s in self.augment_splits if s not in splits]
        if self.pose_augmentations and absent:
            names = [s.name for s in self.pose_augmentations]
            raise ConfigError(
                f"augment_splits={self.augment_splits!r}: the split mapping has no split "
                f"{absent[0]!r} (splits: {list(splits)}); name the splits the augmentations "
                f"{names} apply to"
            )

    @property
    def stride(self) -> int:
        """Ticks between clip starts (``clip_stride``, or ``clip_frames``); clips only."""
        if self.clip_frames is None:
            raise ConfigError("stride: only sampling='clips' has clips")
        return self.clip_stride or self.clip_frames


def _parse_exclude(value: Any) -> tuple[Exclusion, ...]:
    """Exclusion entries, a preset's name standing for its entries."""
    if isinstance(value, str):
        value = [value]
    expanded: list[Any] = []
    for entry in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(entry, str):
            if entry not in EXCLUSION_PRESETS:
                raise ConfigError(
                    f"invalid PrepareConfig: exclude: {entry!r} is not a preset; presets: "
                    f"{', '.join(EXCLUSION_PRESETS)}, or give {{'pattern': ..., 'reason': ...}}"
                )
            expanded.extend(EXCLUSION_PRESETS[entry])
        else:
            expanded.append(entry)
    try:
        return parse_exclusions(expanded)
    except ValueError as exc:
        raise ConfigError(f"invalid PrepareConfig: exclude: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _problems(c: PrepareConfig) -> list[str]:
    """Every setting out of range, each with the value found and what was expected."""
    problems = []
    if not (_is_real(c.keep_rate) and 0 < c.keep_rate <= 1):
        problems.append(f"keep_rate={c.keep_rate!r}: expected 0 < keep_rate <= 1")
    if not (_is_real(c.trim) and 0 <= c.trim < 0.5):
        problems.append(f"trim={c.trim!r}: expected 0 <= trim < 0.5")
    if c.sampling not in SAMPLING_MODES:
        problems.append(f"sampling={c.sampling!r}: expected one of {SAMPLING_MODES}")
    if c.target_fps is not None and not (_is_real(c.target_fps) and c.target_fps > 0):
        problems.append(f"target_fps={c.target_fps!r}: expected a rate > 0 in Hz, or None")
    elif c.sampling != "random" and c.target_fps is None:
        problems.append(f"target_fps=None: sampling={c.sampling!r} needs a rate > 0 in Hz")
    if c.clip_frames is not None and not (_is_int(c.clip_frames) and c.clip_frames >= 2):
        problems.append(f"clip_frames={c.clip_frames!r}: expected an integer >= 2, or None")
    elif c.sampling == "clips" and c.clip_frames is None:
        problems.append("clip_frames=None: sampling='clips' needs the frames per clip (>= 2)")
    if c.clip_stride is not None and not (_is_int(c.clip_stride) and c.clip_stride >= 1):
        problems.append(f"clip_stride={c.clip_stride!r}: expected an integer >= 1, or None")
    if not isinstance(c.canonicalize, bool):
        problems.append(f"canonicalize={c.canonicalize!r}: expected True or False")
    needs_clips = [s.name for s in c.augmentations if s.augmentation.needs_clips]
    if needs_clips and c.sampling != "clips":
        problems.append(
            f"augmentations={needs_clips}: need sampling='clips' (a rate and several frames "
            f"per sample), not sampling={c.sampling!r}"
        )
    if not _is_int(c.seed) or c.seed < 0:
        problems.append(f"seed={c.seed!r}: expected an integer >= 0")
    if c.default_fps is not None and not (_is_real(c.default_fps) and c.default_fps > 0):
        problems.append(f"default_fps={c.default_fps!r}: expected a rate > 0 or None")
    if not _is_int(c.augment_passes) or c.augment_passes < 1:
        problems.append(f"augment_passes={c.augment_passes!r}: expected an integer >= 1")
    elif c.augment_passes > 1 and not is_random(c.augmentations):
        names = [spec.name for spec in c.augmentations] or "none"
        problems.append(
            f"augment_passes={c.augment_passes!r}: the augmentations ({names}) draw nothing at "
            "random, so every pass would be an identical copy; add a random augmentation "
            "(noise, random_zrot, mirror with 0 < p < 1) or use augment_passes=1"
        )
    if not (
        isinstance(c.augment_splits, tuple)
        and all(isinstance(s, str) and s for s in c.augment_splits)
    ):
        problems.append(f"augment_splits={c.augment_splits!r}: expected a list of split names")
    elif not c.augment_splits and c.pose_augmentations:
        names = [s.name for s in c.pose_augmentations]
        problems.append(
            f"augment_splits=(): names no split, so the augmentations {names} would apply "
            "nowhere; name a split (such as 'train') or leave them out"
        )
    if c.body_model_gender not in BODY_MODEL_GENDERS:
        problems.append(f"body_model_gender={c.body_model_gender!r}: expected 'file' or 'neutral'")
    if c.body_model_dir is not None and not (
        isinstance(c.body_model_dir, str) and c.body_model_dir
    ):
        problems.append(f"body_model_dir={c.body_model_dir!r}: expected a folder or None")
    if not _is_int(c.num_workers) or c.num_workers < 0:
        problems.append(f"num_workers={c.num_workers!r}: expected an integer >= 0")
    if not _is_int(c.batch_size) or c.batch_size < 1:
        problems.append(f"batch_size={c.batch_size!r}: expected an integer >= 1")
    if c.stats_split is not None and (not isinstance(c.stats_split, str) or not c.stats_split):
        problems.append(f"stats_split={c.stats_split!r}: expected a split name or None")
    if c.hdf5_compression not in COMPRESSIONS:
        problems.append(f"hdf5_compression={c.hdf5_compression!r}: expected one of {COMPRESSIONS}")
    if not _is_int(c.hdf5_compression_level) or not 0 <= c.hdf5_compression_level <= 9:
        problems.append(
            f"hdf5_compression_level={c.hdf5_compression_level!r}: expected an integer 0-9"
        )
    if not isinstance(c.strict, bool):
        problems.append(f"strict={c.strict!r}: expected True or False")
    if c.progress is not None and not isinstance(c.progress, bool):
        problems.append(f"progress={c.progress!r}: expected True, False or None")
    return problems


def settings_table() -> str:
    """The settings table of the documentation (Markdown), made from the declaration."""
    rows = ["| setting | default | changes the data | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(PrepareConfig):
        meta = f.metadata
        default = PrepareConfig().to_dict()[f.name]
        shown = meta["shown"] or f"`{default!r}`"
        output = (
            ("yes" if meta["applies"] is None else "where it applies") if meta["output"] else "no"
        )
        rows.append(f"| `{f.name}` | {shown} | {output} | {meta['help']} |")
    return "\n".join(rows)


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
