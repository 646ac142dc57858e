"""Ctrl-C (SIGINT to the process group, as a terminal sends it) during each stage of
``python -m vposer_data prepare``: a one-line message, no traceback, exit status 130; the
interrupted split is not recorded, no temp file and no partial Stage III folder is left; the
next run resumes (redoing only what was missing) and equals an uninterrupted run.

The same at 15 more points chosen by a seeded schedule, on the command's ``main`` in runs
forked from a zygote (see test_fault_sigkill): a Ctrl-C can land in a DataLoader worker's
fork, inside torch.save, or in a finalizer, and each once went wrong differently."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from fault_helpers import (
    BIG_CONFIG,
    BIG_SPLITS,
    PYTHON,
    START,
    ForkedRun,
    Zygote,
    landed_in,
    partial_final_splits,
    press_ctrl_c,
    schedule,
    shortest_segments,
)
from helpers import assert_nothing_partial, file_hashes, prepare, read_manifest, recorded_pairs

from vposer_data.manifest import STAGES

ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in BIG_SPLITS}
LAST = list(BIG_SPLITS)[-1]  # "train", the largest split, runs last in each stage
BEFORE_LAST = list(BIG_SPLITS)[-2]


@pytest.mark.parametrize("stage", STAGES)
def test_ctrl_c_during_a_stage_then_resume(
    big_tree: Path, big_reference: dict[str, str], tmp_path: Path, stage: str
) -> None:
    out = tmp_path / "out"
    command = [
        PYTHON, "-m", "vposer_data", "-v", "prepare",
        "--amass-dir", str(big_tree), "--out", str(out),
        "--splits", json.dumps(BIG_SPLITS),
        "--num-workers", str(BIG_CONFIG["num_workers"]),
        "--batch-size", str(BIG_CONFIG["batch_size"]),
        "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # interrupt as soon as the stage has finished the split before the last (the largest)
    roman = stage.split("_")[1]
    trigger = f"stage {roman} {BEFORE_LAST}:"
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if trigger in line:
            time.sleep(0.01)  # past the recording of that split, into the last one
            os.killpg(proc.pid, signal.SIGINT)
            break
    else:
        pytest.fail(f"the run ended before {trigger!r}:\n{''.join(seen)}")
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest

    assert proc.returncode == 130, stderr
    assert "Interrupted; completed stages are kept and the next run resumes." in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "Prepared" not in stdout

    manifest = read_manifest(out)
    recorded = recorded_pairs(manifest)
    assert landed_in(out, BIG_SPLITS) == stage
    assert f"{stage}/{LAST}" not in recorded and not manifest["complete"]
    assert_nothing_partial(out)  # no temp file; every recorded file whole
    assert partial_final_splits(out, big_reference) == []  # absent or whole, never partial

    result = prepare(big_tree, out, BIG_SPLITS, **BIG_CONFIG)
    assert set(result.ran) == ALL_PAIRS - recorded  # resumed: nothing recorded is redone
    assert file_hashes(out) == big_reference
    assert_nothing_partial(out)


SEED = 4321
POINTS_PER_STAGE = 5


def test_ctrl_c_at_seeded_points_then_resume(
    big_tree: Path, big_reference: dict[str, str], zygote: Zygote, tmp_path: Path
) -> None:
    def start(out: Path) -> ForkedRun:
        argv = [
            "-v", "prepare", "--amass-dir", str(big_tree), "--out", str(out),
            "--splits", json.dumps(BIG_SPLITS), "--num-workers", "2", "--batch-size", "1024",
            "--no-progress",
        ]  # fmt: skip
        return zygote.start({"cli": argv})

    parts = shortest_segments(start, tmp_path, 2)
    points = schedule(parts, random.Random(SEED), POINTS_PER_STAGE)
    landed: Counter[str] = Counter()
    for i, (segment, delay) in enumerate(points):
        out = tmp_path / f"int{i:02d}"
        run = start(out)
        outcome, output = press_ctrl_c(run, segment.after, delay)
        stage = landed_in(out, BIG_SPLITS)
        landed[stage] += 1
        if outcome["rc"] is None:  # Ctrl-C while the command parsed its arguments
            assert not (out / "manifest.json").exists(), output
        elif stage == "done":  # Ctrl-C after the work: nothing to check but the exit
            assert outcome["rc"] in (0, 130), output
        else:
            assert outcome["rc"] == 130, (i, stage, output)
            assert "Interrupted; completed stages are kept and the next run resumes." in output
        assert "Traceback" not in output and "Exception ignored" not in output, output
        recorded = recorded_pairs(read_manifest(out))
        assert_nothing_partial(out)
        assert partial_final_splits(out, big_reference) == [], i

        result = prepare(big_tree, out, BIG_SPLITS, **BIG_CONFIG)
        assert set(result.ran) == ALL_PAIRS - recorded, (i, stage)
        assert file_hashes(out) == big_reference, (i, stage)
        assert_nothing_partial(out)
        shutil.rmtree(out)
    print(f"\nSIGINT points: {len(points)}; landed per stage {dict(sorted(landed.items()))}")
    assert sum(landed[s] for s in STAGES) >= 12, landed


def test_ctrl_c_as_the_command_starts(big_tree: Path, zygote: Zygote, tmp_path: Path) -> None:
    """Ctrl-C within the first few milliseconds (the seeded points' earliest delays, on a loaded
    machine): before the command has started, while it parses its arguments, or as Stage I
    starts. Each run reports how it ended and leaves nothing partial; none ends silently."""
    rng = random.Random(SEED)
    outcomes: Counter[object] = Counter()
    for i in range(20):
        out = tmp_path / f"early{i:02d}"
        argv = ["prepare", "--amass-dir", str(big_tree), "--out", str(out)]
        run = zygote.start({"cli": [*argv, "--splits", json.dumps(BIG_SPLITS), "--no-progress"]})
        outcome, output = press_ctrl_c(run, START, rng.uniform(0.0, 0.02))
        outcomes[outcome["rc"]] += 1
        if outcome["rc"] is None:
            assert not (out / "manifest.json").exists(), output
        else:
            assert outcome["rc"] == 130, (i, output)
        assert "Traceback" not in output and "Exception ignored" not in output, output
        assert_nothing_partial(out)
    print(f"\nearly SIGINT: exit statuses {dict(outcomes)}")
