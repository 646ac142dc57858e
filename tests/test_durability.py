"""Durability without a flush per file: final outputs get one barrier per split before they
are recorded; intermediates (Stage I tensors, the Stage II HDF5 file) are not flushed, so a
later run that reuses them verifies their size and checksum and rebuilds what does not match."""

from __future__ import annotations

import json
import mmap
import shutil
import zlib
from pathlib import Path

import pytest
from helpers import file_hashes, prepare, read_manifest

from vposer_data.atomic import file_crc32
from vposer_data.manifest import STAGES, stage_path


def _as_if_killed_before(out: Path, stage: str, split: str) -> None:
    """Make ``out`` look like a run killed before ``stage`` of ``split`` was recorded: its
    records from that stage on are gone, and so are their outputs."""
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["complete"] = False
    for name in STAGES[STAGES.index(stage) :]:
        manifest["stages"][name].pop(split)
        path = stage_path(out, name, split)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (out / "manifest.json").write_text(json.dumps(manifest))


def _flip_a_byte(path: Path, offset_fraction: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    at = int(len(data) * offset_fraction)
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture()
def prepared(amass_tree: object, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    tree = amass_tree()  # type: ignore[operator]
    out = tmp_path / "out"
    prepare(tree, out)
    return tree, out, file_hashes(out)


def test_an_altered_hdf5_intermediate_is_rebuilt_when_reused(
    prepared: tuple[Path, Path, dict[str, str]],
) -> None:
    tree, out, before = prepared
    record = read_manifest(out)["stages"]["stage_II"]["train"]
    assert record["crc32"] == file_crc32(out / "stage_II" / "train.h5")
    _as_if_killed_before(out, "stage_III", "train")  # Stage III runs again, from Stage II
    _flip_a_byte(out / "stage_II" / "train.h5")  # same size: only the checksum can tell
    result = prepare(tree, out)
    assert result.ran == ["stage_II/train", "stage_III/train"]
    assert file_hashes(out) == before


def test_an_altered_stage_one_tensor_is_rebuilt_when_reused(
    prepared: tuple[Path, Path, dict[str, str]],
) -> None:
    tree, out, before = prepared
    _as_if_killed_before(out, "stage_II", "vald")
    _flip_a_byte(out / "stage_I" / "vald" / "pose_body.pt", 0.9)
    result = prepare(tree, out)
    assert result.ran == ["stage_I/vald", "stage_II/vald", "stage_III/vald"]
    assert file_hashes(out) == before


def test_intact_intermediates_are_reused_not_rebuilt(
    prepared: tuple[Path, Path, dict[str, str]],
) -> None:
    tree, out, before = prepared
    _as_if_killed_before(out, "stage_III", "test")
    result = prepare(tree, out)
    assert result.ran == ["stage_III/test"]
    assert file_hashes(out) == before


@pytest.mark.parametrize("size", [0, 1, 4096, 100_003, 1_000_001])
def test_file_crc32_is_zlibs_crc_of_the_whole_file(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = f"{zlib.crc32(data):08x}"
    assert file_crc32(path) == expected
    window = 4 * mmap.ALLOCATIONGRANULARITY  # windows that do not divide the file
    assert file_crc32(path, window=window) == expected
