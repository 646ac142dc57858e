"""The helper process that prepares the smaller splits beside the largest one: the output is
the same as one process preparing them in turn, the helper's log lines and records reach the
caller, its errors are raised here as they were raised there, and it never outlives the run
(nor blocks, however much it has to say)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from helpers import SPLITS, file_hashes, prepare, read_manifest, recorded_pairs, sha256, temp_files

from vposer_data.amass import AmassFormatError
from vposer_data.errors import PrepareError
from vposer_data.manifest import STAGES
from vposer_data.split_helper import Outbox, SplitHelper
from vposer_data.statistics import STATISTICS_NAME

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux")

HELPER_LINE = "are prepared beside the others, in a helper process"


def _collect(helper: SplitHelper) -> list[tuple[object, ...]]:
    received: list[tuple[object, ...]] = []
    helper.finish(received.append)
    helper.close()
    return received


# -- the process itself ------------------------------------------------------------------------


def test_messages_arrive_in_order_and_the_helper_never_waits_to_send_them() -> None:
    """Far more than a pipe holds (64 KB) is written before anything is read: the helper
    has ended by the time the first message is read."""
    big = "x" * 300_000

    def work(outbox: Outbox) -> None:
        for i in range(20):
            outbox.send("record", "stage_I", f"s{i}", {"files": big}, float(i))

    helper = SplitHelper.start(["s"], work)
    deadline = time.monotonic() + 60
    while psutil.pid_exists(helper.pid) and psutil.Process(helper.pid).status() != "zombie":
        assert time.monotonic() < deadline, "the helper is blocked writing"
        time.sleep(0.01)
    received = _collect(helper)
    assert [m[2] for m in received] == [f"s{i}" for i in range(20)]
    assert all(m[3] == {"files": big} for m in received)


def test_an_error_in_the_helper_is_raised_here_as_it_was_raised_there() -> None:
    def work(outbox: Outbox) -> None:
        outbox.send("log", 20, "2026-12-01 00:00:00", "before the error")
        raise AmassFormatError("HumanEva/S1/Box_1_poses.npz", "CRC-32 mismatch")

    helper = SplitHelper.start(["vald"], work)
    received: list[tuple[object, ...]] = []
    with pytest.raises(AmassFormatError, match="CRC-32 mismatch") as info:
        helper.finish(received.append)
    helper.close()
    assert info.value.path == "HumanEva/S1/Box_1_poses.npz"  # the error whole, not its text
    assert info.value.problem == "CRC-32 mismatch"
    assert received == [("log", 20, "2026-12-01 00:00:00", "before the error")]


def test_an_error_that_does_not_travel_comes_as_its_text() -> None:
    class Local(Exception):  # defined here: cannot be unpickled by name
        pass

    def work(outbox: Outbox) -> None:
        raise Local("something odd")

    helper = SplitHelper.start(["test"], work)
    with pytest.raises(PrepareError, match=r"\['test'\] failed: Local: something odd"):
        _collect(helper)


def test_a_helper_that_dies_is_an_error_naming_its_splits() -> None:
    def work(outbox: Outbox) -> None:
        outbox.send("record", "stage_I", "vald", {}, 0.1)
        os.kill(os.getpid(), signal.SIGKILL)

    helper = SplitHelper.start(["vald", "test"], work)
    received: list[tuple[object, ...]] = []
    with pytest.raises(PrepareError, match=r"\['vald', 'test'\] ended without finishing.*signal 9"):
        helper.finish(received.append)
    helper.close()
    assert received == [("record", "stage_I", "vald", {}, 0.1)]  # what it finished still counts


def test_stopping_the_helper_lets_it_clean_up_and_keeps_what_it_finished(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"

    def work(outbox: Outbox) -> None:
        outbox.send("record", "stage_I", "vald", {"samples": 3}, 0.1)
        try:
            time.sleep(120)
        finally:  # Ctrl-C's signal: a KeyboardInterrupt there, so cleanup runs
            marker.write_text("yes")

    helper = SplitHelper.start(["vald"], work)
    time.sleep(0.5)
    received: list[tuple[object, ...]] = []
    started = time.monotonic()
    helper.stop(received.append)
    helper.close()
    assert time.monotonic() - started < 20
    assert marker.read_text() == "yes"
    assert received == [("record", "stage_I", "vald", {"samples": 3}, 0.1)]
    assert not psutil.pid_exists(helper.pid) or psutil.Process(helper.pid).status() == "zombie"


def test_the_helper_dies_with_the_main_process(tmp_path: Path) -> None:
    """A main process killed outright (SIGKILL, out of memory) takes its helper with it."""
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from vposer_data.split_helper import SplitHelper

            helper = SplitHelper.start(["vald"], lambda outbox: time.sleep(120))
            print(helper.pid, flush=True)
            time.sleep(0.5)
            os._exit(0)  # no cleanup, as after SIGKILL
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        assert time.monotonic() < deadline, "the helper outlived the main process"
        time.sleep(0.05)


# -- in a preparation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sequential(small_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small tree prepared with workers, the splits one after the other. Read-only."""
    out = tmp_path_factory.mktemp("sequential") / "out"
    prepare(small_tree, out, num_workers=2, concurrent_splits=False)
    return out


def test_with_a_helper_the_output_is_the_same(
    small_tree: Path, sequential: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    lines: list[str] = []
    result = prepare(small_tree, out, num_workers=2, logger=lines.append)
    assert any(HELPER_LINE in line for line in lines), lines
    assert file_hashes(out) == file_hashes(sequential)
    assert sha256(out / STATISTICS_NAME) == sha256(sequential / STATISTICS_NAME)
    assert set(result.ran) == {f"{stage}/{split}" for stage in STAGES for split in SPLITS}
    manifest = read_manifest(out)
    assert manifest["complete"] and recorded_pairs(manifest) == set(result.ran)
    for stage in ("stage_I", "stage_III"):  # the records too (Stage II's carries a checksum
        for split in SPLITS:  # of a file whose attributes name the helper's quiet settings)
            record = manifest["stages"][stage][split]
            assert record == read_manifest(sequential)["stages"][stage][split], (stage, split)
    # the helper's lines reached the caller's logger and the log file, as the main process's
    log = (out / "prepare.log").read_text(encoding="utf-8")
    helped = [split for split in SPLITS if split != "train"]
    for split in helped:
        for roman in ("I", "II", "III"):
            said = [line for line in lines if line.startswith(f"stage {roman} {split}:")]
            assert len(said) == 1, (roman, split, lines)
            assert said[0] in log
    assert temp_files(out) == []


def test_a_strict_error_in_a_helped_split_stops_the_run_naming_the_file(
    small_tree: Path, tmp_path: Path
) -> None:
    """The damaged file is in a split the helper prepares (vald): the run stops with the
    error the helper raised, nothing partial is recorded, and no temp file is left."""
    import shutil

    from test_amass_integrity import assert_mapped, damaged_copy, span

    tree = tmp_path / "amass"
    shutil.copytree(small_tree, tree)
    victim = sorted((tree / "HumanEva").rglob("*_poses.npz"))[0]
    assert_mapped(victim, "poses")
    start, size = span(victim, "poses")
    damaged_copy(victim, victim, start + size // 2, bytes(2000))
    out = tmp_path / "out"
    with pytest.raises(AmassFormatError, match="CRC-32 mismatch") as info:
        prepare(tree, out, num_workers=2, strict=True)
    assert info.value.path.endswith(victim.relative_to(tree).as_posix())
    assert "stage_I/vald" not in recorded_pairs(read_manifest(out))
    assert temp_files(out) == []
    log = (out / "prepare.log").read_text(encoding="utf-8")
    assert HELPER_LINE in log


def test_no_helper_while_another_thread_runs(
    small_tree: Path, sequential: Path, tmp_path: Path
) -> None:
    """A thread of the caller's (a Lightning logger's, say) could hold a lock the forked
    helper would inherit held: the splits are then prepared in turn, with the same output."""
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        out = tmp_path / "out"
        lines: list[str] = []
        prepare(small_tree, out, num_workers=2, logger=lines.append)
    finally:
        stop.set()
        thread.join()
    assert not any(HELPER_LINE in line for line in lines)
    assert file_hashes(out) == file_hashes(sequential)
