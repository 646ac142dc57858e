"""Four processes calling ``prepare_vposer_datasets`` on one folder at the same moment (four
ranks, four users): all return, exactly one runs the stages (each split's Stage I once, as
``prepare.log`` shows), and the output is valid and equal to a single uninterrupted run."""

from __future__ import annotations

import re
from pathlib import Path

from fault_helpers import BIG_CONFIG, BIG_SPLITS, Zygote
from helpers import assert_nothing_partial, file_hashes, read_manifest

from vposer_data.manifest import STAGES
from vposer_data.summary import verify

ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in BIG_SPLITS}
PROCESSES = 4


def test_four_processes_at_once_run_the_stages_once(
    big_tree: Path, big_reference: dict[str, str], zygote: Zygote, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = {"amass": str(big_tree), "out": str(out), "splits": BIG_SPLITS, "config": BIG_CONFIG}
    runs = [zygote.start(job) for _ in range(PROCESSES)]  # forked within milliseconds
    assert len({run.pid for run in runs}) == PROCESSES
    outcomes = [run.result() for run in runs]

    assert all(o["ok"] for o in outcomes), outcomes
    ran = sorted((o["ran"] for o in outcomes), key=len, reverse=True)
    assert set(ran[0]) == ALL_PAIRS and len(ran[0]) == len(ALL_PAIRS)  # one did all of it
    assert ran[1:] == [[]] * (PROCESSES - 1)  # the others waited, then found it done

    log = (out / "prepare.log").read_text(encoding="utf-8")
    for split in BIG_SPLITS:
        assert len(re.findall(rf" stage I {split}: ", log)) == 1, log
        assert len(re.findall(rf" stage III {split}: ", log)) == 1, log
    assert log.count("=== vposer_data") == 1
    assert verify(out) == []
    assert read_manifest(out)["complete"] is True
    assert file_hashes(out) == big_reference
    assert_nothing_partial(out)
