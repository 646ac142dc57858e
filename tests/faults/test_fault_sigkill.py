"""SIGKILL at 30 points spread over the three stages by a seeded schedule, each followed by a
rerun: the rerun redoes only what was not recorded, leaves no temp file, and its Stage III
output is byte-identical to an uninterrupted run. At each kill, nothing partial is recorded.

Each run is a real process, forked from a zygote that has already imported torch (so a run
starts in milliseconds), leading its own process group so that its DataLoader workers die
with it. Kills are timed from the run's own log lines (each stage reports every split it
finishes), so that a slow or loaded machine shifts them less than a clock started at launch.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from pathlib import Path

from fault_helpers import (
    BIG_CONFIG,
    BIG_SPLITS,
    ForkedRun,
    Zygote,
    landed_in,
    partial_final_splits,
    schedule,
    shortest_segments,
    survivors,
    wait_for,
)
from helpers import file_hashes, prepare, read_manifest, record_problems, recorded_pairs, temp_files

from vposer_data.manifest import STAGES
from vposer_data.summary import verify

SEED = 1234
KILLS_PER_STAGE = 10
TIMING_RUNS = 3
ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in BIG_SPLITS}


def kill_after(run: ForkedRun, anchor: str, delay: float) -> int:
    """Wait for the ``anchor`` event, sleep ``delay``, SIGKILL the run's whole process group;
    returns how many worker processes it had at that moment."""
    wait_for(run, anchor)
    time.sleep(delay)
    members = run.members()
    run.kill()
    run.wait(timeout=30)
    assert survivors(members) == [], "processes of the killed run are still running"
    return len(members) - 1


def test_sigkill_at_seeded_points_then_rerun_equals_uninterrupted_run(
    big_tree: Path, big_reference: dict[str, str], zygote: Zygote, tmp_path: Path
) -> None:
    tree, reference = big_tree, big_reference

    def start(out: Path) -> ForkedRun:
        job = {"amass": str(tree), "out": str(out), "splits": BIG_SPLITS, "config": BIG_CONFIG}
        return zygote.start({**job, "timing": True})

    # uninterrupted runs: the same bytes as in-process; where the stages begin and end
    assert start(tmp_path / "check").result()["ok"]
    assert file_hashes(tmp_path / "check") == reference
    parts = shortest_segments(start, tmp_path, TIMING_RUNS)
    assert [s.stage for s in parts] == [s for s in STAGES for _ in BIG_SPLITS]
    points = schedule(parts, random.Random(SEED), KILLS_PER_STAGE)
    assert len(points) >= 20

    landed: Counter[str] = Counter()
    planned_vs_landed: Counter[tuple[str, str]] = Counter()
    with_temp_files = with_workers = 0
    for i, (segment, delay) in enumerate(points):
        out = tmp_path / f"kill{i:02d}"
        workers = kill_after(start(out), segment.after, delay)

        stage = landed_in(out, BIG_SPLITS)
        landed[stage] += 1
        planned_vs_landed[(segment.stage, stage)] += 1
        with_workers += workers > 0
        # whatever the moment, nothing partial is recorded as done
        assert record_problems(out) == [], (i, stage)
        recorded = recorded_pairs(read_manifest(out))
        left = temp_files(out)
        with_temp_files += bool(left)
        # a split folder is built under a temp name and renamed whole: never half-made
        assert partial_final_splits(out, reference) == [], (i, stage)

        rerun = {**BIG_CONFIG, "num_workers": 2 if i % 2 else 0}
        result = prepare(tree, out, BIG_SPLITS, **rerun)
        assert set(result.ran) == ALL_PAIRS - recorded, (i, stage)  # only what was missing
        assert file_hashes(out) == reference, (i, stage)
        assert temp_files(out) == [], (i, stage)
        assert verify(out) == []
        log = (out / "prepare.log").read_text(encoding="utf-8")
        for path in left:  # logged itself, or as part of the temp folder that held it
            assert any(f"left by an interrupted run: {p}" in log for p in (path, *path.parents)), (
                path
            )
        shutil.rmtree(out)  # keep the disk footprint small

    print(
        f"\nSIGKILL points: {len(points)}; landed per stage {dict(sorted(landed.items()))}; "
        f"planned->landed {dict(sorted(planned_vs_landed.items()))}; "
        f"{with_workers} with DataLoader workers alive, {with_temp_files} left temp files"
    )
    in_stages = sum(landed[s] for s in STAGES)
    assert in_stages >= 20, landed
    assert all(landed[s] >= 3 for s in STAGES), landed
