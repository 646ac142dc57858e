"""Known AMASS frame-rate errata and named exclusion presets, each with its source, as data.

Nothing here reads files or imports torch: the configuration layer imports this module to
validate settings, and the pipeline asks it two questions per motion file: which frame rate to
believe (:func:`find_fps_override`, :func:`override_applies`) and whether to leave the file out
(:func:`find_exclusion`). Files are named by *pattern*: a relative POSIX path matched component
by component (each component a case-sensitive glob; ``**`` any number of components; a
pattern names a file or a folder; the dataset component also matches its release names);
where several frame-rate patterns match, the most specific wins. The full rules, and the
sources of each erratum and preset: ``docs/notes/errata.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from numbers import Real
from types import MappingProxyType

from vposer_data.splits import DATASET_ALIASES

__all__ = [
    "AMASS_FPS_ERRATA",
    "EXCLUDE_INLINE_SKATING",
    "EXCLUDE_TREADMILL",
    "EXCLUSION_PRESETS",
    "FPS_ERRATA",
    "FPS_OVERRIDE_TOLERANCE",
    "UNRESOLVED_FPS_DISCREPANCIES",
    "Exclusion",
    "FpsErratum",
    "check_pattern",
    "exclusion_reason",
    "find_exclusion",
    "find_fps_override",
    "fps_override",
    "override_applies",
    "parse_exclusions",
    "parse_fps_overrides",
    "pattern_matches",
]

# --- patterns ---------------------------------------------------------------------------------


def check_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid pattern (see the module docstring), else raise.

    Raises:
        ValueError: naming the pattern and what is wrong with it.
    """
    if not isinstance(pattern, str):
        raise ValueError(f"pattern {pattern!r} is not a string")
    problem = None
    parts = pattern.split("/")
    if not pattern:
        problem = "it is empty"
    elif "\\" in pattern:
        problem = "it contains a backslash; separate folders with '/'"
    elif pattern.startswith("/"):
        problem = "it is absolute; patterns are relative to amass_dir"
    elif any(part == "" for part in parts):
        problem = "it has an empty component ('//' or a trailing '/')"
    elif any(part in (".", "..") for part in parts):
        problem = "it has a '.' or '..' component"
    elif any("**" in part and part != "**" for part in parts):
        problem = "'**' must be a whole component (as in 'BMLrub/**/x')"
    if problem:
        raise ValueError(f"pattern {pattern!r} is invalid: {problem}")
    return pattern


def _component_matches(pattern: str, name: str, dataset: bool) -> bool:
    if dataset:
        return any(fnmatchcase(alias, pattern) for alias in DATASET_ALIASES.get(name, (name,)))
    return fnmatchcase(name, pattern)


def _match(pat: list[str], parts: list[str], i: int, j: int) -> bool:
    if i == len(pat):
        return True  # the pattern named this folder (or the file itself): all below it matches
    if pat[i] == "**":
        return any(_match(pat, parts, i + 1, k) for k in range(j, len(parts) + 1))
    if j == len(parts) or not _component_matches(pat[i], parts[j], dataset=j == 0):
        return False
    return _match(pat, parts, i + 1, j + 1)


def pattern_matches(pattern: str, rel_path: str) -> bool:
    """Whether ``rel_path`` (POSIX, relative to ``amass_dir``) matches ``pattern``."""
    return _match(pattern.split("/"), rel_path.split("/"), 0, 0)


def _literal_chars(component: str) -> int:
    """Characters of a glob component that match only themselves (as fnmatch parses it)."""
    count, i, n = 0, 0, len(component)
    while i < n:
        ch = component[i]
        if ch in "*?":
            i += 1
            continue
        if ch == "[":
            j = i + 1
            if j < n and component[j] == "!":
                j += 1
            if j < n and component[j] == "]":
                j += 1
            while j < n and component[j] != "]":
                j += 1
            if j < n:  # a closed set: one character of several, not a literal
                i = j + 1
                continue
        count += 1
        i += 1
    return count


def _specificity_key(pattern: str) -> tuple[int, int, str]:
    """Sort key: the most specific pattern sorts first (see the module docstring)."""
    parts = pattern.split("/")
    depth = sum(part != "**" for part in parts)
    after_dataset = parts if parts[0] == "**" else parts[1:]
    literal = sum(_literal_chars(part) for part in after_dataset if part != "**")
    return (-depth, -literal, pattern)


# --- the known errata and presets ----------------------------------------------------------------

_HUMOR_PROCESS = (
    "HuMoR, https://github.com/davrempe/humor, humor/scripts/process_amass_data.py (process_seq)"
)
_HUMOR_CLEANUP = "HuMoR, https://github.com/davrempe/humor, humor/scripts/cleanup_amass_data.py"


@dataclass(frozen=True)
class FpsErratum:
    """A known wrong frame rate in AMASS: files matching ``pattern`` really run at ``fps`` Hz.

    ``fps`` is ``None`` where the discrepancy is known but the true rate is not settled.
    """

    pattern: str
    fps: float | None
    source: str
    note: str


#: The errata applied by default (see :data:`AMASS_FPS_ERRATA`).
FPS_ERRATA: tuple[FpsErratum, ...] = (
    FpsErratum(
        pattern="BMLhandball",
        fps=240.0,
        source=_HUMOR_PROCESS,
        note="every BMLhandball motion is really 240 Hz, whatever rate the file states",
    ),
    FpsErratum(
        pattern="SSM_synced/**/20160930_50032",
        fps=59.0,
        source=_HUMOR_PROCESS,
        note="SSM subject 20160930_50032 is really 59 Hz",
    ),
    FpsErratum(
        pattern="SSM_synced/**/20161014_50033",
        fps=59.0,
        source=_HUMOR_PROCESS + "; https://github.com/nghorbani/amass/issues/68",
        note=(
            "SSM subject 20161014_50033 is really 59 Hz; issue 68 reports its SMPL-X files "
            "say 120 Hz and play at the wrong speed"
        ),
    ),
)

#: Known, documented, but not applied: the true rate is not settled.
UNRESOLVED_FPS_DISCREPANCIES: tuple[FpsErratum, ...] = (
    FpsErratum(
        pattern="TotalCapture",
        fps=None,
        source="https://github.com/nghorbani/amass/issues/49",
        note=(
            "rates differ between the SMPL+H G and SMPL-X G releases (e.g. s1/walking1: 60 Hz "
            "as _poses.npz, 120 Hz as _stageii.npz); the issue lists other datasets too "
            "(TCD_handMocap 150 vs 120 Hz) and about 5,000 files in all"
        ),
    ),
)

#: The default frame-rate errata: pattern -> the true rate in Hz. Read-only; a setting that
#: starts from it takes a copy (``dict(AMASS_FPS_ERRATA)``).
AMASS_FPS_ERRATA: Mapping[str, float] = MappingProxyType(
    {e.pattern: e.fps for e in FPS_ERRATA if e.fps is not None}
)

#: Relative difference above which a stated rate is replaced by an override: 0.5%. Real rates
#: are floats a hair off their nominal value (59.99998..., 120.00004...); those are not errata.
FPS_OVERRIDE_TOLERANCE = 0.005


@dataclass(frozen=True)
class Exclusion:
    """Leave out files matching ``pattern`` (see the module docstring) because of ``reason``."""

    pattern: str
    reason: str

    def __post_init__(self) -> None:
        check_pattern(self.pattern)
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError(
                f"exclusion {self.pattern!r}: reason must be a non-empty string, "
                f"got {self.reason!r}"
            )

    def as_dict(self) -> dict[str, str]:
        """``{"pattern": ..., "reason": ...}``, the plain form settings and manifests hold."""
        return {"pattern": self.pattern, "reason": self.reason}


#: BMLrub treadmill walking and jogging: the ``treadmill_*`` and ``normal_*`` motions of every
#: subject (second name token ``treadmill`` or ``normal``; see the module docstring).
EXCLUDE_TREADMILL: tuple[Exclusion, ...] = (
    Exclusion(
        "BMLrub/**/[0-9][0-9][0-9][0-9]_treadmill_*",
        f"BMLrub treadmill walking/jogging (treadmill_*), as removed by {_HUMOR_CLEANUP}",
    ),
    Exclusion(
        "BMLrub/**/[0-9][0-9][0-9][0-9]_normal_*",
        f"BMLrub walking/jogging (normal_*), grouped with the treadmill clips by {_HUMOR_CLEANUP}",
    ),
)

#: HDM05 inline skating: subject dg, scene 07-01.
EXCLUDE_INLINE_SKATING: tuple[Exclusion, ...] = (
    Exclusion(
        "HDM05/**/dg/HDM_dg_07-01*",
        f"HDM05 inline skating (dg/HDM_dg_07-01*), as removed by {_HUMOR_CLEANUP}",
    ),
)

#: The exclusion presets by name (all off by default).
EXCLUSION_PRESETS: Mapping[str, tuple[Exclusion, ...]] = MappingProxyType(
    {"treadmill": EXCLUDE_TREADMILL, "inline_skating": EXCLUDE_INLINE_SKATING}
)


# --- frame rates: settings and lookup ----------------------------------------------------------


def parse_fps_overrides(value: object) -> dict[str, float]:
    """Validate a frame-rate override mapping ``{pattern: Hz}`` into a plain new dict.

    Raises:
        ValueError: not a mapping, or naming the entry with an invalid pattern or a rate that
            is not a positive finite number.
    """
    if not isinstance(value, Mapping):
        raise ValueError(
            f"fps overrides must be a mapping {{pattern: Hz}}, got {type(value).__name__}"
        )
    result: dict[str, float] = {}
    for pattern, fps in value.items():
        try:
            check_pattern(pattern)
        except ValueError as err:
            raise ValueError(f"fps override {pattern!r}: {err}") from None
        if isinstance(fps, bool) or not isinstance(fps, Real):
            raise ValueError(f"fps override {pattern!r}: rate {fps!r} is not a number")
        rate = float(fps)
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"fps override {pattern!r}: rate {fps!r} must be positive and finite")
        result[pattern] = rate
    return result


def find_fps_override(rel_path: str, overrides: Mapping[str, float]) -> tuple[str, float] | None:
    """The most specific ``(pattern, Hz)`` of ``overrides`` matching ``rel_path``, or ``None``."""
    matching = [p for p in overrides if pattern_matches(p, rel_path)]
    if not matching:
        return None
    best = min(matching, key=_specificity_key)
    return best, float(overrides[best])


def fps_override(rel_path: str, overrides: Mapping[str, float]) -> float | None:
    """The rate ``overrides`` gives ``rel_path`` (most specific pattern wins), or ``None``."""
    found = find_fps_override(rel_path, overrides)
    return None if found is None else found[1]


def override_applies(file_fps: float | None, override_fps: float) -> bool:
    """Whether ``override_fps`` changes a file stated to run at ``file_fps``.

    True when the two differ by more than :data:`FPS_OVERRIDE_TOLERANCE` (0.5%) of the
    override, or when the file states no usable rate (``None``, not finite, not positive).
    A rate within 0.5% is the same rate written with float noise: the file's own value is kept.

    Raises:
        ValueError: ``override_fps`` is not a positive finite number.
    """
    if not (math.isfinite(override_fps) and override_fps > 0):
        raise ValueError(f"override rate {override_fps!r} must be positive and finite")
    if file_fps is None or not math.isfinite(file_fps) or file_fps <= 0:
        return True
    return abs(file_fps - override_fps) > FPS_OVERRIDE_TOLERANCE * override_fps


# --- exclusions -------------------------------------------------------------------------------


def _exclusion_from(entry: object) -> Exclusion:
    if isinstance(entry, Exclusion):
        return entry
    if isinstance(entry, Mapping):
        missing = [k for k in ("pattern", "reason") if k not in entry]
        extra = sorted(str(k) for k in entry if k not in ("pattern", "reason"))
        if missing or extra:
            what = [f"missing {', '.join(missing)}"] if missing else []
            what += [f"unknown {', '.join(extra)}"] if extra else []
            raise ValueError(f"expected keys 'pattern' and 'reason' ({'; '.join(what)})")
        return Exclusion(entry["pattern"], entry["reason"])
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        return Exclusion(entry[0], entry[1])
    raise ValueError("expected {'pattern': ..., 'reason': ...} or a (pattern, reason) pair")


def parse_exclusions(value: object) -> tuple[Exclusion, ...]:
    """Validate exclusions: a list of ``{"pattern", "reason"}`` mappings, ``(pattern, reason)``
    pairs or :class:`Exclusion` (the presets are tuples of these, so ``EXCLUDE_TREADMILL +
    EXCLUDE_INLINE_SKATING`` is accepted as is). Order is kept.

    Raises:
        ValueError: ``value`` is a string, a mapping or not iterable, or naming the index and
            value of the first bad entry.
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(
            "exclusions must be a list of {'pattern': ..., 'reason': ...} entries, "
            f"got {type(value).__name__}"
        )
    result: list[Exclusion] = []
    for index, entry in enumerate(value):
        try:
            result.append(_exclusion_from(entry))
        except ValueError as err:
            raise ValueError(f"exclusion #{index} {entry!r}: {err}") from None
    return tuple(result)


def find_exclusion(rel_path: str, excludes: Iterable[Exclusion]) -> Exclusion | None:
    """The first entry of ``excludes`` whose pattern matches ``rel_path``, or ``None``."""
    for exclusion in excludes:
        if pattern_matches(exclusion.pattern, rel_path):
            return exclusion
    return None


def exclusion_reason(rel_path: str, excludes: Iterable[Exclusion]) -> str | None:
    """Why ``rel_path`` is excluded (the first matching entry's reason), or ``None``."""
    found = find_exclusion(rel_path, excludes)
    return None if found is None else found.reason
