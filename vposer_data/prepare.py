"""``prepare_vposer_datasets``: run the three stages over a split mapping, once.

Under an inter-process lock: check the folder's identity (settings differing from the
manifest's is an error unless ``overwrite``), work out which (stage, split) pairs are missing,
run only those, and record each in the manifest as it completes. A killed run resumes from
the last recorded pair; a second caller waits on the lock and then finds the work done.

This module is the driver: each stage (:data:`vposer_data.stages.PIPELINE`) only turns one
split's inputs into a temporary output; the temporary folder or file, its rename into place,
the manifest record, timing, logging and Ctrl-C are handled here, once for all stages.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import Timeout

from vposer_data._version import __version__
from vposer_data.atomic import (
    atomic_dir,
    atomic_path,
    make_durable,
    remove_temp_files,
)
from vposer_data.config import PrepareConfig
from vposer_data.errors import REBUILD_HINT, PrepareError, StaleOutputError
from vposer_data.inputs import input_changes
from vposer_data.interrupts import Interrupts, check
from vposer_data.manifest import (
    MANIFEST_NAME,
    STAGE_I,
    STAGES,
    Manifest,
    ManifestError,
    lock_for,
    output_identity,
    split_dir,
    stage_path,
)
from vposer_data.memory import release_free_memory
from vposer_data.models_used import (
    BodyModels,
    model_changes,
    recorded_body_models,
    resolve_body_models,
)
from vposer_data.records import Stage1Record
from vposer_data.runlog import LoggerLike, RunLog, resumed_line, stopped_line
from vposer_data.splits import SourceFile, SplitError, resolve_split_files
from vposer_data.stages import PIPELINE, SplitJob
from vposer_data.statistics import STATISTICS_NAME
from vposer_data.work_buffers import release_work_buffers

_log = logging.getLogger(__name__)

__all__ = ["LOG_NAME", "PrepareResult", "prepare_vposer_datasets"]

LOG_NAME = "prepare.log"
#: Seconds between two looks for Ctrl-C while waiting for another run's lock.
_LOCK_POLL = 0.1


@dataclass(frozen=True)
class PrepareResult:
    """What a call found or made."""

    data_dir: Path
    split_dirs: dict[str, Path]
    samples: dict[str, int]
    skipped: dict[str, int]
    ran: list[str] = field(default_factory=list)  # "stage_I/train", ...; empty: nothing to do
    seconds: dict[str, float] = field(default_factory=dict)


def _check_root(root: Path) -> None:
    """What can be wrong with the output folder, found without creating it: a file there, a
    folder this user may not write or enter."""
    try:
        if root.exists() and not root.is_dir():
            raise PrepareError(f"output folder {root} is a file; expected a directory")
        exists = root.is_dir()
    except OSError as exc:  # a parent folder this user may not enter
        raise PrepareError(f"cannot create output folder {root}: {exc}") from exc
    if exists and not os.access(root, os.W_OK | os.X_OK):
        raise PrepareError(f"output folder {root} is not writable")


def _prepare_root(root: Path) -> None:
    """Create the output folder (after :func:`_check_root` and the inputs' checks)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent folder that is a file, or that this user may not write
        raise PrepareError(f"cannot create output folder {root}: {exc}") from exc


def _discard(root: Path) -> None:
    """Remove what a previous preparation wrote (only our own folders and manifest)."""
    for stage in STAGES:
        shutil.rmtree(root / stage, ignore_errors=True)
    (root / STATISTICS_NAME).unlink(missing_ok=True)
    (root / MANIFEST_NAME).unlink(missing_ok=True)


def _versions() -> dict[str, str]:
    import h5py
    import numpy
    import torch

    return {
        "vposer_data": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "h5py": h5py.__version__,
    }


def _result(
    root: Path, manifest: Manifest, ran: list[str], seconds: dict[str, float]
) -> PrepareResult:
    samples, skipped = {}, {}
    for split in manifest.splits:
        final, stage1 = manifest.stage3(split), manifest.stage1(split)
        samples[split] = 0 if final is None else final.samples
        skipped[split] = 0 if stage1 is None else len(stage1.skipped)
    return PrepareResult(
        data_dir=root,
        split_dirs={split: split_dir(root, split) for split in manifest.splits},
        samples=samples,
        skipped=skipped,
        ran=ran,
        seconds=seconds,
    )


def prepare_vposer_datasets(
    amass_splits: Mapping[str, Sequence[str]],
    amass_dir: str | Path | None,
    vposer_datadir: str | Path,
    logger: LoggerLike = None,
    config: PrepareConfig | Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> PrepareResult:
    """Prepare VPoser train / validation / test data from AMASS, once.

    Args:
        amass_splits: split name -> dataset names (either AMASS release's folder names) or
            ``dataset/subfolder`` entries, e.g. :data:`vposer_data.AMASS_SPLITS`.
        amass_dir: the AMASS root; may be None when ``vposer_datadir`` is already prepared.
        vposer_datadir: output folder; the final tensors land in ``stage_III/<split>/``.
        logger: a ``logging.Logger`` or a callable taking a string (as in the original tools).
        config: a :class:`PrepareConfig` or a mapping of its settings; the defaults follow
            the original VPoser recipe.
        overwrite: discard output prepared with other settings instead of refusing.

    Raises:
        StaleOutputError: the folder holds data prepared with other settings (names them).
        SplitError: a dataset name matches no folder, is used twice, or a split is empty.
        AmassFormatError: in strict mode, the first unusable motion file.
        PrepareError: anything else that stops preparation, with the path or split concerned.
    """
    config = PrepareConfig() if config is None else PrepareConfig.from_mapping(config)
    root = Path(vposer_datadir)
    settings = output_identity(amass_splits, config)
    config.check_splits(settings["splits"])
    if amass_dir is not None:
        config.require_body_model_dir()
    if amass_dir is None and not (root / MANIFEST_NAME).is_file():
        raise PrepareError(
            f"nothing is prepared at {root} and amass_dir is None; "
            "pass amass_dir (the AMASS root folder) to prepare it"
        )
    # everything is checked before anything is created: a bad name leaves nothing behind
    _check_root(root)
    with Interrupts():  # from here on, Ctrl-C stops the run at the next safe point
        inputs = None if amass_dir is None else _find_inputs(root, settings, Path(amass_dir))
        body = None if overwrite else _models_of_a_complete_folder(root, settings, config, inputs)
        if body is None:  # a missing model stops here, before any stage
            body = _body_models(root, config, inputs)
        _prepare_root(root)
        log = RunLog(None, logger)
        return _prepare_locked(root, settings, inputs, body, config, overwrite, log)


def _prepare_locked(
    root: Path,
    settings: dict[str, Any],
    inputs: _Inputs | None,
    body: BodyModels | None,
    config: PrepareConfig,
    overwrite: bool,
    log: RunLog,
) -> PrepareResult:
    """Under the folder's lock: the identity checks, then the stages still to run."""
    with _locked(root):
        try:
            manifest = Manifest.load(root)
        except ManifestError:
            if not overwrite:
                raise
            manifest = Manifest(root)
        if manifest.exists and not any(manifest.data.get("stages", {}).values()):
            # an earlier run stopped before finishing any stage of any split (a mistyped
            # dataset, a strict-mode stop): nothing was made under its settings, start afresh
            manifest = Manifest(root)
        stale = manifest.stale_error(settings, f"{REBUILD_HINT}, or choose another folder.")
        if stale is not None:
            if not overwrite:
                raise stale
            _discard(root)
            manifest = Manifest(root)
        elif overwrite and manifest.exists:
            _discard(root)
            manifest = Manifest(root)
        if inputs is not None and manifest.exists:
            _check_inputs(root, manifest, inputs.amass_dir, inputs.sources, log)
        if body is not None and manifest.exists:
            _check_models(root, manifest, body)
        if manifest.complete:
            manifest.require_intact()
            return _result(root, manifest, [], {})
        if body is not None and body.from_record and inputs is not None:
            # the folder was complete when looked at unlocked, and is not now: every motion's
            # model is looked for again before a stage runs
            body = _body_models(root, config, inputs)
        log.open(root / LOG_NAME)
        try:
            return _run(root, manifest, settings, inputs, config, log, body)
        except BaseException as stop:
            log.info(stopped_line(stop, manifest.recorded()))
            raise
        finally:
            log.close()


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the folder's inter-process lock; waiting for it, look for Ctrl-C every
    ``_LOCK_POLL`` seconds (the holder may be another user's run of an hour)."""
    lock = lock_for(root)
    while True:
        try:
            lock.acquire(timeout=_LOCK_POLL)
            break
        except Timeout:
            check("lock")
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class _Inputs:
    """The AMASS files of every split, found before anything is created, and the log lines
    finding them gave (written to the log once it is open)."""

    amass_dir: Path
    sources: dict[str, list[SourceFile]]
    notes: list[str]


def _find_inputs(root: Path, settings: Mapping[str, Any], amass_dir: Path) -> _Inputs:
    """Every split's files under ``amass_dir``; a SplitError (a missing ``amass_dir``, an
    unknown dataset, a split without files) before the output folder is touched."""
    notes: list[str] = []
    try:
        sources = resolve_split_files(settings["splits"], amass_dir, log=notes.append)
    except SplitError as exc:
        if _records_inputs(root):
            raise PrepareError(
                f"{root} was prepared from AMASS, but its inputs cannot be checked: {exc}. "
                "Pass amass_dir=None to use the prepared data as it is."
            ) from exc
        raise
    return _Inputs(amass_dir, sources, notes)


def _body_models(root: Path, config: PrepareConfig, inputs: _Inputs | None) -> BodyModels | None:
    """The model file of every motion, when the joints or contacts fields are asked for: found
    from the AMASS files, or (no ``amass_dir``) those the folder records, looked for again."""
    if not config.body_model_augmentations or config.body_model_dir is None:
        return None
    if inputs is not None:
        all_joints = any(
            spec.name == "joints" and dict(spec.params)["set"] == "all"
            for spec in config.augmentations
        )
        return resolve_body_models(
            config.body_model_dir,
            config.body_model_gender,
            inputs.amass_dir,
            inputs.sources,
            all_joints=all_joints,
        )
    try:
        recorded = Manifest.load(root).data.get("body_models")
    except ManifestError:
        return None
    if not recorded:
        return None
    return recorded_body_models(config.body_model_dir, config.body_model_gender, recorded)


def _models_of_a_complete_folder(
    root: Path, settings: Mapping[str, Any], config: PrepareConfig, inputs: _Inputs | None
) -> BodyModels | None:
    """The models a complete folder records, when it was prepared with these settings and
    records its AMASS files: a rerun that has nothing to do then does not read every motion's
    zip directory to find its model (17k files in AMASS, seconds on a cold disk). None
    otherwise: the motions are looked at. Read without the folder's lock; the locked checks
    that follow hold as for any run: the AMASS files against the record (changed files make
    the folder stale, whatever models they would need), the models by SHA-256, and a folder
    found unfinished under the lock has its motions looked at again."""
    if not config.body_model_augmentations or config.body_model_dir is None or inputs is None:
        return None
    try:
        manifest = Manifest.load(root)
    except ManifestError:
        return None
    recorded = manifest.data.get("body_models")
    if not (manifest.exists and manifest.complete and recorded):
        return None
    if manifest.stale_error(settings, "") is not None:
        return None
    for split in manifest.splits:
        record = manifest.stage1(split)
        if record is None or not _inputs_recorded(record) or split not in inputs.sources:
            return None
    _log.debug("%s: complete, inputs recorded: body models as recorded", root)
    return recorded_body_models(
        config.body_model_dir, config.body_model_gender, recorded, from_record=True
    )


def _check_models(root: Path, manifest: Manifest, body: BodyModels) -> None:
    """Raise StaleOutputError when other model files (by SHA-256) would be used than those
    the folder was prepared with."""
    recorded = manifest.data.get("body_models")
    if recorded is None:
        return
    changes = model_changes(recorded, body)
    if changes:
        raise StaleOutputError(
            f"{root} was prepared with other body models:\n  "
            + "\n  ".join(changes)
            + f"\n{REBUILD_HINT}, or pass the body_model_dir it was prepared with."
        )


def _records_inputs(root: Path) -> bool:
    """Whether ``root`` holds a manifest that records the AMASS files of some split."""
    try:
        manifest = Manifest.load(root)
    except ManifestError:
        return False
    return any(_inputs_recorded(manifest.stage1(s)) for s in manifest.splits)


def _inputs_recorded(record: Stage1Record | None) -> bool:
    return record is not None and record.inputs is not None


def _check_inputs(
    root: Path,
    manifest: Manifest,
    amass_dir: Path,
    sources: Mapping[str, list[SourceFile]],
    log: RunLog,
) -> None:
    """Raise StaleOutputError when the AMASS files of a split already prepared changed."""
    recorded = {s: r for s in manifest.splits if (r := manifest.stage1(s)) is not None}
    if not any(_inputs_recorded(r) for r in recorded.values()):
        return
    changes = [
        change
        for split, record in recorded.items()
        if (change := input_changes(split, record, amass_dir, sources[split], log.info)) is not None
    ]
    if changes:
        raise StaleOutputError(
            f"{root} was prepared from other AMASS files:\n  "
            + "\n  ".join(changes)
            + f"\n{REBUILD_HINT}, "
            "or amass_dir=None to use the prepared data as it is."
        )


def _needed(manifest: Manifest, splits: list[str]) -> dict[str, set[str]]:
    """Which splits each stage must (re)build: those whose downstream needs them and whose
    own recorded output is absent or damaged. An intermediate output a stage to be run will
    read is verified in full (size and checksum): it was not flushed to disk when recorded."""
    need: dict[str, set[str]] = {stage.name: set() for stage in PIPELINE}
    downstream: set[str] = set(splits)
    for stage in reversed(PIPELINE):
        for split in sorted(downstream):
            # a final output is checked by size; an intermediate is checked only when the next
            # stage rebuilds from it (it is in `downstream`), and then with its checksum too
            if not manifest.has_record(stage.name, split) or manifest.check_files(
                stage.name, split, checksums=not stage.final
            ):
                need[stage.name].add(split)
        downstream = need[stage.name]
    return need


def _run(
    root: Path,
    manifest: Manifest,
    settings: dict[str, Any],
    inputs: _Inputs | None,
    config: PrepareConfig,
    log: RunLog,
    body: BodyModels | None = None,
) -> PrepareResult:
    amass_dir = None if inputs is None else inputs.amass_dir
    splits = list(settings["splits"])
    versions = _versions()
    for kind, stale in remove_temp_files(root):
        log.info(f"removed temp {kind} left by an interrupted run: {stale}")
    if not manifest.exists:
        manifest.start(
            settings,
            {
                "amass_dir": str(Path(amass_dir).resolve()) if amass_dir else None,
                "versions": versions,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **({} if body is None else {"body_models": body.listing()}),
            },
        )
    elif body is not None:  # the same models (by SHA-256), perhaps found elsewhere now
        manifest.update(body_models=body.listing())
    need = _needed(manifest, splits)
    log.info(f"=== vposer_data {__version__}: preparing {root} ===")
    log.info(f"versions: {versions}")
    log.info(f"config: {json.dumps(config.to_dict(), sort_keys=True)}")
    log.info(f"splits: {json.dumps(settings['splits'])}")
    if body is not None:
        for key, entry in body.listing().items():
            log.info(f"body model {key}: {entry['file']} (SHA-256 {entry['sha256']})")
    todo = [f"{stage.name}/{s}" for stage in PIPELINE for s in splits if s in need[stage.name]]
    resumed = resumed_line(manifest.data.get("started"), manifest.recorded(), todo)
    if resumed is not None:
        log.info(resumed)
    sources = _sources(root, inputs, log) if need[STAGE_I] else {}
    ran: list[str] = []
    seconds: dict[str, float] = {}
    for stage in PIPELINE:
        todo = [split for split in splits if split in need[stage.name]]
        if not todo:
            continue
        started = time.perf_counter()
        for split in todo:
            final = stage_path(root, stage.name, split)
            final.parent.mkdir(parents=True, exist_ok=True)
            temporary = atomic_dir(final) if stage.makes == "folder" else atomic_path(final)
            with temporary as out:
                job = SplitJob(
                    split=split,
                    config=config,
                    manifest=manifest,
                    log=log,
                    out=out,
                    final=final,
                    amass_dir=None if amass_dir is None else Path(amass_dir),
                    sources=sources.get(split),
                    body_models=body,
                )
                record = stage.run(job)
                if stage.final:
                    make_durable(out, shown_as=final)  # one barrier per split
                check("split.done")  # an interrupted split is never renamed nor recorded
            manifest.set_record(stage.name, split, record)
            ran.append(f"{stage.name}/{split}")
            release_work_buffers()
            release_free_memory()
        seconds[stage.name] = time.perf_counter() - started

    check("end")
    manifest.update(complete=True, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    result = _result(root, manifest, ran, seconds)
    log.info(
        "done: samples per split "
        + ", ".join(f"{s}={n}" for s, n in result.samples.items())
        + "; skipped files "
        + ", ".join(f"{s}={n}" for s, n in result.skipped.items())
        + "; seconds per stage "
        + ", ".join(f"{s}={t:.2f}" for s, t in seconds.items())
    )
    return result


def _sources(root: Path, inputs: _Inputs | None, log: RunLog) -> dict[str, list[SourceFile]]:
    """The candidate files of every split for Stage I, with counts logged."""
    if inputs is None:
        raise PrepareError(
            f"nothing (or not all) is prepared at {root} and amass_dir is None; "
            "pass amass_dir (the AMASS root folder) to prepare it"
        )
    log.info(f"AMASS: {inputs.amass_dir.resolve()}")
    for note in inputs.notes:
        log.info(note)
    sources = inputs.sources
    for split, files in sources.items():
        per_dataset = Counter(s.dataset for s in files)
        log.info(f"{split}: .npz files found per dataset: {dict(per_dataset)}")
    return sources
