"""The first look at each motion before a run with body models (``ArchiveGlance``, through a
few small reads): the same keys, ``poses`` shape, gender and member checksums as numpy and
zipfile give, on every file of each synthetic release and on zip64 directories; what it does
not read it hands on; and the scan never disagrees with Stage I about a file Stage I reads,
however the file is damaged."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_amass_zip import (
    FAMILIES,
    NAMES,
    damaged_copy,
    np_savez_copy,
    originals,
    scratch,
    with_zip64_directory,
    write_motion,
)

from vposer_data.amass import AmassFormatError, load_sequence
from vposer_data.archive_glance import ArchiveGlance, NotARegularFile
from vposer_data.models_used import motion_model
from vposer_data.npz_reader import member_checksums
from vposer_data.synthetic import write_npz
from vposer_data.zip_directory import Fallback

__all__ = ["originals", "scratch"]  # the fixtures, shared with test_amass_zip


def numpy_view(path: Path) -> dict[str, Any]:
    """Keys, ``poses`` shape and ``gender`` as np.load reads them; the checksums zipfile reads."""
    with np.load(path, allow_pickle=False) as archive:
        view: dict[str, Any] = {"keys": set(archive.files)}
        view["poses"] = archive["poses"].shape if "poses" in archive.files else None
        view["gender"] = archive["gender"] if "gender" in archive.files else None
    with zipfile.ZipFile(path) as archive:
        view["checksums"] = sorted((i.filename, i.CRC) for i in archive.infolist())
    return view


def glance_view(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with ArchiveGlance.open(path) as glance:
        glance.keep_checksums()
        view: dict[str, Any] = {"keys": glance.keys}
        view["poses"] = glance.shape("poses") if "poses" in glance.keys else None
        view["gender"] = glance.get("gender") if "gender" in glance.keys else None

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise zipfile.BadZipFile("zipfile was asked")

    with monkeypatch.context() as patch:  # the checksums the glance read, kept
        patch.setattr(zipfile, "ZipFile", refused)
        view["checksums"] = member_checksums(path)
    return view


def is_plain(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())


def test_the_glance_agrees_with_numpy_on_every_file_of_each_release(
    synthetic_trees: dict[str, Any],
    originals: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large motions (the directory in a tail read) and small files (the whole file), every
    family and key layout; a deflated archive is handed on, nothing else is."""
    deflated = [
        np_savez_copy(path, tmp_path / f"{family}_deflated_poses.npz", compress=True)
        for family, path in originals.items()
    ]
    glanced = handed_on = 0
    for root, _ in synthetic_trees.values():
        for path in [*sorted(Path(root).rglob("*.npz")), *deflated]:
            try:
                expected = numpy_view(path)
            except (ValueError, OSError, zipfile.BadZipFile):
                with pytest.raises((Fallback, OSError)):
                    glance_view(path, monkeypatch)
                continue
            try:
                found = glance_view(path, monkeypatch)
            except Fallback:
                assert not is_plain(path), path
                handed_on += 1
                continue
            assert found["keys"] == {k.removesuffix(".npy") for k in expected["keys"]}, path
            assert found["poses"] == expected["poses"], path
            assert np.array_equal(found["gender"], expected["gender"]), path
            assert found["checksums"] == expected["checksums"], path
            glanced += 1
    assert glanced > 50 and handed_on >= len(deflated)


@pytest.mark.parametrize("sentinels", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_zip64_directories_are_glanced_as_zipfile_reads_them(
    tmp_path: Path,
    originals: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    family: str,
    sentinels: bool,
) -> None:
    path = with_zip64_directory(originals[family], tmp_path / NAMES[family], sentinels)
    found, expected = glance_view(path, monkeypatch), numpy_view(path)
    assert found["poses"] == expected["poses"] and found["checksums"] == expected["checksums"]


def test_what_a_glance_does_not_read_is_handed_on(tmp_path: Path) -> None:
    """A directory longer than the tail read, a key name longer than the local header read,
    a damaged or large member: Fallback (or read past the name), and the scan still finds the
    motion's model through the mapped reader; a FIFO is no motion, and opening it never
    waits for a writer."""
    many = tmp_path / "many_poses.npz"  # a directory of 300 members: longer than the tail
    arrays = {"poses": np.zeros((4, 156)), "gender": np.array("female"), "trans": np.zeros((4, 3))}
    write_npz(many, {**arrays, **{f"extra_{i:03d}": np.zeros(1) for i in range(300)}})
    with pytest.raises(Fallback, match="before the bytes read"):
        ArchiveGlance.open(many)
    assert motion_model(many) == ("smplh", "female")

    long_name = "k" * 700  # past the bytes read with the local header: read again from the data
    named = tmp_path / "named_poses.npz"
    write_npz(named, {**arrays, long_name: np.arange(6.0).reshape(2, 3)})
    with ArchiveGlance.open(named) as glance:
        assert glance.shape(long_name) == (2, 3)
        assert glance.get(long_name).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]

    large = tmp_path / "large_poses.npz"  # a gender member past what a glance reads whole
    write_npz(large, {**arrays, "gender": np.array(["female"] * 20000)})
    with ArchiveGlance.open(large) as glance, pytest.raises(Fallback, match="larger"):
        glance.get("gender")

    damaged = tmp_path / "damaged_poses.npz"
    write_npz(damaged, arrays)
    with zipfile.ZipFile(damaged) as archive:
        info = archive.getinfo("gender.npy")
    data = bytearray(damaged.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + info.compress_size - 1] ^= 0x20
    damaged.write_bytes(bytes(data))  # the gender's last byte, not its CRC-32
    with ArchiveGlance.open(damaged) as glance, pytest.raises(Fallback, match="CRC"):
        glance.get("gender")
    assert motion_model(damaged) is None  # unreadable: Stage I says why

    fifo = tmp_path / "fifo_poses.npz"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile):
        ArchiveGlance.open(fifo)  # and no hang
    assert motion_model(fifo) is None


@given(
    family=st.sampled_from(FAMILIES),
    zip64=st.sampled_from([None, True, False]),
    fraction=st.floats(0, 1, exclude_max=True),
    tail=st.booleans(),
    mask=st.integers(1, 255),
    cut=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_the_scan_agrees_with_stage_one_on_any_damaged_file(
    originals: dict[str, Path],
    scratch: Path,
    family: str,
    zip64: bool | None,
    fraction: float,
    tail: bool,
    mask: int,
    cut: bool,
) -> None:
    """A byte flipped anywhere (``tail``: in the directory and end records, where the glance
    parses), or the file cut short: whenever Stage I's reader reads the motion, the scan
    found the same family and gender, so its model was looked for before the stages."""
    path = damaged_copy(
        originals[family], scratch / NAMES[family], zip64, fraction, tail, None if cut else mask
    )
    try:
        sequence = load_sequence(path)
    except (AmassFormatError, OSError):
        return
    assert motion_model(path) == (sequence.family, sequence.gender)


def test_a_motion_is_glanced_once_read_small(tmp_path: Path) -> None:
    """A file smaller than the tail read (the directory and the file's head in one read)."""
    path = write_motion(tmp_path, "smpl", frames=2)
    assert path.stat().st_size < 8192
    with ArchiveGlance.open(path) as glance:
        assert glance.shape("poses") == (2, 72)
        assert str(glance.get("gender")) == "male"
