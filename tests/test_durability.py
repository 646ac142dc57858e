"""Durability without a flush per file: final outputs get one barrier per split before they
are recorded; intermediates (Stage I tensors, the Stage II HDF5 file) are not flushed, so a
later run that reuses them verifies their size and checksum and rebuilds what does not match."""

from __future__ import annotations

import errno
import json
import mmap
import os
import re
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_nothing_partial, file_hashes, prepare, read_manifest

from vposer_data.checksums import file_crc32
from vposer_data.errors import PrepareError
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


# --- the barrier: final files and their folder flushed before the manifest records them -------

_TEMP_PART = re.compile(r"^\.(?P<name>.+)\.tmp-\d+$")


def _final_place(path: str) -> str:
    """A path with each temporary component (``.<name>.tmp-<pid>``) under its final name."""
    parts = Path(path).parts
    return str(Path(*((m["name"] if (m := _TEMP_PART.match(p)) else p) for p in parts)))


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any] | None]]:
    """Wrap ``os.fsync`` (the system's, not ours): every flush, in order, as (the flushed
    path under its final name, the manifest being written when the file is one)."""
    events: list[tuple[str, dict[str, Any] | None]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        real_fsync(fd)
        final = _final_place(path)
        manifest = None
        if Path(final).name == "manifest.json":
            manifest = json.loads(Path(path).read_text(encoding="utf-8"))
        events.append((final, manifest))

    monkeypatch.setattr(os, "fsync", fsync)
    return events


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files by /proc")
def test_final_files_and_their_folder_are_flushed_before_the_split_is_recorded(
    amass_tree: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = amass_tree()
    out = tmp_path / "out"
    events = _record_fsyncs(monkeypatch)
    prepare(tree, out)
    monkeypatch.undo()
    splits = sorted(read_manifest(out)["stages"]["stage_III"])
    assert splits == ["test", "train", "vald"]
    for split in splits:
        folder = out / "stage_III" / split
        recorded_at = next(
            i
            for i, (_, manifest) in enumerate(events)
            if manifest is not None and split in manifest["stages"]["stage_III"]
        )
        flushed_before = {path for path, _ in events[:recorded_at]}
        needed = {str(p) for p in folder.iterdir()} | {str(folder)}
        assert len(needed) > 5
        assert needed - flushed_before == set(), split


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files by /proc")
def test_a_flush_that_fails_at_the_barrier_stops_the_split_unrecorded(
    amass_tree: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk can surface only when a file is flushed: the barrier reports it naming
    the final file, and the split is not recorded; the next run finishes the job."""
    tree = amass_tree()
    out = tmp_path / "out"
    real_fsync = os.fsync
    failing = "stage_III/vald/pose_body.pt"

    def fsync(fd: int) -> None:
        if _final_place(os.readlink(f"/proc/self/fd/{fd}")).endswith(failing):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(PrepareError, match=rf"could not write {re.escape(str(out / failing))}"):
        prepare(tree, out)
    monkeypatch.undo()
    assert "vald" not in read_manifest(out)["stages"]["stage_III"]
    assert not (out / "stage_III" / "vald").exists()
    assert_nothing_partial(out)
    assert prepare(tree, out).ran == ["stage_III/vald", "stage_III/test"]
