"""A disk that fills up while writing, simulated by a file-size limit (``RLIMIT_FSIZE`` with
``SIGXFSZ`` ignored, so a write past it fails with ``EFBIG`` as it would with ``ENOSPC``) in a
child process, once while Stage I writes its tensors and once while Stage II writes its HDF5
file. The error names the file; nothing partial is recorded or left; a later run with room
redoes only what is missing and equals an uninterrupted run.

(A tiny tmpfs would be closer to a real full disk, but mounting one needs privileges a test
should not assume; Stage III cannot be isolated this way, as each Stage III file is smaller
than the Stage II file it comes from.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fault_helpers import BIG_CONFIG, BIG_SPLITS, Zygote
from helpers import assert_nothing_partial, file_hashes, prepare, read_manifest, recorded_pairs

from vposer_data.manifest import STAGES

ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in BIG_SPLITS}
FIRST = next(iter(BIG_SPLITS))


def file_sizes(root: Path, sub: str) -> dict[Path, int]:
    return {p.relative_to(root): p.stat().st_size for p in (root / sub).rglob("*") if p.is_file()}


@pytest.mark.parametrize("stage", ["stage_I", "stage_II"])
def test_full_disk_names_the_file_and_a_later_run_completes(
    big_tree: Path,
    big_reference_dir: Path,
    big_reference: dict[str, str],
    zygote: Zygote,
    tmp_path: Path,
    stage: str,
) -> None:
    stage1 = file_sizes(big_reference_dir, "stage_I")
    stage2 = file_sizes(big_reference_dir, "stage_II")
    if stage == "stage_I":
        # half the largest tensor of the first split: that split's Stage I cannot finish
        first = [size for path, size in stage1.items() if path.parts[1] == FIRST]
        limit = max(first) // 2
        expected = rf"{re.escape(str(tmp_path))}/out/stage_I/{FIRST}/\w+\.pt"
        assert (big_reference_dir / "manifest.json").stat().st_size < limit  # it must fit
    else:
        # room for every Stage I file, not for the largest HDF5 file
        limit = max(stage1.values()) + 4096
        too_big = [p for p in stage2 if stage2[p] > limit]
        assert too_big, "the limit must stop one Stage II file"
        first_too_big = min(too_big, key=lambda p: list(BIG_SPLITS).index(p.stem))
        expected = re.escape(str(tmp_path / "out" / first_too_big))
    out = tmp_path / "out"
    job = {
        "amass": str(big_tree),
        "out": str(out),
        "splits": BIG_SPLITS,
        "config": BIG_CONFIG,
        "fsize": limit,
    }
    outcome = zygote.start(job).result()
    print(f"\n{stage} full: {outcome['type']}: {outcome['message']}")

    assert outcome["ok"] is False
    assert outcome["type"] == "PrepareError"
    match = re.match(rf"could not write ({expected}): (.*)", outcome["message"])
    assert match, outcome["message"]
    assert "File too large" in match.group(2)  # the system's own reason, EFBIG
    failed = Path(match.group(1))
    assert not failed.exists()  # no partial file under its final name
    recorded = recorded_pairs(read_manifest(out))
    split = failed.parent.name if stage == "stage_I" else failed.stem
    assert f"{stage}/{split}" not in recorded  # not recorded as done
    if stage == "stage_II":  # what finished before is kept
        assert {f"stage_I/{s}" for s in BIG_SPLITS} <= recorded
    assert_nothing_partial(out)

    # with room again
    result = prepare(big_tree, out, BIG_SPLITS, **BIG_CONFIG)
    assert set(result.ran) == ALL_PAIRS - recorded
    assert file_hashes(out) == big_reference
    assert_nothing_partial(out)
