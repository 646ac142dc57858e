"""``prepare_vposer_datasets``: run the three stages over a split mapping, once.

Under an inter-process lock: check the folder's identity (settings differing from the
manifest's is an error unless ``overwrite``), work out which (stage, split) pairs are missing,
run only those, and record each in the manifest as it completes. A killed run resumes from
the last recorded pair; a second caller waits on the lock and then finds the work done.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vposer_data import __version__
from vposer_data.atomic import release_free_memory, remove_temp_files
from vposer_data.config import PrepareConfig, settings_differences
from vposer_data.errors import PrepareError, StaleOutputError
from vposer_data.inputs import fingerprint, input_changes
from vposer_data.manifest import (
    MANIFEST_NAME,
    STAGES,
    Manifest,
    ManifestError,
    lock_for,
    stage_path,
)
from vposer_data.runlog import LoggerLike, RunLog
from vposer_data.splits import SplitError, normalize_splits, resolve_split_files
from vposer_data.stages.stage1 import run_stage1
from vposer_data.stages.stage2 import run_stage2
from vposer_data.stages.stage3 import run_stage3

__all__ = ["PrepareResult", "output_identity", "prepare_vposer_datasets", "split_dir"]

LOG_NAME = "prepare.log"
STATS_SPLIT = "train"


@dataclass(frozen=True)
class PrepareResult:
    """What a call found or made."""

    data_dir: Path
    split_dirs: dict[str, Path]
    samples: dict[str, int]
    skipped: dict[str, int]
    ran: list[str] = field(default_factory=list)  # "stage_I/train", ...; empty: nothing to do
    seconds: dict[str, float] = field(default_factory=dict)


def split_dir(data_dir: str | Path, split: str) -> Path:
    """Where the final tensors of ``split`` live."""
    return stage_path(data_dir, "stage_III", split)


def output_identity(splits: Mapping[str, Sequence[str]], config: PrepareConfig) -> dict[str, Any]:
    """What identifies a prepared folder: the split mapping and the settings that change the
    data, in the form the manifest stores (so the two compare equal)."""
    if not isinstance(splits, Mapping):
        raise PrepareError(
            f"amass_splits is a {type(splits).__name__}; expected a mapping such as "
            "{'train': ['CMU', ...], 'vald': [...], 'test': [...]}"
        )
    if not splits:  # else nothing would run and an empty folder would count as prepared
        raise SplitError("the split mapping is empty; expected e.g. {'train': [...], ...}")
    settings = {"splits": normalize_splits(splits), "config": config.output_settings()}
    return json.loads(json.dumps(settings))


def _prepare_root(root: Path) -> None:
    try:
        if root.exists() and not root.is_dir():
            raise PrepareError(f"output folder {root} is a file; expected a directory")
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # also a parent folder this user may not enter
        raise PrepareError(f"cannot create output folder {root}: {exc}") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise PrepareError(f"output folder {root} is not writable")


def _discard(root: Path) -> None:
    """Remove what a previous preparation wrote (only our own folders and manifest)."""
    for stage in STAGES:
        shutil.rmtree(root / stage, ignore_errors=True)
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
        samples[split] = int((manifest.record("stage_III", split) or {}).get("samples", 0))
        skipped[split] = len((manifest.record("stage_I", split) or {}).get("skipped", []))
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
    config: PrepareConfig | None = None,
    overwrite: bool = False,
) -> PrepareResult:
    """Prepare VPoser train / validation / test data from AMASS, once.

    Args:
        amass_splits: split name -> dataset names (either AMASS release's folder names) or
            ``dataset/subfolder`` entries, e.g. :data:`vposer_data.AMASS_SPLITS`.
        amass_dir: the AMASS root; may be None when ``vposer_datadir`` is already prepared.
        vposer_datadir: output folder; the final tensors land in ``stage_III/<split>/``.
        logger: a ``logging.Logger`` or a callable taking a string (as in the original tools).
        config: a :class:`PrepareConfig`; the defaults follow the original VPoser recipe.
        overwrite: discard output prepared with other settings instead of refusing.

    Raises:
        StaleOutputError: the folder holds data prepared with other settings (names them).
        SplitError: a dataset name matches no folder, is used twice, or a split is empty.
        AmassFormatError: in strict mode, the first unusable motion file.
        PrepareError: anything else that stops preparation, with the path or split concerned.
    """
    config = config or PrepareConfig()
    root = Path(vposer_datadir)
    settings = output_identity(amass_splits, config)
    if amass_dir is None and not (root / MANIFEST_NAME).is_file():
        raise PrepareError(
            f"nothing is prepared at {root} and amass_dir is None; "
            "pass amass_dir (the AMASS root folder) to prepare it"
        )
    _prepare_root(root)
    log = RunLog(None, logger)
    with lock_for(root):
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
        if manifest.exists and manifest.settings != settings:
            if not overwrite:
                differences = settings_differences(manifest.settings, settings)
                raise StaleOutputError(
                    f"{root} holds data prepared with other settings:\n  "
                    + "\n  ".join(differences)
                    + "\nPass overwrite=True (vposer-data prepare --overwrite) to rebuild it, "
                    "or choose another folder."
                )
            _discard(root)
            manifest = Manifest(root)
        elif overwrite and manifest.exists:
            _discard(root)
            manifest = Manifest(root)
        if amass_dir is not None and manifest.exists:
            _check_inputs(root, manifest, settings, Path(amass_dir))
        if manifest.complete:
            manifest.require_intact(
                "Pass overwrite=True (vposer-data prepare --overwrite) to rebuild it."
            )
            return _result(root, manifest, [], {})
        log.open(root / LOG_NAME)
        try:
            with _Interrupts() as interrupts:
                try:
                    return _run(root, manifest, settings, amass_dir, config, log, interrupts)
                except Exception:
                    interrupts.check()  # an error Ctrl-C caused (torch.save makes it a
                    raise  # RuntimeError) is an interruption, not a failure
        finally:
            log.close()


class _Interrupts:
    """Ctrl-C during a run raises KeyboardInterrupt as usual and is also remembered: the
    interpreter swallows a KeyboardInterrupt raised inside a finalizer, a weakref callback or
    an at-fork hook, and the run would go on to record the interrupted split as done. ``check``
    before each record stops it there instead (and the swallowed one is not printed as an
    "Exception ignored" traceback)."""

    def __init__(self) -> None:
        self.received = False
        self._previous: Any = None
        self._previous_hook: Any = None

    def __enter__(self) -> _Interrupts:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._previous_hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        raise KeyboardInterrupt

    def _unraisable(self, unraisable: Any) -> None:
        if not (self.received and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            self._previous_hook(unraisable)

    def check(self) -> None:
        if self.received:
            raise KeyboardInterrupt

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            sys.unraisablehook = self._previous_hook


def _check_inputs(
    root: Path, manifest: Manifest, settings: Mapping[str, Any], amass_dir: Path
) -> None:
    """Raise StaleOutputError when the AMASS files of a split already prepared changed."""
    recorded = {s: r for s in manifest.splits if (r := manifest.record("stage_I", s)) is not None}
    if not any("inputs" in r for r in recorded.values()):
        return
    try:
        sources = resolve_split_files(settings["splits"], amass_dir, log=lambda _: None)
    except SplitError as exc:
        raise PrepareError(
            f"{root} was prepared from AMASS, but its inputs cannot be checked: {exc}. "
            "Pass amass_dir=None to use the prepared data as it is."
        ) from exc
    changes = [
        change
        for split, record in recorded.items()
        if (change := input_changes(split, record, amass_dir, sources[split])) is not None
    ]
    if changes:
        raise StaleOutputError(
            f"{root} was prepared from other AMASS files:\n  "
            + "\n  ".join(changes)
            + "\nPass overwrite=True (vposer-data prepare --overwrite) to rebuild it, "
            "or amass_dir=None to use the prepared data as it is."
        )


def _needed(manifest: Manifest, splits: list[str]) -> dict[str, set[str]]:
    """Which splits each stage must (re)build: those whose downstream needs them and whose
    own recorded output is absent or damaged."""
    need: dict[str, set[str]] = {stage: set() for stage in STAGES}
    downstream: set[str] = set(splits)
    for stage in reversed(STAGES):
        for split in sorted(downstream):
            if manifest.record(stage, split) is None or manifest.check_files(stage, split):
                need[stage].add(split)
        downstream = need[stage]
    return need


def _run(
    root: Path,
    manifest: Manifest,
    settings: dict[str, Any],
    amass_dir: str | Path | None,
    config: PrepareConfig,
    log: RunLog,
    interrupts: _Interrupts,
) -> PrepareResult:
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
            },
        )
    need = _needed(manifest, splits)
    log.info(f"=== vposer_data {__version__}: preparing {root} ===")
    log.info(f"versions: {versions}")
    log.info(f"config: {json.dumps(config.to_dict(), sort_keys=True)}")
    log.info(f"splits: {json.dumps(settings['splits'])}")
    ran: list[str] = []
    seconds: dict[str, float] = {}

    def finish(stage: str, split: str, record: dict[str, Any]) -> None:
        interrupts.check()  # an interrupted split is never recorded
        manifest.set_record(stage, split, record)
        ran.append(f"{stage}/{split}")
        release_free_memory()

    if need["stage_I"]:
        if amass_dir is None:
            raise PrepareError(
                f"nothing (or not all) is prepared at {root} and amass_dir is None; "
                "pass amass_dir (the AMASS root folder) to prepare it"
            )
        log.info(f"AMASS: {Path(amass_dir).resolve()}")
        started = time.perf_counter()
        sources = resolve_split_files(settings["splits"], amass_dir, log.info)
        for split in splits:
            per_dataset = Counter(s.dataset for s in sources[split])
            log.info(f"{split}: .npz files found per dataset: {dict(per_dataset)}")
        for split in splits:
            if split not in need["stage_I"]:
                continue
            record = run_stage1(
                split,
                sources[split],
                Path(amass_dir),
                stage_path(root, "stage_I", split),
                config,
                log.info,
                log.warning,
            )
            record["inputs"] = fingerprint(Path(amass_dir), sources[split])
            finish("stage_I", split, record)
            log.info(
                f"stage I {split}: {record['samples']} samples from {len(record['files'])} "
                f"motions ({len(record['skipped'])} skipped, "
                f"{len(record['not_motions'])} non-motion files)"
            )
        seconds["stage_I"] = time.perf_counter() - started

    if need["stage_II"]:
        started = time.perf_counter()
        for split in splits:
            if split not in need["stage_II"]:
                continue
            record = run_stage2(
                split,
                stage_path(root, "stage_I", split),
                manifest.record("stage_I", split) or {},
                stage_path(root, "stage_II", split),
                config,
                log.info,
            )
            finish("stage_II", split, record)
        seconds["stage_II"] = time.perf_counter() - started

    if need["stage_III"]:
        started = time.perf_counter()
        for split in splits:
            if split not in need["stage_III"]:
                continue
            record = run_stage3(
                split,
                stage_path(root, "stage_II", split),
                stage_path(root, "stage_III", split),
                config,
                log.info,
                with_stats=split == STATS_SPLIT,
            )
            finish("stage_III", split, record)
        seconds["stage_III"] = time.perf_counter() - started

    interrupts.check()
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
