"""SIGKILL and Ctrl-C while a helper process prepares the smaller splits beside the largest
(the default with workers): at seeded moments over the whole run, counted from its start (the
stages of two processes report in no fixed order, so kills are not timed from their lines).
Every process of the run dies with it, nothing partial is recorded, and the rerun redoes only
what was not recorded and equals an uninterrupted run."""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fault_helpers import (
    BIG_CONFIG,
    BIG_SPLITS,
    ForkedRun,
    Zygote,
    landed_in,
    partial_final_splits,
    survivors,
    timed_events,
)
from helpers import (
    assert_nothing_partial,
    file_hashes,
    prepare,
    read_manifest,
    record_problems,
    recorded_pairs,
)

from vposer_data.manifest import STAGES

SEED = 2468
KILLS = 8
INTERRUPTS = 4
ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in BIG_SPLITS}
#: BIG_CONFIG with the helper on (the default).
HELPED_CONFIG: dict[str, Any] = {**BIG_CONFIG, "concurrent_splits": True}
HELPER_LINE = "are prepared beside the others, in a helper process"


def _run_seconds(start: Any, root: Path) -> float:
    """The shortest of two uninterrupted runs, to its last stage report."""
    durations = []
    for k in range(2):
        out = root / f"timing{k}"
        events = timed_events(start(out))
        assert len(events) == len(ALL_PAIRS), events
        durations.append(events[-1][1])
        shutil.rmtree(out)
    return min(durations)


def test_sigkill_while_a_helper_runs_then_rerun_equals_uninterrupted_run(
    big_tree: Path, big_reference: dict[str, str], zygote: Zygote, tmp_path: Path
) -> None:
    def start(out: Path) -> ForkedRun:
        job = {"amass": str(big_tree), "out": str(out), "splits": BIG_SPLITS}
        return zygote.start({**job, "config": HELPED_CONFIG, "timing": True})

    check = start(tmp_path / "check")
    lines = [line for line in check.stream]
    check.wait()
    assert any(HELPER_LINE in line for line in lines), lines
    assert file_hashes(tmp_path / "check") == big_reference
    seconds = _run_seconds(start, tmp_path)
    rng = random.Random(SEED)
    landed: Counter[str] = Counter()
    most = 0
    for i in range(KILLS):
        out = tmp_path / f"kill{i:02d}"
        run = start(out)
        time.sleep(rng.uniform(0.05, 0.95) * seconds)
        members = run.members()
        most = max(most, len(members))
        run.kill()
        run.wait(timeout=30)
        assert survivors(members) == [], "processes of the killed run are still running"
        stage = landed_in(out, BIG_SPLITS)
        landed[stage] += 1
        assert record_problems(out) == [], (i, stage)
        assert partial_final_splits(out, big_reference) == [], (i, stage)
        recorded = recorded_pairs(read_manifest(out))

        result = prepare(big_tree, out, BIG_SPLITS, **HELPED_CONFIG)
        assert set(result.ran) == ALL_PAIRS - recorded, (i, stage)
        assert file_hashes(out) == big_reference, (i, stage)
        assert_nothing_partial(out)
        shutil.rmtree(out)
    print(f"\nSIGKILL points: {KILLS}; landed {dict(sorted(landed.items()))}; processes {most}")
    assert most >= 4, "no kill found the helper running beside the main process"
    assert sum(landed[s] for s in STAGES) >= KILLS // 2, landed


def test_ctrl_c_while_a_helper_runs_then_resume(
    big_tree: Path, big_reference: dict[str, str], zygote: Zygote, tmp_path: Path
) -> None:
    def start(out: Path) -> ForkedRun:
        argv = [
            "-v", "prepare", "--amass-dir", str(big_tree), "--out", str(out),
            "--splits", json.dumps(BIG_SPLITS), "--num-workers", "2", "--batch-size", "1024",
            "--no-progress",
        ]  # fmt: skip
        return zygote.start({"cli": argv})

    durations = []
    for k in range(2):
        out = tmp_path / f"timing{k}"
        began = time.monotonic()
        assert start(out).result()["ok"]
        durations.append(time.monotonic() - began)
        shutil.rmtree(out)
    seconds = min(durations)
    rng = random.Random(SEED + 1)
    landed: Counter[str] = Counter()
    for i in range(INTERRUPTS):
        out = tmp_path / f"int{i:02d}"
        run = start(out)
        time.sleep(rng.uniform(0.1, 0.9) * seconds)
        members = run.members()
        run.kill(signal.SIGINT)
        outcome = run.result()
        assert survivors(members) == [], "processes of the interrupted run are still running"
        stage = landed_in(out, BIG_SPLITS)
        landed[stage] += 1
        output = outcome["output"]
        if outcome["rc"] is None:  # Ctrl-C while the command parsed its arguments
            assert not (out / "manifest.json").exists(), output
        elif stage == "done":
            assert outcome["rc"] in (0, 130), output
        else:
            assert outcome["rc"] == 130, (i, stage, output)
            assert "Interrupted; completed stages are kept and the next run resumes." in output
        assert "Traceback" not in output and "Exception ignored" not in output, output
        assert_nothing_partial(out)  # the helper removed its temporary outputs too
        assert partial_final_splits(out, big_reference) == [], i
        recorded = recorded_pairs(read_manifest(out))

        result = prepare(big_tree, out, BIG_SPLITS, **HELPED_CONFIG)
        assert set(result.ran) == ALL_PAIRS - recorded, (i, stage)
        assert file_hashes(out) == big_reference, (i, stage)
        shutil.rmtree(out)
    print(f"\nSIGINT points: {INTERRUPTS}; landed {dict(sorted(landed.items()))}")
