"""A prepared folder met again: with other settings (refused, naming each difference, touching
nothing), or after its files were edited (a field truncated, a file deleted, a byte flipped):
``prepare_vposer_datasets`` and ``VPoserDataModule.setup`` notice sizes, ``vposer-data info
--verify`` notices checksums, each naming the file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import SPLITS, config, prepare, read_manifest, snapshot

from vposer_data.cli import main as cli_main
from vposer_data.datamodule import VPoserDataModule
from vposer_data.dataset import DatasetFormatError, DatasetNotFoundError, VPoserDataset
from vposer_data.errors import StaleOutputError
from vposer_data.manifest import ManifestError


@pytest.fixture
def prepared(small_reference: Path, tmp_path: Path) -> Path:
    """A private copy of the small reference output, free to damage."""
    out = tmp_path / "out"
    shutil.copytree(small_reference, out)
    return out


def test_changed_settings_name_each_difference_and_touch_nothing(
    small_tree: Path, prepared: Path
) -> None:
    before = snapshot(prepared)
    with pytest.raises(StaleOutputError) as info:
        prepare(small_tree, prepared, keep_rate=0.5, seed=7, trim=0.2)
    message = str(info.value)
    assert type(info.value) is StaleOutputError
    assert f"{prepared} holds data prepared with other settings" in message
    assert "keep_rate: existing 0.3, requested 0.5" in message
    assert "seed: existing 0, requested 7" in message
    assert "trim: existing 0.1, requested 0.2" in message
    assert len([line for line in message.splitlines() if ": existing " in line]) == 3
    assert "overwrite=True" in message and "--overwrite" in message
    with pytest.raises(StaleOutputError, match=r"splits\.vald: existing \['HumanEva'\], "):
        prepare(small_tree, prepared, {**SPLITS, "vald": ["HumanEva", "MPI_mosh"]})
    assert snapshot(prepared) == before  # not a byte, not a time stamp changed


def test_settings_that_do_not_change_the_data_are_not_stale(
    small_tree: Path, prepared: Path
) -> None:
    result = prepare(small_tree, prepared, num_workers=2, strict=True, progress=False)
    assert result.ran == []


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def delete(path: Path) -> None:
    path.unlink()


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor's data: same size, other content
    path.write_bytes(bytes(data))


def datamodule(out: Path) -> VPoserDataModule:
    """A module for this folder, with the settings it was prepared with."""
    settings = {"batch_size": config().batch_size, "num_workers": 0}
    return VPoserDataModule(out, splits=SPLITS, prepare=settings)


@pytest.mark.parametrize(
    ("edit", "split", "field", "problem"),
    [
        (truncate, "train", "pose_body", "bytes, the manifest records"),
        (delete, "vald", "root_orient", "missing (recorded"),
    ],
    ids=["truncated", "deleted"],
)
def test_prepare_setup_and_verify_name_a_resized_or_missing_file(
    small_tree: Path,
    prepared: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Callable[[Path], None],
    split: str,
    field: str,
    problem: str,
) -> None:
    target = prepared / "stage_III" / split / f"{field}.pt"
    recorded = read_manifest(prepared)["stages"]["stage_III"][split]["fields"][field]["bytes"]
    edit(target)

    with pytest.raises(ManifestError) as info:
        prepare(small_tree, prepared)
    message = str(info.value)
    assert type(info.value) is ManifestError
    assert f"{target}: " in message and problem in message and str(recorded) in message
    assert "overwrite=True" in message

    with pytest.raises(ManifestError) as info:
        datamodule(prepared).setup("fit" if split == "train" else "validate")
    assert f"{target}: " in str(info.value) and problem in str(info.value)

    assert cli_main(["info", str(prepared), "--verify"]) == 1
    printed = capsys.readouterr().out
    assert "Verification FAILED" in printed and f"{target}: " in printed

    # the command: one line naming the file, no traceback
    argv = ["prepare", "--amass-dir", str(small_tree), "--out", str(prepared), "--no-progress"]
    argv += ["--splits", json.dumps(SPLITS), "--batch-size", str(config().batch_size)]
    argv += ["--num-workers", "0"]
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("vposer-data: error: ") and f"{target}: " in error

    # the dataset alone (no manifest): a damaged file is refused, a missing one reported
    expected = DatasetFormatError if edit is truncate else DatasetNotFoundError
    with pytest.raises(expected, match=field):
        VPoserDataset(target.parent, fields=[field])


def test_verify_names_a_file_altered_in_place(
    prepared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["info", str(prepared), "--verify"]) == 0
    assert "Verification passed" in capsys.readouterr().out
    target = prepared / "stage_III" / "test" / "pose_body.pt"
    size = target.stat().st_size
    flip_a_byte(target)
    assert target.stat().st_size == size
    assert cli_main(["info", str(prepared), "--verify"]) == 1
    printed = capsys.readouterr().out
    assert f"{target}: checksum differs from the manifest (file was altered)" in printed
    others = [line for line in printed.splitlines() if "checksum differs" in line]
    assert len(others) == 1  # only that file
