"""Split mappings and folders that cannot work: unknown or doubly used datasets, empty splits,
a split with nothing usable, a missing AMASS folder, an output folder that is a file or cannot
be written. Each is a clear error, and nothing it leaves behind stops the corrected call."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    SPLITS,
    assert_nothing_partial,
    file_hashes,
    prepare,
    read_manifest,
    recorded_pairs,
    snapshot,
)

from vposer_data.errors import PrepareError
from vposer_data.manifest import STAGES
from vposer_data.splits import SplitError

ALL_PAIRS = {f"{stage}/{split}" for stage in STAGES for split in SPLITS}


def corrected_call_completes(tree: Path, out: Path, reference: Path) -> None:
    """After a refused call, the right one prepares everything, as if nothing had happened."""
    result = prepare(tree, out)
    assert set(result.ran) == ALL_PAIRS
    assert file_hashes(out) == file_hashes(reference)
    assert read_manifest(out)["amass_dir"] == str(tree.resolve())
    assert_nothing_partial(out)


def test_unknown_dataset_lists_what_exists(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(SplitError) as info:
        prepare(small_tree, out, {**SPLITS, "train": ["CMU", "NoSuchMocap"]})
    message = str(info.value)
    assert type(info.value) is SplitError
    assert "dataset 'NoSuchMocap'" in message and "not found in" in message
    assert "folders there:" in message
    for folder in sorted(p.name for p in small_tree.iterdir() if p.is_dir()):
        assert folder in message
    assert not (out / "stage_I").exists()  # nothing was started
    corrected_call_completes(small_tree, out, small_reference)


def test_missing_release_name_says_which_aliases_were_tried(
    small_tree: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "amass"
    shutil.copytree(small_tree, tree, ignore=shutil.ignore_patterns("MPI_HDM05"))
    with pytest.raises(SplitError, match=r"dataset 'HDM05' \(also tried MPI_HDM05\) not found"):
        prepare(tree, tmp_path / "out", {**SPLITS, "vald": ["HDM05"]})


@pytest.mark.parametrize(
    ("splits", "words"),
    [
        (
            {"train": ["CMU", "KIT"], "vald": ["KIT"], "test": ["SFU"]},
            ["'KIT'", "in splits 'train' and 'vald'", "used once"],
        ),
        (  # the same dataset under its two release names
            {"train": ["BML"], "vald": ["BioMotionLab_NTroje"], "test": ["SFU"]},
            ["'BioMotionLab_NTroje'", "overlaps 'BML'", "in splits 'train' and 'vald'"],
        ),
        (  # a subject folder inside a dataset used elsewhere
            {"train": ["CMU"], "vald": ["HumanEva"], "test": ["CMU/001"]},
            ["'CMU/001'", "overlaps 'CMU'", "in splits 'train' and 'test'"],
        ),
        (
            {"train": ["CMU", "CMU"], "vald": ["HumanEva"], "test": ["SFU"]},
            ["twice in split 'train'"],
        ),
        ({"train": ["CMU"], "vald": [], "test": ["SFU"]}, ["split 'vald' names no datasets"]),
        ({}, ["the split mapping is empty"]),
    ],
    ids=["two_splits", "two_release_names", "subfolder", "twice_in_one", "empty_split", "none"],
)
def test_bad_mapping_is_refused_before_any_work(
    small_tree: Path, tmp_path: Path, splits: dict[str, list[str]], words: list[str]
) -> None:
    out = tmp_path / "out"
    with pytest.raises(SplitError) as info:
        prepare(small_tree, out, splits)
    assert type(info.value) is SplitError
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert not (out / "stage_I").exists()
    assert recorded_pairs(read_manifest(out)) == set()


def test_split_with_nothing_usable(small_tree: Path, small_reference: Path, tmp_path: Path) -> None:
    """Every motion of 'vald' is damaged: a PrepareError naming the split and examples, no
    empty tensors written; 'train', done before it, is kept; once repaired, the run resumes."""
    tree = tmp_path / "amass"
    shutil.copytree(small_tree, tree)
    motions = sorted((tree / "HumanEva").rglob("*_poses.npz"))
    assert motions
    originals = {p: p.read_bytes() for p in motions}
    for path in motions:
        path.write_bytes(originals[path][:100])  # truncated
    out = tmp_path / "out"
    with pytest.raises(PrepareError) as info:
        prepare(tree, out)
    message = str(info.value)
    assert type(info.value) is PrepareError
    assert "split 'vald' has no usable motion" in message
    assert f"({len(motions)} unusable, e.g. " in message
    assert motions[0].relative_to(tree).as_posix() in message and "truncated" in message
    assert list((out / "stage_I" / "vald").glob("*.pt")) == []  # no empty tensors
    assert recorded_pairs(read_manifest(out)) == {"stage_I/train"}  # kept, whole
    assert_nothing_partial(out)

    for path, data in originals.items():
        path.write_bytes(data)
    result = prepare(tree, out)
    assert set(result.ran) == ALL_PAIRS - {"stage_I/train"}  # resumed, train not redone
    assert file_hashes(out) == file_hashes(small_reference)
    assert_nothing_partial(out)


def test_amass_dir_missing_or_a_file(
    small_tree: Path, small_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(SplitError, match="does not exist") as info:
        prepare(tmp_path / "no_such_amass", out)
    assert str(tmp_path / "no_such_amass") in str(info.value)
    a_file = tmp_path / "amass.tar"
    a_file.write_bytes(b"not a folder")
    with pytest.raises(SplitError, match="is not a directory") as info:
        prepare(a_file, out)
    assert type(info.value) is SplitError
    assert str(a_file) in str(info.value)
    # the failed calls leave nothing that stops (or mislabels) the right one
    corrected_call_completes(small_tree, out, small_reference)


def test_output_folder_that_is_a_file(small_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"precious")
    with pytest.raises(PrepareError) as info:
        prepare(small_tree, out)
    assert type(info.value) is PrepareError
    assert f"output folder {out} is a file; expected a directory" in str(info.value)
    assert out.read_bytes() == b"precious"


def test_output_folder_below_a_file_cannot_be_created(small_tree: Path, tmp_path: Path) -> None:
    """An unwritable place that stays unwritable for root: a folder below a regular file."""
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"precious")
    out = blocker / "out"
    with pytest.raises(PrepareError) as info:
        prepare(small_tree, out)
    assert type(info.value) is PrepareError
    assert f"cannot create output folder {out}" in str(info.value)
    assert "Not a directory" in str(info.value)
    assert blocker.read_bytes() == b"precious"


def prepare_as_nobody(tree: Path, out: Path) -> dict[str, str]:
    """Call prepare in a forked child that has dropped root for the user 'nobody' (as a
    cluster user would be); returns the exception's type and message. A fork, not a new
    interpreter: the interpreter lives below /root, which 'nobody' cannot enter."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                prepare(tree, out)
                outcome = {"type": "", "message": "no error"}
            except Exception as exc:
                outcome = {"type": type(exc).__name__, "message": str(exc)}
            os.write(write_end, json.dumps(outcome).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, status
    return json.loads(data)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's temp tree (which only root may enter), open to all users."""
    path = Path(tempfile.mkdtemp(prefix="vposer_faults_"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def as_user_nobody(tree: Path, out: Path) -> dict[str, str]:
    if os.geteuid() == 0:
        return prepare_as_nobody(tree, out)
    with pytest.raises(PrepareError) as info:
        prepare(tree, out)
    return {"type": type(info.value).__name__, "message": str(info.value)}


def test_output_folder_not_writable(small_tree: Path, shared_dir: Path) -> None:
    """A read-only folder. Root may write anywhere, so as root the call runs in a forked child
    that has become the user 'nobody' (as on a cluster); otherwise in-process."""
    out = shared_dir / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    out.chmod(0o555)
    before = snapshot(out)
    try:
        outcome = as_user_nobody(small_tree, out)
    finally:
        out.chmod(0o755)
    assert outcome["type"] == "PrepareError"
    assert f"output folder {out} is not writable" in outcome["message"]
    assert snapshot(out) == before


def test_output_folder_inside_a_folder_one_may_not_enter(
    small_tree: Path, shared_dir: Path
) -> None:
    private = shared_dir / "private"
    private.mkdir(mode=0o700)  # root's: 'nobody' may not enter
    if os.geteuid() != 0:
        private.chmod(0o000)  # nor may its owner, when that is not root
    out = private / "out"
    try:
        outcome = as_user_nobody(small_tree, out)
    finally:
        private.chmod(0o700)
    assert outcome["type"] == "PrepareError"
    assert f"cannot create output folder {out}" in outcome["message"]
    assert "Permission denied" in outcome["message"]
    assert not out.exists()
