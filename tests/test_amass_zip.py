"""The fast zip reader of ``load_sequence`` agrees with zipfile and np.load, or steps aside.

``load_sequence`` reads plain archives (every member stored, as ``np.savez`` writes them)
from the memory-mapped file with its own zip directory reader, and hands anything else to the
reference path (``np.load`` and zipfile). Either way the outcome must be the reference path's:
the same arrays, or the same error, word for word.
"""

from __future__ import annotations

import io
import mmap
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.amass import (
    POSE_SLICES,
    POSES_USED,
    AmassFormatError,
    _load_with_numpy,
    load_sequence,
)
from vposer_data.models_used import motion_model
from vposer_data.npz_reader import MappedArchive, member_checksums
from vposer_data.synthetic import write_motion_npz, write_npz
from vposer_data.zip_directory import Fallback, stored_members

FAMILIES = ("smpl", "smplh", "smplx")
NAMES = {"smpl": "a_poses.npz", "smplh": "a_poses.npz", "smplx": "a_stageii.npz"}
CENTRAL = struct.Struct("<4s4B4HL2L5H2L")


def write_motion(folder: Path, family: str, frames: int = 40, compress: bool = False) -> Path:
    rng = np.random.default_rng(7)
    path = folder / f"{family}_{NAMES[family]}"
    write_motion_npz(path, family, frames, 120.0, "male", rng.normal(size=16), rng, compress)
    return path


def np_savez_copy(source: Path, target: Path, compress: bool = False) -> Path:
    """The same arrays written by numpy itself (np.savez or np.savez_compressed)."""
    with np.load(source, allow_pickle=True) as archive:
        arrays = {key: archive[key] for key in archive.files}
    (np.savez_compressed if compress else np.savez)(target, **arrays)
    return target


def outcome(load: Callable[[Path], Any], path: Path) -> tuple[Any, ...]:
    """What a reader gives for a file: every field of the sequence, or the error and its words."""
    try:
        sequence = load(path)
    except Exception as exc:
        return ("error", type(exc), str(exc))
    fields = {}
    for name, value in vars(sequence).items():
        if isinstance(value, np.ndarray):
            value = (value.dtype.str, value.shape, value.tobytes(), value.flags.writeable)
        fields[name] = value
    return ("ok", fields)


def reference(path: Path) -> Any:
    return _load_with_numpy(path, None)


def assert_same_as_reference(path: Path) -> tuple[Any, ...]:
    found = outcome(load_sequence, path)
    assert found == outcome(reference, path)
    return found


def directory(path: Path) -> dict[str, tuple[int, int, int]]:
    """zipfile's view of each member: local header offset, size as stored, CRC-32."""
    with zipfile.ZipFile(path) as archive:
        return {i.filename: (i.header_offset, i.compress_size, i.CRC) for i in archive.infolist()}


def fast_directory(path: Path) -> dict[str, tuple[int, int, int]]:
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return {name: (s.header_offset, s.size, s.crc) for name, s in stored_members(m).items()}


def with_zip64_directory(source: Path, target: Path, sentinels: bool) -> Path:
    """A copy whose central directory carries a zip64 extra field in every entry and ends with
    a zip64 end record and locator, as zipfile writes archives past 4 GiB. With ``sentinels``
    the 32-bit fields say 0xFFFFFFFF and the values are in the extra field; without, the
    extra field repeats them (and zipfile, like the fast reader, ignores it)."""
    data = source.read_bytes()
    with zipfile.ZipFile(source) as archive:
        start, count = archive.start_dir, len(archive.infolist())
    entries, offset = b"", start
    for _ in range(count):
        fields = list(CENTRAL.unpack_from(data, offset))
        name_stop = offset + CENTRAL.size + fields[12]
        extra_stop = name_stop + fields[13]
        name = data[offset + CENTRAL.size : name_stop]
        tail = data[name_stop : extra_stop + fields[14]]  # the old extra field and comment
        zip64 = struct.pack("<HHQQQ", 1, 24, fields[11], fields[10], fields[18])
        if sentinels:
            fields[10] = fields[11] = fields[18] = 0xFFFF_FFFF
        fields[13] += len(zip64)
        entries += CENTRAL.pack(*fields) + name + zip64 + tail
        offset = extra_stop + fields[14]  # the next original entry
    record = start + len(entries)
    end64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(entries), start
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, record, 1)
    size, where = (0xFFFF_FFFF, 0xFFFF_FFFF) if sentinels else (len(entries), start)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, size, where, 0)
    target.write_bytes(data[:start] + entries + end64 + locator + end)
    return target


def damaged_copy(
    source: Path,
    path: Path,
    zip64: bool | None = None,
    fraction: float = 0.0,
    tail: bool = False,
    mask: int | None = None,
) -> Path:
    """``source`` (given a zip64 directory first, with or without sentinels, unless ``zip64``
    is None) with the byte at ``fraction`` of the file, or (``tail``) of its zip directory and
    end records, flipped by ``mask``, or (no ``mask``) the file cut there; written to
    ``path``."""
    if zip64 is not None:
        source = with_zip64_directory(source, path.with_name(f"zip64_{path.name}"), zip64)
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        start = archive.start_dir if tail else 0
    at = start + int(fraction * (len(data) - start))
    if mask is None:
        data = data[:at]
    else:
        data[at] ^= mask
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("zip_originals")
    return {family: write_motion(folder, family) for family in FAMILIES}


# --- plain archives: read by the fast reader, with zipfile's values --------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("writer", ["write_npz", "np.savez"])
def test_the_fast_reader_agrees_with_zipfile_on_plain_archives(
    tmp_path: Path, originals: dict[str, Path], family: str, writer: str
) -> None:
    path = originals[family]
    if writer == "np.savez":
        path = np_savez_copy(path, tmp_path / path.name)
    assert fast_directory(path) == directory(path)
    assert MappedArchive.open(path) is not None  # the fast path is taken
    assert assert_same_as_reference(path)[0] == "ok"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("sentinels", [True, False])
def test_zip64_directories_are_read_as_zipfile_reads_them(
    tmp_path: Path, originals: dict[str, Path], family: str, sentinels: bool
) -> None:
    path = with_zip64_directory(originals[family], tmp_path / NAMES[family], sentinels)
    assert directory(path) == directory(originals[family])  # zipfile: the same archive
    assert fast_directory(path) == directory(path)
    assert MappedArchive.open(path) is not None
    found, original = assert_same_as_reference(path), outcome(reference, originals[family])
    assert found[0] == original[0] == "ok"
    assert found[1] | {"path": None} == original[1] | {"path": None}


# --- anything else: the reference path reads it ----------------------------------------------


def test_a_deflated_archive_goes_to_the_reference_path(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    path = np_savez_copy(originals["smplh"], tmp_path / "c_poses.npz", compress=True)
    assert MappedArchive.open(path) is None
    assert assert_same_as_reference(path)[0] == "ok"


def test_one_deflated_member_sends_the_whole_archive_to_the_reference_path(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    path = tmp_path / "mixed_poses.npz"
    with zipfile.ZipFile(originals["smplh"]) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            method = zipfile.ZIP_DEFLATED if info.filename == "betas.npy" else zipfile.ZIP_STORED
            target.writestr(info.filename, source.read(info), compress_type=method)
    assert MappedArchive.open(path) is None
    assert assert_same_as_reference(path)[0] == "ok"


def test_an_archive_with_a_comment_goes_to_the_reference_path(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    path = tmp_path / "comment_poses.npz"
    path.write_bytes(originals["smplh"].read_bytes())
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"exported"
    assert MappedArchive.open(path) is None
    assert assert_same_as_reference(path)[0] == "ok"


def test_an_archive_after_other_bytes_goes_to_the_reference_path(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    path = tmp_path / "prefixed_poses.npz"
    path.write_bytes(b"PK\x03\x04" + bytes(60) + originals["smplh"].read_bytes())
    assert MappedArchive.open(path) is None
    assert_same_as_reference(path)


def flag_members(source: Path, target: Path, flags: int) -> Path:
    """A copy whose central directory entries carry these flag bits."""
    data = bytearray(source.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        struct.pack_into("<H", data, at + 8, flags)
        at = data.find(b"PK\x01\x02", at + 4)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("flags", [0x0001, 0x0008, 0x0800 | 0x0002])
def test_flagged_members_go_to_the_reference_path(
    tmp_path: Path, originals: dict[str, Path], flags: int
) -> None:
    path = flag_members(originals["smplh"], tmp_path / "flagged_poses.npz", flags)
    with pytest.raises(Fallback):
        fast_directory(path)
    assert_same_as_reference(path)


@pytest.mark.parametrize("method", [99, 14])  # unknown to zipfile; LZMA, which numpy never writes
def test_a_member_of_a_method_zipfile_refuses_is_a_damaged_file(
    tmp_path: Path, originals: dict[str, Path], method: int
) -> None:
    """A deflated archive whose ``trans`` entry names another compression method (a damaged
    directory): zipfile refuses it or fails to inflate it; Stage I reports the file as
    damaged, naming the key (not a NotImplementedError out of the run), and the scan for its
    model, which reads only ``poses`` and ``gender``, still finds its family and gender."""
    path = np_savez_copy(originals["smplh"], tmp_path / "method_poses.npz", compress=True)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("trans.npy")
        start = archive.start_dir
    data[info.header_offset + 8 : info.header_offset + 10] = method.to_bytes(2, "little")
    entry = start
    while data[entry + 46 : entry + 46 + len(b"trans.npy")] != b"trans.npy":
        name_length, extra_length, comment_length = struct.unpack_from("<3H", data, entry + 28)
        entry += 46 + name_length + extra_length + comment_length
    data[entry + 10 : entry + 12] = method.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(AmassFormatError, match="trans"):
        load_sequence(path)
    assert motion_model(path) == ("smplh", "male")  # its model is looked for all the same


def test_utf8_flagged_names_are_read_and_bad_ones_step_aside(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    path = flag_members(originals["smplh"], tmp_path / "utf8_poses.npz", 0x0800)
    assert fast_directory(path) == directory(path)
    assert assert_same_as_reference(path)[0] == "ok"
    data = bytearray(path.read_bytes())
    at = data.rfind(b"gender.npy")  # the central directory's copy of the name
    data[at] = 0xFF  # not UTF-8: zipfile refuses the archive
    bad = tmp_path / "bad_utf8_poses.npz"
    bad.write_bytes(bytes(data))
    assert MappedArchive.open(bad) is None
    assert assert_same_as_reference(bad)[0] == "error"


def test_a_repeated_member_name_goes_to_the_reference_path(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    path = tmp_path / "twice_poses.npz"
    path.write_bytes(originals["smplh"].read_bytes())
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        archive.writestr("betas.npy", archive.read("betas.npy"))
    assert MappedArchive.open(path) is None
    assert_same_as_reference(path)


def test_a_member_needing_a_newer_zip_version_gives_the_reference_error(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    data = bytearray(originals["smplh"].read_bytes())
    data[data.rfind(b"PK\x01\x02") + 6] = 64  # zipfile reads up to version 6.3
    path = tmp_path / "new_poses.npz"
    path.write_bytes(bytes(data))
    assert MappedArchive.open(path) is None
    found = assert_same_as_reference(path)
    assert found[:2] == ("error", AmassFormatError)  # naming the file, not zipfile's error
    assert "zip file version" in found[2] and str(path) in found[2]


def test_a_zip64_archive_on_several_disks_gives_the_reference_error(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    path = with_zip64_directory(originals["smplh"], tmp_path / "disks_poses.npz", True)
    data = bytearray(path.read_bytes())
    struct.pack_into("<L", data, len(data) - 22 - 4, 2)  # the locator's count of disks
    path.write_bytes(bytes(data))
    assert MappedArchive.open(path) is None
    found = assert_same_as_reference(path)
    assert found[0] == "error" and "multiple disks" in found[2]


@pytest.mark.parametrize("content", [b"", b"P", b"PK\x05\x06" + bytes(18), b"not a zip" * 10])
def test_files_that_are_not_plain_archives_give_the_reference_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "odd_poses.npz"
    path.write_bytes(content)
    assert MappedArchive.open(path) is None
    assert assert_same_as_reference(path)[0] == "error"


def test_a_missing_file_gives_the_reference_error(tmp_path: Path) -> None:
    path = tmp_path / "gone_poses.npz"
    assert MappedArchive.open(path) is None
    with pytest.raises(AmassFormatError):
        load_sequence(path)


# --- properties: damage anywhere gives the reference path's outcome --------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For hypothesis examples (function-scoped tmp_path is not reset between them)."""
    return tmp_path_factory.mktemp("zip_scratch")


def test_a_zip64_directory_placing_members_before_the_file_is_a_damaged_file(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    """A flipped bit in a zip64 end record makes zipfile place every member at a negative
    offset (found by the property test of the scan for body models): Stage I reports the
    file as damaged (a struct.error escaped from the mapped member before)."""
    source = with_zip64_directory(originals["smplh"], tmp_path / "zip64_poses.npz", True)
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        start = archive.start_dir
    data[start + 559] ^= 1  # the zip64 end record's directory offset
    path = tmp_path / "a_poses.npz"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert min(info.header_offset for info in archive.infolist()) < 0
    with pytest.raises(AmassFormatError, match="no zip entry header"):
        load_sequence(path)
    assert_same_as_reference(path)


@given(
    family=st.sampled_from(FAMILIES),
    zip64=st.sampled_from([None, True, False]),
    fraction=st.floats(0, 1, exclude_max=True),
    tail=st.booleans(),
    mask=st.integers(1, 255),
)
@settings(max_examples=150, deadline=None)
def test_any_flipped_byte_gives_the_reference_outcome(
    originals: dict[str, Path],
    scratch: Path,
    family: str,
    zip64: bool | None,
    fraction: float,
    tail: bool,
    mask: int,
) -> None:
    """A byte flipped anywhere, or (``tail``) in the zip directory and end records, where
    the fast reader's own parsing is."""
    path = damaged_copy(originals[family], scratch / NAMES[family], zip64, fraction, tail, mask)
    assert_same_as_reference(path)


@given(family=st.sampled_from(FAMILIES), fraction=st.floats(0, 1, exclude_max=True))
@settings(max_examples=60, deadline=None)
def test_any_truncation_gives_the_reference_outcome(
    originals: dict[str, Path], scratch: Path, family: str, fraction: float
) -> None:
    path = damaged_copy(originals[family], scratch / f"cut_{NAMES[family]}", fraction=fraction)
    assert assert_same_as_reference(path)[0] == "error"


# --- the members' CRC-32s from the zip directory alone ---------------------------------------


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "deflated"])
def test_member_checksums_are_the_crc32_of_each_npy_member(tmp_path: Path, save: Any) -> None:
    """Each member's CRC-32, computed here from the ``.npy`` bytes numpy writes for the array
    (zlib over np.lib.format output, no zip reader involved)."""
    rng = np.random.default_rng(5)
    arrays = {"poses": rng.normal(size=(7, 156)), "gender": np.array("female"), "b": np.arange(3)}
    save(tmp_path / "a.npz", **arrays)
    expected = []
    for key, array in arrays.items():
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        expected.append((f"{key}.npy", zlib.crc32(buffer.getvalue())))
    assert member_checksums(tmp_path / "a.npz") == sorted(expected)


def test_member_checksums_read_once_are_taken_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory read when a motion is looked at (for its body model) gives the input
    fingerprint its checksums, without zipfile reading it again; a file changed since (other
    bytes, size or times) is read again."""
    path = write_motion(tmp_path, "smplh")
    expected = member_checksums(path)  # through zipfile
    assert motion_model(path) == ("smplh", "male")  # the scan for its body model

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise zipfile.BadZipFile("zipfile was asked again")

    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZipFile", refused)
        assert member_checksums(path) == expected  # remembered
    np.savez(path, poses=np.zeros((5, 156)), gender=np.array("male"))
    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZipFile", refused)
        assert member_checksums(path) is None  # changed: read again (here refused)
    changed = member_checksums(path)
    assert changed is not None and changed != expected
    assert [name for name, _ in changed] == ["gender.npy", "poses.npy"]


@pytest.mark.parametrize("content", [b"", b"PK", b"PK\x05\x06" + bytes(17), b"not a zip" * 10])
def test_member_checksums_of_what_is_no_zip_is_none(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "a.npz"
    path.write_bytes(content)
    assert member_checksums(path) is None
    path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty archive is a zip
    assert member_checksums(path) == []
    assert member_checksums(tmp_path / "missing.npz") is None
    assert member_checksums(tmp_path) is None  # a folder


def test_member_checksums_of_directories_zipfile_refuses_are_none(
    tmp_path: Path, originals: dict[str, Path]
) -> None:
    """Each way zipfile refuses a directory (NotImplementedError for a newer zip version,
    UnicodeDecodeError for a bad UTF-8 name, BadZipFile for several disks) gives None."""
    newer = bytearray(originals["smplh"].read_bytes())
    newer[newer.rfind(b"PK\x01\x02") + 6] = 64
    bad_name = bytearray(
        flag_members(originals["smplh"], tmp_path / "utf8.npz", 0x0800).read_bytes()
    )
    bad_name[bad_name.rfind(b"gender.npy")] = 0xFF
    disks = bytearray(
        with_zip64_directory(originals["smplh"], tmp_path / "z64.npz", True).read_bytes()
    )
    struct.pack_into("<L", disks, len(disks) - 22 - 4, 2)
    for name, data in {"newer": newer, "bad_name": bad_name, "disks": disks}.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(bytes(data))
        assert member_checksums(path) is None, name


@given(
    family=st.sampled_from(FAMILIES),
    fraction=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
    cut=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_member_checksums_of_a_damaged_directory_never_raise(
    originals: dict[str, Path], scratch: Path, family: str, fraction: float, mask: int, cut: bool
) -> None:
    """A byte flipped in the zip directory or end records, or the file cut anywhere: a list
    or None, never an exception (a rerun's input check must not crash on a bad file)."""
    data = bytearray(originals[family].read_bytes())
    with zipfile.ZipFile(originals[family]) as archive:
        start = archive.start_dir
    if cut:
        data = data[: int(fraction * len(data))]
    else:
        data[start + int(fraction * (len(data) - start))] ^= mask
    path = scratch / f"crc_{NAMES[family]}"
    path.write_bytes(bytes(data))
    found = member_checksums(path)
    assert found is None or all(isinstance(crc, int) for _, crc in found)


# --- the finite check of poses ----------------------------------------------------------------


def test_the_parts_tile_the_columns_of_poses_checked_at_once() -> None:
    for family, parts in POSE_SLICES.items():
        columns = sorted(c for part in parts.values() for c in range(part.stop)[part])
        assert columns == list(range(POSES_USED[family])), family


def test_nan_in_the_columns_smpl_leaves_unused_is_accepted(tmp_path: Path) -> None:
    source = write_motion(tmp_path, "smpl")
    with np.load(source) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["poses"][:, 66:72] = np.nan
    path = tmp_path / "nan_tail_poses.npz"
    write_npz(path, arrays)
    assert assert_same_as_reference(path)[0] == "ok"


@pytest.mark.parametrize(
    ("family", "columns", "named", "count"),
    [
        ("smplh", [100, 101], "pose_hand", 2),
        ("smplh", [1, 100], "root_orient", 1),  # the first part in order is named
        ("smplx", [67], "pose_jaw", 1),
        ("smplx", [70, 71, 72], "pose_eye", 3),
        ("smpl", [5, 70], "pose_body", 1),  # column 70 is unused by SMPL
    ],
)
def test_non_finite_poses_name_the_part_and_count_its_values(
    tmp_path: Path, family: str, columns: list[int], named: str, count: int
) -> None:
    source = write_motion(tmp_path, family)
    with np.load(source, allow_pickle=True) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["poses"][3, columns] = np.inf
    path = tmp_path / NAMES[family]
    write_npz(path, arrays)
    found = assert_same_as_reference(path)
    assert found[0] == "error"
    assert f"key '{named}' has {count} non-finite values" in found[2]
