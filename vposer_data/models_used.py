"""Which body-model file each motion uses, found before any stage runs, and their identity.

A motion uses the model of its family and of its own gender (``body_model_gender="file"``), or
the neutral model of its family (``"neutral"``). Before any stage runs, each motion file's
family and gender are read from its zip directory, its ``poses`` header and its small
``gender`` member (no pose data); every model needed is looked for in ``body_model_dir``
(either layout), and a model the folder lacks is one error naming the files looked for and the
motions that need it. The SHA-256 of the files found, not their folder, identify them: the
same models copied elsewhere are the same output, another file is a stale output.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vposer_data.amass import (
    FAMILY_BY_POSE_WIDTH,
    family_of_split_keys,
    gender_of,
    is_non_motion_name,
)
from vposer_data.archive_glance import ArchiveGlance, NotARegularFile
from vposer_data.body_model import BodyModel, read_body_model
from vposer_data.errors import ConfigError, VPoserDataError
from vposer_data.interrupts import check
from vposer_data.model_files import BodyModelError, candidate_paths, model_sha256
from vposer_data.npz_reader import MappedArchive, numpy_archive
from vposer_data.splits import SourceFile
from vposer_data.zip_directory import Fallback

__all__ = [
    "BodyModels",
    "MissingBodyModelError",
    "ModelFile",
    "model_changes",
    "motion_model",
    "recorded_body_models",
    "resolve_body_models",
]

#: Motions named per missing model in the error (the count is always given).
_NAMED_MOTIONS = 5


class MissingBodyModelError(VPoserDataError, FileNotFoundError):
    """Models that motions need and ``body_model_dir`` lacks: each with the files looked for
    (both layouts) and the motions needing it."""


@dataclass(frozen=True)
class ModelFile:
    """One model file used: its family, gender, path and SHA-256."""

    family: str
    gender: str
    path: str
    sha256: str

    @property
    def key(self) -> str:
        return f"{self.family}/{self.gender}"


#: Models read by this process, by (path, family, gender, sha256): each is read once (a forked
#: worker inherits those its parent read while resolving them).
_READ: dict[tuple[str, str, str, str], BodyModel] = {}


def _read_checked(path: str, family: str, gender: str, sha256: str) -> BodyModel:
    """The model at ``path``, once per process, refused if its bytes changed since it was
    chosen (a file replaced during a run would give joints of another model)."""
    key = (path, family, gender, sha256)
    model = _READ.get(key)
    if model is None:
        model = read_body_model(path, family, gender)
        if model.sha256 != sha256:
            raise BodyModelError(
                path,
                f"changed while preparing: SHA-256 {model.sha256}, expected {sha256} (the file "
                "found before the stages ran); run again",
            )
        _READ[key] = model
    return model


@dataclass(frozen=True)
class BodyModels:
    """The model files a preparation uses, by ``family/gender``, and the gender rule.
    Picklable (paths and digests only): each process reads a model once, when first used."""

    files: Mapping[str, ModelFile]
    gender_mode: str  # "file" | "neutral"
    #: taken from a folder's record instead of from its motions (see recorded_body_models)
    from_record: bool = False

    def key(self, family: str, gender: str) -> str:
        return f"{family}/{'neutral' if self.gender_mode == 'neutral' else gender}"

    def load(self, family: str, gender: str) -> BodyModel:
        """The model a motion of ``family`` and ``gender`` uses."""
        found = self.files.get(self.key(family, gender))
        if found is None:  # the motions were all looked at before: a coding error
            raise RuntimeError(f"no body model {self.key(family, gender)} was resolved")
        return _read_checked(found.path, found.family, found.gender, found.sha256)

    def listing(self) -> dict[str, dict[str, str]]:
        """``{family/gender: {"file", "sha256"}}``, as the manifest records it."""
        return {
            key: {"file": found.path, "sha256": found.sha256}
            for key, found in sorted(self.files.items())
        }


def motion_model(path: Path) -> tuple[str, str] | None:
    """A motion file's ``(family, gender)``, from its zip directory, the ``poses`` header and
    the ``gender`` member; None for a file that is not a readable motion (Stage I says why).
    A plain archive is read through a few small reads (:class:`ArchiveGlance`), or mapped
    where those do not suffice; another (deflated) as Stage I reads it (``numpy_archive``)."""
    if is_non_motion_name(path):
        return None
    try:
        found = _glance(path)
        if found is None and (mapped := MappedArchive.open(path)) is not None:
            found = _model_keys(mapped)
        if found is None:  # as Stage I reads what the mapped reader does not: the same values
            with numpy_archive(path) as archive:
                keys = set(archive.keys)
                width = archive.get("poses").shape[1:] if "poses" in keys else None
                found = keys, width, archive.get("gender") if "gender" in keys else None
        keys, width, gender = found
    except (Fallback, OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError):
        return None  # NpzFormatError among them: Stage I reports the file
    if width is not None:
        family = FAMILY_BY_POSE_WIDTH.get(width[0]) if len(width) == 1 else None
    elif "pose_body" in keys:
        family = family_of_split_keys(keys)
    else:
        family = None
    name = None if gender is None else gender_of(gender)
    return None if family is None or name is None else (family, name)


_ModelKeys = tuple[set[str], tuple[int, ...] | None, np.ndarray | None]


def _glance(path: Path) -> _ModelKeys | None:
    """:func:`_model_keys` through a few small reads (:class:`ArchiveGlance`); None when the
    file needs another reader."""
    try:
        with ArchiveGlance.open(path) as glance:
            return _model_keys(glance)
    except NotARegularFile:
        raise  # no reader opens it
    except (Fallback, OSError):
        return None  # the mapped reader, or Stage I's, reads it and says what is wrong


def _model_keys(archive: ArchiveGlance | MappedArchive) -> _ModelKeys:
    """A plain archive's keys, the width of ``poses`` (from its header) and the ``gender``
    array; its members' checksums are kept (Stage I's input fingerprint reads them next)."""
    archive.keep_checksums()
    keys = archive.keys
    width = archive.shape("poses")[1:] if "poses" in keys else None
    return keys, width, archive.get("gender") if "gender" in keys else None


def resolve_body_models(
    body_model_dir: str | Path,
    gender_mode: str,
    amass_dir: Path,
    sources: Mapping[str, Sequence[SourceFile]],
    all_joints: bool = False,
) -> BodyModels:
    """The model file of every motion of every split, each read (and hashed) once.

    Each model is looked for and read on a helper thread as soon as the scan of the motions
    meets its first motion: reading and hashing it (zlib, hashlib and numpy, mostly without
    the GIL) overlaps the scan, a fifth less time for the two. Errors come as they would one
    after the other: a model that does not read, in the models' order, then every missing one
    at once.

    Raises:
        MissingBodyModelError: models the folder lacks, with the paths looked for (both
            layouts) and the motions needing each.
        BodyModelError: a model file that does not read as a model of its family.
        ConfigError: ``all_joints`` (``joints`` with ``set="all"``) and a split whose motions
            come from several families (their joints differ in number).
    """
    needed: dict[tuple[str, str], list[str]] = {}
    reading: dict[tuple[str, str], Future[ModelFile | None]] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="body-models") as pool:
        try:
            for split, files in sources.items():
                families: dict[str, str] = {}
                for source in files:
                    check("inputs")  # one motion's zip directory read
                    found = motion_model(amass_dir / source.path)
                    if found is None:
                        continue
                    family, gender = found
                    gender = "neutral" if gender_mode == "neutral" else gender
                    if (family, gender) not in reading:
                        reading[family, gender] = pool.submit(
                            _find_and_read, body_model_dir, family, gender
                        )
                    needed.setdefault((family, gender), []).append(source.path)
                    families.setdefault(family, source.path)
                if all_joints and len(families) > 1:
                    listed = "; ".join(f"{family}: {path}" for family, path in families.items())
                    raise ConfigError(
                        f"joints with set='all': split {split!r} mixes body-model families "
                        f"({listed}), whose joints differ in number; use set='body' (22 joints "
                        "in every family) or prepare each family in its own split"
                    )
            found_files: dict[str, ModelFile] = {}
            missing: list[str] = []
            for (family, gender), motions in sorted(needed.items()):
                check("inputs")
                model_file = reading[family, gender].result()
                if model_file is not None:
                    found_files[model_file.key] = model_file
                    continue
                named = ", ".join(motions[:_NAMED_MOTIONS]) + (
                    ", ..." if len(motions) > _NAMED_MOTIONS else ""
                )
                looked = "".join(
                    f"\n    {p}" for p in candidate_paths(body_model_dir, family, gender)
                )
                missing.append(
                    f"no {family} {gender} model; looked for:{looked}\n  needed by "
                    f"{len(motions)} motion(s): {named}"
                )
        finally:  # stopped early (Ctrl-C, an error): the models not yet begun are not read
            pool.shutdown(wait=True, cancel_futures=True)
    if missing:
        hint = (
            ""
            if gender_mode == "neutral"
            else " (body_model_gender='neutral' uses the neutral "
            "model of each family for every motion)"
        )
        raise MissingBodyModelError(
            f"body_model_dir {body_model_dir} lacks models that motions need{hint}:\n  "
            + "\n  ".join(missing)
        )
    return BodyModels(found_files, gender_mode)


def _find_and_read(body_model_dir: str | Path, family: str, gender: str) -> ModelFile | None:
    """The model file of ``family`` and ``gender`` in ``body_model_dir`` (either layout), read,
    checked and kept for this process (its SHA-256 from the bytes parsed), or None when the
    folder has none."""
    path = next((p for p in candidate_paths(body_model_dir, family, gender) if p.is_file()), None)
    if path is None:
        return None
    model = read_body_model(path, family, gender)  # hashed as read: one pass over the file
    _READ.setdefault((str(path), family, gender, model.sha256), model)
    return ModelFile(family, gender, str(path), model.sha256)


def recorded_body_models(
    body_model_dir: str | Path,
    gender_mode: str,
    recorded: Mapping[str, Any],
    from_record: bool = False,
) -> BodyModels:
    """The models a folder records (``{family/gender: {...}}``), looked for again in
    ``body_model_dir`` (when its AMASS files are not given to look at, or are unchanged);
    ``from_record`` marks them so."""
    files: dict[str, ModelFile] = {}
    for key in sorted(recorded):
        family, gender = key.split("/")
        check("inputs")
        paths = candidate_paths(body_model_dir, family, gender)
        path = next((p for p in paths if p.is_file()), None)
        if path is None:
            looked = "".join(f"\n    {p}" for p in paths)
            raise MissingBodyModelError(
                f"body_model_dir {body_model_dir} lacks the {family} {gender} model this "
                f"folder was prepared with; looked for:{looked}"
            )
        files[key] = ModelFile(family, gender, str(path), model_sha256(path))
    return BodyModels(files, gender_mode, from_record)


def model_changes(recorded: Mapping[str, Any], models: BodyModels) -> list[str]:
    """One line per model that differs from those a folder was prepared with, naming the
    file; empty when the same models (by SHA-256) are used."""
    lines = []
    for key in sorted(set(recorded) | set(models.files)):
        old: Any = recorded.get(key)
        new = models.files.get(key)
        if new is None:
            lines.append(f"body model {key}: prepared with {old['file']}, now not used")
        elif old is None:
            lines.append(f"body model {key}: {new.path} is used now, not before")
        elif old["sha256"] != new.sha256:
            lines.append(
                f"body model {key}: {new.path} has SHA-256 {new.sha256}; the folder was "
                f"prepared with {old['file']} (SHA-256 {old['sha256']})"
            )
    return lines
