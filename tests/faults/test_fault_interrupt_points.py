"""Ctrl-C at every safe point, deterministically: a real SIGINT sent to this process when a run
reaches the first or the last visit of each safe point (``interrupts.ctrl_c_at``). The run
stops from that point (:class:`Interrupted`, raised by the code that looks there), records
nothing incomplete, and the next run resumes to byte-identical output.

And the handler itself: it only records Ctrl-C, never raises; two presses are one request;
DataLoader workers are forked with SIGINT blocked; a caller's own handler is told after the
stop; a forked process never stops at a safe point of its parent's.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fault_helpers import partial_final_splits
from filelock import FileLock
from helpers import (
    SPLITS,
    assert_nothing_partial,
    file_hashes,
    prepare,
    read_manifest,
    recorded_pairs,
)
from torch.utils.data import DataLoader, Dataset

from vposer_data import interrupts
from vposer_data.datamodule import VPoserDataModule
from vposer_data.interrupts import SITES, Interrupted, Interrupts, check, start_workers
from vposer_data.manifest import LOCK_NAME, STAGES
from vposer_data.stages.file_readers import _AHEAD_PER_THREAD, FILES_PER_ITEM

ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in SPLITS}

#: Settings a run is interrupted under: reader and augmenting worker processes (the default
#: uncompressed output), and readers in threads with a gzip HDF5 file (whose chunks Stage III
#: inflates itself). Between them they reach every safe point but the lock's.
SETTINGS: dict[str, dict[str, Any]] = {
    "workers": {"num_workers": 2},
    "threads_gzip": {"num_workers": 0, "hdf5_compression": "gzip"},
}
#: The settings each safe point is reached under ("lock": test_ctrl_c_while_waiting_for_the_lock).
WHERE = {site: "threads_gzip" if site == "stage3.block" else "workers" for site in SITES}
del WHERE["lock"]

#: The functions that raise the stop, by safe point: the one that looks there (one on the
#: statistics thread, by that thread or by the column's save beside it).
RAISED_IN = {
    "walk": {"find_npz_files"},
    "inputs": {"_stats", "_content_stamp", "resolve_body_models"},
    "stage1.read": {"_in_workers", "_in_threads"},
    "stage1.field": {"finish"},
    "stage2.batch": {"run_stage2"},
    "stage3.column": {"run_stage3"},
    "stage3.block": {"write_column"},
    "tensor.frame": {"torch_frame"},
    "region.crc": {"file_region_crc32"},
    "region.copy": {"save_file_region"},
    "stats.block": {
        "column_stats",
        "file_region_crc32",
        "torch_frame",
        "save_file_region",
        "run_stage3",
    },
    "crc.window": {"file_crc32"},
    "durable.file": {"make_durable"},
    "split.done": {"_run"},
    "end": {"_run"},
    "lock": {"_locked"},
}


def raised_in(error: BaseException) -> str:
    """The function that called ``check`` to raise ``error``."""
    frames = traceback.extract_tb(error.__traceback__)
    assert frames[-1].name == "check" and frames[-1].filename == interrupts.__file__, frames
    return frames[-2].name


# --- the handler ------------------------------------------------------------------------------


def test_the_handler_only_records_ctrl_c_and_a_safe_point_stops() -> None:
    with Interrupts():
        try:
            signal.raise_signal(signal.SIGINT)  # the handler has run when this returns
            signal.raise_signal(signal.SIGINT)  # a second press: the same request
        except KeyboardInterrupt:
            pytest.fail("the SIGINT handler raised: it may only record the request")
        with pytest.raises(Interrupted) as stopped:
            check("stage2.batch")
        assert stopped.value.site == "stage2.batch"
        assert isinstance(stopped.value, KeyboardInterrupt)  # the CLI's exit status 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    check("stage2.batch")  # no longer active: nothing pending, nothing raised


def test_ctrl_c_after_the_last_safe_point_is_not_lost() -> None:
    with pytest.raises(Interrupted) as stopped, Interrupts():
        signal.raise_signal(signal.SIGINT)
    assert stopped.value.site == "end"


def test_an_error_after_ctrl_c_ends_as_the_interruption() -> None:
    """An error raised after Ctrl-C, before a safe point saw it (a library that took the
    signal for a failure), ends the run as the stop asked for; without Ctrl-C it is itself."""
    with pytest.raises(Interrupted) as stopped, Interrupts():
        signal.raise_signal(signal.SIGINT)
        raise RuntimeError("a write failed")
    assert isinstance(stopped.value.__cause__, RuntimeError)
    with pytest.raises(RuntimeError), Interrupts():
        raise RuntimeError("a write failed")


def test_a_system_call_ctrl_c_interrupts_is_resumed() -> None:
    """Library code (HDF5, torch) blocked in a system call when Ctrl-C arrives does not see it
    fail with EINTR: the handler is installed with SA_RESTART. Here a C ``read`` of a pipe
    (through ctypes, not Python's own retrying wrapper) that gets SIGINT before its data."""
    libc = ctypes.CDLL(None, use_errno=True)
    reading, writing = os.pipe()
    main = threading.get_ident()

    def press_then_write() -> None:
        time.sleep(0.3)  # the main thread is in read() by then
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(0.1)
        os.write(writing, b"x")

    helper = threading.Thread(target=press_then_write)
    try:
        with Interrupts():
            helper.start()
            buffer = ctypes.create_string_buffer(1)
            got = libc.read(reading, buffer, 1)
            error = ctypes.get_errno()
            helper.join()
            with pytest.raises(Interrupted):
                check("walk")  # the press was recorded all the same
    finally:
        os.close(reading)
        os.close(writing)
    assert (got, buffer.raw) == (1, b"x"), os.strerror(error)


def test_no_safe_point_stops_outside_a_run_or_in_a_forked_child() -> None:
    check("walk")  # no Interrupts: a safe point is only a look
    with Interrupts():
        signal.raise_signal(signal.SIGINT)
        pid = os.fork()
        if pid == 0:  # the child inherits the request, but it is its parent's
            try:
                check("walk")
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with pytest.raises(Interrupted):
            check("walk")


def test_a_callers_handler_is_told_after_the_stop() -> None:
    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with pytest.raises(Interrupted), Interrupts():
            signal.raise_signal(signal.SIGINT)
            assert calls == []  # not while the run goes on
            check("stage3.column")
        assert calls == [signal.SIGINT]
        with Interrupts():
            pass
        assert calls == [signal.SIGINT]  # no Ctrl-C, no call
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_caller_that_ignores_ctrl_c_keeps_ignoring_it() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Interrupts():
            signal.raise_signal(signal.SIGINT)
            check("stage3.column")
    finally:
        signal.signal(signal.SIGINT, previous)


class _Masks(Dataset[torch.Tensor]):
    """Item: whether SIGINT is blocked in the process that makes it."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        return torch.tensor(signal.SIGINT in blocked)


class _PressWhileForking:
    """An iterable whose ``iter`` presses Ctrl-C, as one landing while workers fork."""

    def __iter__(self) -> Iterator[int]:
        signal.raise_signal(signal.SIGINT)
        return iter([1])


def test_workers_are_forked_with_ctrl_c_blocked() -> None:
    from vposer_data.stages.worker_start import worker_context

    loader = DataLoader(
        _Masks(), batch_size=None, num_workers=2, multiprocessing_context=worker_context()
    )
    assert [bool(item) for item in start_workers(loader)] == [True, True]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # here: not
    with Interrupts():
        batches = start_workers(_PressWhileForking())  # held back, then recorded
        assert list(batches) == [1]
        with pytest.raises(Interrupted):
            check("stage2.batch")


# --- Ctrl-C at each safe point of a run ------------------------------------------------------


@pytest.fixture(scope="module")
def references(
    small_tree: Path, small_reference: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, str]]:
    """Stage III hashes of an uninterrupted run under each of SETTINGS (the worker count
    changes nothing: the small reference serves "workers")."""
    gzip_out = tmp_path_factory.mktemp("interrupt_points") / "gzip"
    prepare(small_tree, gzip_out, **SETTINGS["threads_gzip"])
    return {"workers": file_hashes(small_reference), "threads_gzip": file_hashes(gzip_out)}


@pytest.fixture(scope="module")
def visits(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Counter[str]]:
    """How often an uninterrupted run visits each safe point, under each of SETTINGS."""
    counted = {}
    for name, settings in SETTINGS.items():
        with interrupts.checks_reached() as counts:
            prepare(small_tree, tmp_path_factory.mktemp("interrupt_visits") / name, **settings)
        counted[name] = Counter(counts)
    return counted


def test_every_safe_point_is_reached(visits: dict[str, Counter[str]]) -> None:
    reached = set(visits["workers"]) | set(visits["threads_gzip"])
    assert reached == set(SITES) - {"lock"}
    assert set(RAISED_IN) == set(SITES)


@pytest.mark.parametrize("which", ["first", "last"])
@pytest.mark.parametrize("site", sorted(WHERE))
def test_ctrl_c_at_a_safe_point_stops_there_then_resumes(
    small_tree: Path,
    references: dict[str, dict[str, str]],
    visits: dict[str, Counter[str]],
    tmp_path: Path,
    site: str,
    which: str,
) -> None:
    settings = WHERE[site]
    visit = 1 if which == "first" else visits[settings][site]
    out = tmp_path / "out"
    with interrupts.ctrl_c_at(site, visit) as counts, pytest.raises(Interrupted) as stopped:
        prepare(small_tree, out, **SETTINGS[settings])
    assert counts[site] >= visit
    if site != "stats.block":  # which the statistics thread may visit again before the
        assert counts[site] == visit  # main thread stops; else the run stopped there
    assert stopped.value.site == site
    assert raised_in(stopped.value) in RAISED_IN[site]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored

    manifest = read_manifest(out)
    recorded = recorded_pairs(manifest)
    assert not manifest.get("complete")
    assert_nothing_partial(out)  # no temp file; every recorded file whole
    assert partial_final_splits(out, references[settings]) == []

    result = prepare(small_tree, out, **SETTINGS[settings])
    assert set(result.ran) == ALL_PAIRS - recorded  # nothing recorded is redone
    assert file_hashes(out) == references[settings]
    assert_nothing_partial(out)


@pytest.mark.timeout(120)  # a wait that Ctrl-C cannot end would last for ever
def test_ctrl_c_while_waiting_for_the_lock(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    """Another run holds the folder's lock: Ctrl-C ends the wait; nothing is written."""
    out = tmp_path / "out"
    out.mkdir()
    holder = FileLock(str(out / LOCK_NAME))
    with holder:
        with interrupts.ctrl_c_at("lock", 3) as counts, pytest.raises(Interrupted) as stopped:
            prepare(small_tree, out)
        assert counts["lock"] == 3 and stopped.value.site == "lock"
        assert raised_in(stopped.value) == "_locked"
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    prepare(small_tree, out)  # the lock is free: it prepares
    assert file_hashes(out) == file_hashes(small_reference)


def test_ctrl_c_in_the_data_module_s_prepare_data(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    """``prepare_data`` (what Lightning calls) stops the same way and resumes."""
    module = VPoserDataModule(
        tmp_path / "out", amass_dir=small_tree, splits=SPLITS, prepare={"progress": False}
    )
    with interrupts.ctrl_c_at("stage2.batch", 2), pytest.raises(Interrupted):
        module.prepare_data()
    assert_nothing_partial(tmp_path / "out")
    module.prepare_data()
    assert file_hashes(tmp_path / "out") == file_hashes(small_reference)


def test_a_stop_in_stage_one_does_not_wait_for_the_reads_not_started(
    small_tree: Path, tmp_path: Path
) -> None:
    """Reading in threads, the files not yet read are given up: a FIFO further into the split
    than the readers may run ahead (standing for a file on a hung network mount) is never
    opened, where waiting for every queued read would block on it."""
    tree = tmp_path / "amass"
    shutil.copytree(small_tree, tree)
    folders = sorted(p for p in (tree / "CMU").iterdir() if p.is_dir())
    motion = next(folders[0].glob("*_poses.npz"))
    reach = FILES_PER_ITEM * (1 + _AHEAD_PER_THREAD)  # the item read, and those read ahead
    for copy in range(reach):  # motions before the FIFO, in a folder sorted first
        (tree / "CMU" / "000").mkdir(exist_ok=True)
        shutil.copy(motion, tree / "CMU" / "000" / f"{copy:03d}_poses.npz")
    fifo = folders[-1] / "zz_hung_poses.npz"
    os.mkfifo(fifo)
    # further than the one reader thread (num_workers=0) reads ahead
    assert sorted((tree / "CMU").rglob("*.npz")).index(fifo) >= reach
    released: list[bool] = []
    done = threading.Event()

    def release() -> bool:
        """Free a reader stuck opening the FIFO; whether there was one."""
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError:  # ENXIO: nobody has it open for reading
            return False

    def safety() -> None:  # a run that does read the FIFO fails this test instead of hanging
        if not done.wait(30):
            while not done.wait(0.1):
                released.append(release())

    releaser = threading.Thread(target=safety, daemon=True)
    releaser.start()
    try:
        with interrupts.ctrl_c_at("stage1.read", 1), pytest.raises(Interrupted):
            prepare(tree, tmp_path / "out", num_workers=0)
    finally:
        done.set()
        releaser.join()
    assert True not in released  # nobody opened the FIFO
    assert not release()
