"""The guarantees (docs/preparing.md, "Guarantees"), each shown on real files: once, stale is loud,
deterministic, resumable (SIGKILL in each stage), one writer, nothing lost silently, and the
run's log."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import (
    SPLITS,
    TreeCache,
    config,
    file_hashes,
    load_split,
    prepare,
    read_manifest,
    record_problems,
    recorded_pairs,
    snapshot,
    temp_files,
    write_tree,
)

from vposer_data.amass import AmassFormatError
from vposer_data.atomic import TEMP_MARK
from vposer_data.errors import StaleOutputError
from vposer_data.manifest import STAGES
from vposer_data.summary import verify
from vposer_data.synthetic import write_motion_npz, write_npz

ALL_PAIRS = [f"{stage}/{split}" for stage in STAGES for split in SPLITS]

#: Runs prepare_vposer_datasets in a fresh interpreter; with "ready"/"go" paths it signals that
#: it is imported and waits for the go file, so that two such processes start together.
PREPARE_SCRIPT = r"""
import json, os, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
from vposer_data.config import PrepareConfig
from vposer_data.prepare import prepare_vposer_datasets
if args.get("ready"):
    Path(args["ready"]).write_text(str(os.getpid()))
    while not Path(args["go"]).exists():
        time.sleep(0.001)
started = time.time()
result = prepare_vposer_datasets(
    args["splits"], args["amass"], args["out"], config=PrepareConfig(**args["config"])
)
print(json.dumps({"ran": result.ran, "samples": result.samples,
                  "started": started, "finished": time.time()}))
"""


def spawn(args: dict[str, Any], log_dir: Path, name: str) -> subprocess.Popen:
    with open(log_dir / f"{name}.out", "w") as out, open(log_dir / f"{name}.err", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-c", PREPARE_SCRIPT, json.dumps(args)],
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: DataLoader workers die with it
        )


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


# --------------------------------------------------------------------------- once


def test_second_call_does_nothing_and_touches_no_file(small_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "V02"
    started = time.perf_counter()
    first = prepare(small_tree, out)
    first_seconds = time.perf_counter() - started
    assert first.ran == ALL_PAIRS
    before = snapshot(out)
    started = time.perf_counter()
    second = prepare(small_tree, out)
    second_seconds = time.perf_counter() - started
    assert second.ran == []
    assert second.samples == first.samples and second.split_dirs == first.split_dirs
    assert snapshot(out) == before
    assert second_seconds < first_seconds
    # once prepared, the AMASS tree is not even needed
    assert prepare(None, out).ran == []
    assert snapshot(out) == before


# --------------------------------------------------------------------------- stale is loud


def _difference_lines(message: str) -> dict[str, str]:
    lines = [line.strip() for line in message.splitlines() if ": existing " in line]
    return {line.split(":", 1)[0]: line for line in lines}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"keep_rate": 0.5}, {"keep_rate": "keep_rate: existing 0.3, requested 0.5"}),
        (
            {"augmentations": [{"name": "noise", "sigma": 0.02}, "matrot"]},
            {
                "augmentations": "augmentations: existing [{'name': 'matrot'}], requested [{",
                # with a random augmentation, the batch size decides the draws
                "batch_size": "batch_size: existing None, requested ",
                # with a pose-changing one, the splits it applies to
                "augment_splits": "augment_splits: existing None, requested ['train']",
            },
        ),
        (
            {"splits": {**SPLITS, "vald": ["HumanEva", "ACCAD"]}},
            {"splits.vald": "splits.vald: existing ['HumanEva'], requested ['HumanEva', 'ACCAD']"},
        ),
        (
            {
                "keep_rate": 0.2,
                "seed": 4,
                "splits": {"train": ["CMU", "KIT"], "vald": ["HumanEva"]},
            },
            {
                "keep_rate": "keep_rate: existing 0.3, requested 0.2",
                "seed": "seed: existing 0, requested 4",
                "splits.test": "splits.test: existing ['SFU'], requested None",
            },
        ),
    ],
    ids=["keep_rate", "augmentations", "splits", "several"],
)
def test_other_settings_over_an_output_raise_naming_each_difference(
    small_tree: Path, small_reference: Path, changes: dict[str, Any], expected: dict[str, str]
) -> None:
    before = snapshot(small_reference)
    changes = dict(changes)
    splits = changes.pop("splits", None)
    with pytest.raises(StaleOutputError) as error:
        prepare(small_tree, small_reference, splits=splits, **changes)
    message = str(error.value)
    assert str(small_reference) in message and "overwrite=True" in message
    found = _difference_lines(message)
    assert set(found) == set(expected), message
    for key, text in expected.items():
        assert found[key].startswith(text), found[key]
    if "augmentations" in expected:
        assert "'noise'" in found["augmentations"] and "0.02" in found["augmentations"]
    assert snapshot(small_reference) == before  # refused without touching anything


def test_settings_that_do_not_change_the_data_are_allowed(
    small_tree: Path, small_reference: Path
) -> None:
    before = snapshot(small_reference)
    result = prepare(small_tree, small_reference, num_workers=2, strict=True, progress=None)
    assert result.ran == []
    assert snapshot(small_reference) == before


def test_overwrite_rebuilds_like_a_fresh_build(small_tree: Path, tmp_path: Path) -> None:
    out, fresh = tmp_path / "V02", tmp_path / "fresh"
    prepare(small_tree, out)
    old = file_hashes(out)
    splits = {**SPLITS, "vald": ["HumanEva", "ACCAD"]}
    result = prepare(small_tree, out, splits=splits, overwrite=True, keep_rate=0.5)
    assert result.ran == [f"{stage}/{split}" for stage in STAGES for split in splits]
    prepare(small_tree, fresh, splits=splits, keep_rate=0.5)
    assert file_hashes(out) == file_hashes(fresh) != old
    assert file_hashes(out, "stage_I") == file_hashes(fresh, "stage_I")
    leftovers = {p.relative_to(out) for p in out.rglob("*")} ^ {
        p.relative_to(fresh) for p in fresh.rglob("*")
    }
    assert leftovers == set()
    assert read_manifest(out)["settings"] == read_manifest(fresh)["settings"]
    assert verify(out) == []
    assert (out / "prepare.log").read_text().count("=== vposer_data") == 2  # appended per run


# --------------------------------------------------------------------------- deterministic


def test_worker_count_does_not_change_a_byte(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "workers2"
    prepare(small_tree, out, num_workers=2)
    hashes = file_hashes(out)
    assert len(hashes) == 3 * 10
    assert hashes == file_hashes(small_reference)
    assert file_hashes(out, "stage_I") == file_hashes(small_reference, "stage_I")


def test_random_augmentations_are_deterministic_across_worker_counts(
    small_tree: Path, tmp_path: Path
) -> None:
    augmentations = [
        {"name": "noise", "sigma": 0.05},
        "random_zrot",
        {"name": "mirror", "p": 0.5},
        "matrot",
    ]
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        prepare(small_tree, out, num_workers=workers, augmentations=augmentations, augment_passes=2)
        runs[workers] = out
    assert file_hashes(runs[0]) == file_hashes(runs[2])
    # two passes are two independent draws over the same source rows
    train = load_split(runs[0], "train")
    n = read_manifest(runs[0])["stages"]["stage_I"]["train"]["samples"]
    assert train["pose_body"].shape[0] == 2 * n
    assert torch.equal(train["seq_id"][:n], train["seq_id"][n:])
    assert torch.equal(train["frame_id"][:n], train["frame_id"][n:])
    assert not torch.equal(train["pose_body"][:n], train["pose_body"][n:])


def copy_tree_reversed(src: Path, dst: Path) -> None:
    """The same files, created in reverse sorted order (directories too), so that a file system
    that lists entries in creation order lists them differently from ``src``."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    for path in reversed(files):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def listing_order(root: Path) -> list[str]:
    """The order ``os.walk`` (as the split resolver uses) meets the files in."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        found += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    return found


def test_file_listing_order_does_not_change_a_byte(
    small_tree: Path, small_reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "reversed_copy"
    copy_tree_reversed(small_tree, copy)
    real_walk = os.walk

    def reversed_walk(top: Any, *args: Any, **kwargs: Any):
        for dirpath, dirnames, filenames in real_walk(top, *args, **kwargs):
            dirnames.reverse()  # in place: the walk descends in reverse order too
            yield dirpath, dirnames, filenames[::-1]

    normal = listing_order(copy)
    monkeypatch.setattr(os, "walk", reversed_walk)
    assert listing_order(copy) != normal  # the listing really differs now
    out = tmp_path / "V02"
    prepare(copy, out)
    monkeypatch.undo()
    assert file_hashes(out) == file_hashes(small_reference)
    files = {s: read_manifest(out)["stages"]["stage_I"][s]["files"] for s in SPLITS}
    assert files == {
        s: read_manifest(small_reference)["stages"]["stage_I"][s]["files"] for s in SPLITS
    }


def test_another_seed_gives_other_data(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "seed1"
    result = prepare(small_tree, out, seed=1)
    ours, theirs = file_hashes(out), file_hashes(small_reference)
    for split in SPLITS:
        for name in ("pose_body", "frame_id", "trans"):
            key = f"stage_III/{split}/{name}.pt"
            assert ours[key] != theirs[key], key
    # the same number of frames per file is drawn, only which ones differs
    assert result.samples == {
        s: read_manifest(small_reference)["stages"]["stage_III"][s]["samples"] for s in SPLITS
    }


# --------------------------------------------------------------------------- resumable


def test_unrecorded_outputs_are_rebuilt_and_temp_files_removed(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    """The state a crash leaves, made by hand: a stage whose files exist but whose record is
    missing, a recorded file whose size no longer matches, and temp files."""
    out = tmp_path / "V02"
    shutil.copytree(small_reference, out)
    manifest = read_manifest(out)
    del manifest["stages"]["stage_III"]["vald"]
    del manifest["stages"]["stage_III"]["test"]
    manifest["complete"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    partial = out / "stage_III" / "vald" / "pose_body.pt"
    partial.write_bytes(partial.read_bytes()[:100])  # exists, yet not recorded: not trusted
    h5 = out / "stage_II" / "test.h5"
    h5.write_bytes(h5.read_bytes()[:-10])  # recorded, but no longer its recorded size
    stray = out / "stage_III" / "train" / f".pose_body.pt{TEMP_MARK}99999"
    stray.write_bytes(b"half")
    result = prepare(small_tree, out)
    assert result.ran == ["stage_II/test", "stage_III/vald", "stage_III/test"]
    assert file_hashes(out) == file_hashes(small_reference)
    assert temp_files(out) == []
    assert verify(out) == []
    assert (
        f"removed temp file left by an interrupted run: {stray}"
        in (out / "prepare.log").read_text()
    )


KILL_SPLITS = {"train": ["CMU", "KIT"], "vald": ["BML"], "test": ["SFU", "ACCAD"]}
KILL_CONFIG = {"progress": False, "batch_size": 1024, "num_workers": 2}


def _log_has(out: Path, text: str) -> bool:
    try:
        return text in (out / "prepare.log").read_text()
    except OSError:
        return False


def _has_entries(folder: Path, temp_only: bool = False) -> bool:
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(TEMP_MARK in n for n in names) if temp_only else bool(names)


#: When to kill: stage I after train is recorded (vald is being read); stage II while the
#: first HDF5 file is half-written; stage III as soon as the first split's folder gets a file.
KILL_WHEN: dict[str, Callable[[Path], bool]] = {
    "stage_I": lambda out: _log_has(out, "stage I train:"),
    "stage_II": lambda out: _has_entries(out / "stage_II", temp_only=True),
    "stage_III": lambda out: _has_entries(out / "stage_III" / "train"),
}


def _landed_in(out: Path) -> str:
    if not (out / "manifest.json").exists():
        return "stage_I"
    manifest = read_manifest(out)
    if manifest.get("complete"):
        return "finished"
    return next(s for s in STAGES if set(manifest["stages"][s]) != set(KILL_SPLITS))


@pytest.fixture(scope="module")
def kill_tree(amass_tree: TreeCache) -> Path:
    """Big enough that each stage lasts a while on a slow machine."""
    return amass_tree(120_000, seed=3)


@pytest.fixture(scope="module")
def kill_reference(kill_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("kill_reference") / "V02"
    prepare(kill_tree, out, splits=KILL_SPLITS, batch_size=1024)
    return file_hashes(out)


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_in_each_stage_then_rerun_equals_an_uninterrupted_run(
    stage: str, kill_tree: Path, kill_reference: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "V02"
    args = {"splits": KILL_SPLITS, "amass": str(kill_tree), "out": str(out), "config": KILL_CONFIG}
    proc = spawn(args, tmp_path, "killed")
    killed = False
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if KILL_WHEN[stage](out):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.001)
    finally:
        kill_group(proc)
    if not killed:
        assert proc.returncode == 0, (tmp_path / "killed.err").read_text()
    landed = _landed_in(out)
    if landed != stage:
        warnings.warn(
            f"kill aimed at {stage} landed in {landed}; checking the result anyway", stacklevel=1
        )
    # nothing half-written counts as done: every record matches a whole file on disk
    assert record_problems(out) == []
    before = recorded_pairs(read_manifest(out)) if (out / "manifest.json").exists() else set()
    left_temp = temp_files(out)

    result = prepare(kill_tree, out, splits=KILL_SPLITS, batch_size=1024, num_workers=0)
    assert not set(result.ran) & before, "recorded work was redone"
    assert set(result.ran) | before >= {f"stage_III/{s}" for s in KILL_SPLITS}
    assert file_hashes(out) == kill_reference
    assert temp_files(out) == []
    assert verify(out) == []
    log = (out / "prepare.log").read_text()
    for path in left_temp:  # logged itself, or as part of the temp folder that held it
        assert any(f"left by an interrupted run: {p}" in log for p in (path, *path.parents)), path


# --------------------------------------------------------------------------- one writer


def test_two_processes_preparing_one_folder_at_once(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shared"
    go = tmp_path / "go"
    procs = []
    for name in ("a", "b"):
        args = {
            "splits": SPLITS,
            "amass": str(small_tree),
            "out": str(out),
            "config": {"progress": False, "batch_size": 128, "num_workers": 2},
            "ready": str(tmp_path / f"ready_{name}"),
            "go": str(go),
        }
        procs.append((name, spawn(args, tmp_path, name)))
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready_{n}").exists() for n, _ in procs):
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for _, p in procs), "a process died while starting"
            time.sleep(0.01)
        go.write_text("go")
        for _, proc in procs:
            proc.wait(timeout=180)
    finally:
        for _, proc in procs:
            kill_group(proc)
    reports = {}
    for name, proc in procs:
        assert proc.returncode == 0, (tmp_path / f"{name}.err").read_text()
        reports[name] = json.loads((tmp_path / f"{name}.out").read_text().strip().splitlines()[-1])
    worker, waiter = sorted(reports.values(), key=lambda r: -len(r["ran"]))
    assert worker["ran"] == ALL_PAIRS and waiter["ran"] == []  # the second found it done
    assert waiter["samples"] == worker["samples"]
    assert waiter["started"] < worker["finished"], "the two runs did not overlap"
    assert verify(out) == []
    assert file_hashes(out) == file_hashes(small_reference)
    log = (out / "prepare.log").read_text()
    assert log.count("=== vposer_data") == 1
    for split in SPLITS:
        for stage in ("stage I", "stage II", "stage III"):
            assert log.count(f"{stage} {split}:") == 1, (stage, split)


# --------------------------------------------------------------------------- nothing lost silently

#: file name -> a word its skip reason must contain
BROKEN = {
    "CMU": {"zz_nan_poses.npz": "non-finite", "zz_truncated_poses.npz": "archive"},
    "KIT": {"zz_wide_poses.npz": "width"},
    "HumanEva": {"zz_text_poses.npz": ".npz"},
    "SFU": {"zz_notrans_poses.npz": "trans"},
}


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("broken") / "amass", seed=17)
    source = sorted((root / "CMU").rglob("*_poses.npz"))[0]
    arrays = dict(np.load(source, allow_pickle=False))
    rng = np.random.default_rng(0)
    for dataset, names in BROKEN.items():
        folder = sorted(p for p in (root / dataset).iterdir() if p.is_dir())[0]
        for name in names:
            path = folder / name
            if name == "zz_nan_poses.npz":
                poses = arrays["poses"].copy()
                poses[7, 20] = np.nan
                write_npz(path, {**arrays, "poses": poses})
            elif name == "zz_truncated_poses.npz":
                data = source.read_bytes()
                path.write_bytes(data[: len(data) // 2])
            elif name == "zz_wide_poses.npz":
                write_npz(path, {**arrays, "poses": np.zeros((300, 100))})
            elif name == "zz_text_poses.npz":
                path.write_text("this is not an archive\n")
            elif name == "zz_notrans_poses.npz":
                write_npz(path, {k: v for k, v in arrays.items() if k != "trans"})
    # valid but too short to yield a sample: listed as such, not skipped
    short = sorted(p for p in (root / "KIT").iterdir() if p.is_dir())[0] / "zz_short_poses.npz"
    write_motion_npz(short, "smplh", 3, 120.0, "male", rng.normal(size=16), rng)
    return root


def _broken_paths(root: Path) -> dict[str, str]:
    """relative path -> expected word in its reason."""
    found = {}
    for dataset, names in BROKEN.items():
        folder = sorted(p for p in (root / dataset).iterdir() if p.is_dir())[0]
        for name, word in names.items():
            found[(folder / name).relative_to(root).as_posix()] = word
    return found


@pytest.fixture(scope="module")
def lenient(broken_tree: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("lenient") / "V02"
    messages: list[str] = []
    result = prepare(broken_tree, out, logger=messages.append)
    return out, result, messages


def test_unusable_files_are_skipped_with_their_reason(broken_tree: Path, lenient) -> None:
    out, result, messages = lenient
    expected = _broken_paths(broken_tree)
    manifest = read_manifest(out)
    skipped = {
        item["path"]: item["reason"]
        for split in SPLITS
        for item in manifest["stages"]["stage_I"][split]["skipped"]
    }
    assert set(skipped) == set(expected)
    log = (out / "prepare.log").read_text()
    for path, word in expected.items():
        assert word in skipped[path], (path, skipped[path])
        assert f"skipped {path}: {skipped[path]}" in log
        assert f"WARNING: skipped {path}: {skipped[path]}" in messages
    assert result.skipped == {
        split: len(manifest["stages"]["stage_I"][split]["skipped"]) for split in SPLITS
    }
    assert sum(result.skipped.values()) == len(expected)


def test_a_motion_too_short_is_listed_as_such_not_skipped(broken_tree: Path, lenient) -> None:
    out, _, _ = lenient
    record = read_manifest(out)["stages"]["stage_I"]["train"]  # KIT is in 'train'
    assert [(item["path"], item["frames"]) for item in record["too_short"]] == [
        (
            next((broken_tree / "KIT").rglob("zz_short_poses.npz"))
            .relative_to(broken_tree)
            .as_posix(),
            3,
        )
    ]
    assert record["too_short"][0]["reason"].startswith("too short: 3 frames")


def test_the_usable_rest_is_prepared(broken_tree: Path, lenient) -> None:
    out, result, _ = lenient
    manifest = read_manifest(out)
    for split, datasets in SPLITS.items():
        motions = sorted(
            p.relative_to(broken_tree).as_posix()
            for d in datasets
            for p in (broken_tree / d).rglob("*_poses.npz")
            if not p.name.startswith("zz_")
        )
        assert [f["path"] for f in manifest["stages"]["stage_I"][split]["files"]] == motions
        assert result.samples[split] > 0
    assert verify(out) == []


def test_non_motion_files_are_not_reported_as_skipped(broken_tree: Path, lenient) -> None:
    out, _, messages = lenient
    manifest = read_manifest(out)
    shapes = sorted(p.relative_to(broken_tree).as_posix() for p in broken_tree.rglob("shape.npz"))
    for split in SPLITS:
        record = manifest["stages"]["stage_I"][split]
        assert all(not item["path"].endswith("shape.npz") for item in record["skipped"])
        assert set(record["not_motions"]) <= set(shapes)
    assert sum(len(manifest["stages"]["stage_I"][s]["not_motions"]) for s in SPLITS) > 0
    log = (out / "prepare.log").read_text()
    assert "shape.npz" not in log and not any("shape.npz" in m for m in messages)


def test_stagei_files_of_smplx_are_not_reported_as_skipped(
    amass_tree: TreeCache, tmp_path: Path
) -> None:
    root = amass_tree(release="smplx", seed=4)
    stagei = [p.relative_to(root).as_posix() for p in (root / "CMU").rglob("*_stagei.npz")]
    assert stagei
    out = tmp_path / "V02"
    result = prepare(root, out, splits={"train": ["CMU"], "vald": ["HumanEva"]})
    record = read_manifest(out)["stages"]["stage_I"]["train"]
    assert result.skipped == {"train": 0, "vald": 0}
    assert set(stagei) <= set(record["not_motions"])
    assert "_stagei.npz" not in (out / "prepare.log").read_text()


def test_strict_mode_stops_at_the_first_unusable_file(broken_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "V02"
    with pytest.raises(AmassFormatError) as error:
        prepare(broken_tree, out, strict=True)
    first = sorted(p for p in _broken_paths(broken_tree) if p.startswith("CMU/"))[0]
    assert error.value.path == str(broken_tree / first)
    assert str(broken_tree / first) in str(error.value)
    assert "non-finite" in str(error.value)
    assert not read_manifest(out).get("complete")
    assert not (out / "stage_III").exists()


# --------------------------------------------------------------------------- the run's log


def test_a_logging_logger_receives_the_messages(broken_tree: Path, tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test_guarantees.prepare")
    logger.setLevel(logging.INFO)
    handler = Collect()
    logger.addHandler(handler)
    try:
        result = prepare(broken_tree, tmp_path / "V02", logger=logger)
    finally:
        logger.removeHandler(handler)
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    warns = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any(m.startswith("config: ") for m in infos)
    assert any(m.startswith(f"stage I train: {result.samples['train']} samples") for m in infos)
    assert len(warns) == len(_broken_paths(broken_tree))
    assert all(m.startswith("skipped ") for m in warns)


def test_a_callable_logger_receives_the_messages(lenient) -> None:
    out, _, messages = lenient
    assert all(isinstance(m, str) for m in messages)
    assert any(m.startswith("config: ") for m in messages)
    assert any(m.startswith("done: samples per split") for m in messages)
    # the log file holds the same lines
    log = (out / "prepare.log").read_text()
    assert all(line in log for m in messages for line in m.replace("WARNING: ", "").splitlines())


def test_prepare_log_tells_how_the_data_was_made(lenient) -> None:
    out, result, _ = lenient
    log = (out / "prepare.log").read_text()
    config_line = next(line for line in log.splitlines() if " config: " in line)
    settings = json.loads(config_line.split(" config: ", 1)[1])
    assert settings == config().to_dict()
    versions = next(line for line in log.splitlines() if " versions: " in line)
    for package in ("vposer_data", "python", "numpy", "torch", "h5py"):
        assert f"'{package}'" in versions
    assert "train: .npz files found per dataset: {'CMU': " in log and "'KIT': " in log
    assert "vald: .npz files found per dataset: {'HumanEva': " in log
    assert "test: .npz files found per dataset: {'SFU': " in log
    samples = ", ".join(f"{s}={n}" for s, n in result.samples.items())
    assert f"done: samples per split {samples}" in log
    assert "seconds per stage stage_I=" in log and "stage_II=" in log and "stage_III=" in log
