"""Standard AMASS splits, dataset names across AMASS releases, and motion-file discovery.

A split maps a name (``train``, ``vald``, ``test``) to dataset entries. An entry is a dataset
folder name, in the naming of either AMASS release, or a subfolder of one (``BMLrub/rub001``)
for subject-level splits. Resolution turns entries into folders under ``amass_dir`` and then
into the sorted list of ``.npz`` files below them, whatever order the file system lists them in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vposer_data.errors import VPoserDataError
from vposer_data.interrupts import check

__all__ = [
    "AMASS_SPLITS",
    "DATASET_ALIASES",
    "ResolvedDataset",
    "SourceFile",
    "SplitError",
    "find_npz_files",
    "normalize_splits",
    "resolve_datasets",
    "resolve_split_files",
]

_log = logging.getLogger(__name__)

_VALD = ["HumanEva", "MPI_HDM05", "SFU", "MPI_mosh"]
_TEST = ["Transitions_mocap", "SSM_synced"]
_TRAIN_CANDIDATES = [
    "CMU",
    "MPI_Limits",
    "TotalCapture",
    "Eyes_Japan_Dataset",
    "KIT",
    "BML",
    "EKUT",
    "TCD_handMocap",
    "ACCAD",
]

#: The splits recommended for VPoser (train minus anything in vald or test, order kept).
AMASS_SPLITS: dict[str, list[str]] = {
    "vald": list(_VALD),
    "test": list(_TEST),
    "train": [name for name in _TRAIN_CANDIDATES if name not in _VALD + _TEST],
}

#: Names of one dataset across AMASS releases (SMPL+H era first, then SMPL-X era).
_ALIAS_GROUPS: tuple[tuple[str, ...], ...] = (
    ("MPI_HDM05", "HDM05"),
    ("Transitions_mocap", "Transitions"),
    ("SSM_synced", "SSM"),
    ("MPI_Limits", "PosePrior"),
    ("MPI_mosh", "MoSh"),
    ("TCD_handMocap", "TCDHands"),
    ("Eyes_Japan_Dataset", "EyesJapanDataset"),
    ("BML", "BMLrub", "BioMotionLab_NTroje"),
    ("DFaust_67", "DFaust"),
)
DATASET_ALIASES: dict[str, tuple[str, ...]] = {
    name: group for group in _ALIAS_GROUPS for name in group
}


class SplitError(VPoserDataError, ValueError):
    """A split mapping that cannot be resolved against an AMASS directory."""


@dataclass(frozen=True)
class ResolvedDataset:
    """A split entry and the folder it resolved to (POSIX path relative to ``amass_dir``)."""

    entry: str
    folder: str


@dataclass(frozen=True)
class SourceFile:
    """A candidate motion file: its path relative to ``amass_dir`` and its split entry."""

    path: str
    dataset: str


def normalize_splits(splits: Mapping[str, Sequence[str] | str]) -> dict[str, list[str]]:
    """Plain ``{split: [entries]}``; a lone string entry becomes a one-item list."""
    return {str(k): [v] if isinstance(v, str) else list(v) for k, v in splits.items()}


def _candidate_names(name: str) -> list[str]:
    """The name itself first, then its other release names."""
    return [name] + [alias for alias in DATASET_ALIASES.get(name, ()) if alias != name]


def _resolve_entry(
    entry: str, amass_dir: Path, existing: list[str], log: Callable[[str], None]
) -> str:
    parts = PurePosixPath(entry.replace("\\", "/").strip("/")).parts
    if not parts or any(part in ("..", ".") for part in parts):
        raise SplitError(f"split entry {entry!r} is not a dataset name or dataset/subfolder")
    head, rest = parts[0], parts[1:]
    if (amass_dir / head).is_dir():
        found = [head]  # a folder named exactly is taken as is, even if an alias exists too
    else:
        found = [name for name in _candidate_names(head) if (amass_dir / name).is_dir()]
    if not found:
        others = _candidate_names(head)[1:]
        also = f" (also tried {', '.join(others)})" if others else ""
        raise SplitError(
            f"dataset {head!r}{also} not found in {amass_dir}; "
            f"folders there: {', '.join(existing) or '(none)'}"
        )
    if len(found) > 1:
        raise SplitError(
            f"dataset {head!r} is present under several release names in {amass_dir}: "
            f"{', '.join(found)}; keep one or name the folder you want exactly"
        )
    folder = found[0]
    if folder != head:
        log(f"dataset {head!r} resolved to folder {folder!r} (release alias)")
    resolved = str(PurePosixPath(folder, *rest))
    if rest and not (amass_dir / resolved).is_dir():
        subfolders = sorted(p.name for p in (amass_dir / folder).iterdir() if p.is_dir())
        raise SplitError(
            f"split entry {entry!r}: no folder {resolved!r} in {amass_dir}; "
            f"subfolders of {folder!r}: {', '.join(subfolders[:20]) or '(none)'}"
            + (" ..." if len(subfolders) > 20 else "")
        )
    return resolved


def _overlaps(a: str, b: str) -> bool:
    pa, pb = PurePosixPath(a).parts, PurePosixPath(b).parts
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


def resolve_datasets(
    splits: Mapping[str, Sequence[str]],
    amass_dir: str | Path,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[ResolvedDataset]]:
    """Resolve every split entry to a folder under ``amass_dir``.

    Raises:
        SplitError: an unknown name (listing the folders that exist), a split with no entries,
            or a folder claimed twice (in two splits, or twice in one).
    """
    log = log or _log.info
    amass_dir = Path(amass_dir)
    if not amass_dir.exists():
        raise SplitError(f"amass_dir {amass_dir} does not exist")
    if not amass_dir.is_dir():
        raise SplitError(f"amass_dir {amass_dir} is not a directory")
    if not splits:
        raise SplitError("the split mapping is empty; expected e.g. {'train': [...], ...}")
    existing = sorted(p.name for p in amass_dir.iterdir() if p.is_dir())
    resolved: dict[str, list[ResolvedDataset]] = {}
    claimed: list[tuple[str, str, str]] = []  # (folder, split, entry)
    for split, entries in splits.items():
        if isinstance(entries, str):
            raise SplitError(
                f"split {split!r} is the string {entries!r}; expected a list of dataset names"
            )
        if not entries:
            raise SplitError(f"split {split!r} names no datasets")
        resolved[split] = []
        for entry in entries:
            folder = _resolve_entry(entry, amass_dir, existing, log)
            for other_folder, other_split, other_entry in claimed:
                if _overlaps(folder, other_folder):
                    where = (
                        f"twice in split {split!r}"
                        if other_split == split
                        else f"in splits {other_split!r} and {split!r}"
                    )
                    raise SplitError(
                        f"dataset {entry!r} ({folder}) overlaps {other_entry!r} "
                        f"({other_folder}) {where}; a dataset may be used once"
                    )
            claimed.append((folder, split, entry))
            resolved[split].append(ResolvedDataset(entry=entry, folder=folder))
    return resolved


def find_npz_files(amass_dir: str | Path, folder: str) -> list[str]:
    """Every ``.npz`` below ``amass_dir/folder``, as sorted POSIX paths relative to ``amass_dir``.

    Hidden files (``._*`` from macOS archives) are passed over; symlinked folders are followed.
    """
    root = Path(amass_dir)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root / folder, followlinks=True):
        check("walk")
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        found.extend(
            f"{rel_dir}/{name}"
            for name in filenames
            if name.endswith(".npz") and not name.startswith(".")
        )
    return sorted(found)


def resolve_split_files(
    splits: Mapping[str, Sequence[str]],
    amass_dir: str | Path,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[SourceFile]]:
    """The sorted ``.npz`` files of each split (motions and non-motions alike; the reader
    tells them apart).

    Raises:
        SplitError: as :func:`resolve_datasets`, or a split in which no ``.npz`` file exists.
    """
    log = log or _log.info
    result: dict[str, list[SourceFile]] = {}
    for split, datasets in resolve_datasets(splits, amass_dir, log).items():
        files: list[SourceFile] = []
        for dataset in datasets:
            paths = find_npz_files(amass_dir, dataset.folder)
            if not paths:
                log(f"warning: dataset {dataset.entry!r} ({dataset.folder}) holds no .npz files")
            files.extend(SourceFile(path=p, dataset=dataset.entry) for p in paths)
        if not files:
            names = ", ".join(d.entry for d in datasets)
            raise SplitError(f"split {split!r} ({names}) holds no .npz files under {amass_dir}")
        result[split] = files
    return result
