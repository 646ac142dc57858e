"""Damaged AMASS files are refused: every member read is checked against its zip CRC-32.

Members stored uncompressed, whatever their size, are memory-mapped by the reader (no
zipfile read, so no CRC check of zipfile's); the reader checks them itself. Deflated members
go through zipfile, read whole so that the check covers every byte. Files here are realistic:
thousands of frames, so that ``poses``, ``trans`` and ``dmpls`` are megabytes, as in AMASS.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import prepare, read_manifest
from helpers import write_tree as make_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.amass import AmassFormatError, load_sequence
from vposer_data.synthetic import write_motion_npz, write_npz

FRAMES = 3000  # realistic: trans (3000 x 3 float64) is 72 kB, poses 3.7 MB
BETAS = 16
NAMES = {"smpl": "a_poses.npz", "smplh": "a_poses.npz", "smplx": "a_stageii.npz"}


def write_motion(folder: Path, family: str, frames: int = FRAMES, compress: bool = False) -> Path:
    rng = np.random.default_rng(5)
    path = folder / f"{family}_{NAMES[family]}"
    write_motion_npz(path, family, frames, 120.0, "female", rng.normal(size=BETAS), rng, compress)
    return path


def span(path: Path, key: str) -> tuple[int, int]:
    """(offset in the file, size) of a member's bytes as stored: .npy header and data."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
    assert local[:4] == b"PK\x03\x04"
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.compress_size


def data_offset(path: Path, key: str) -> int:
    """Where the array data of a member starts within its stored bytes (the header's size)."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
        if np.lib.format.read_magic(member) == (1, 0):
            np.lib.format.read_array_header_1_0(member)
        else:
            np.lib.format.read_array_header_2_0(member)
        return member.tell()


def assert_mapped(path: Path, key: str) -> None:
    """The member is stored uncompressed, so the reader maps it (whatever its size)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    assert info.compress_type == zipfile.ZIP_STORED


def assert_not_mapped(path: Path, key: str) -> None:
    """The member is deflated, so the reader reads it through zipfile."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    assert info.compress_type != zipfile.ZIP_STORED


def damaged_copy(source: Path, target: Path, at: int, new: bytes) -> Path:
    data = bytearray(source.read_bytes())
    assert bytes(data[at : at + len(new)]) != new, "the damage must change the bytes"
    data[at : at + len(new)] = new
    target.write_bytes(bytes(data))
    return target


def assert_damaged(path: Path, key: str, *words: str) -> AmassFormatError:
    with pytest.raises(AmassFormatError) as info:
        load_sequence(path)
    error = info.value
    message = str(error)
    assert error.path == str(path) and message.startswith(str(path))
    assert f"key '{key}' (member {key}.npy) is damaged" in message, message
    assert "download it again" in message
    for word in words:
        assert word in message, (word, message)
    assert not isinstance(error.__cause__ or error.__context__, zipfile.BadZipFile)
    return error


def np_load_refuses(path: Path, key: str) -> bool:
    try:
        with np.load(path, allow_pickle=False) as archive:
            archive[key]
    except (zipfile.BadZipFile, ValueError, OSError):
        return True
    return False


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("originals")
    return {family: write_motion(folder, family) for family in NAMES}


# --- valid files: the check passes, values are np.load's ------------------------------------


@pytest.mark.parametrize("family", sorted(NAMES))
def test_a_valid_file_loads_every_key_equal_to_np_load(
    originals: dict[str, Path], family: str
) -> None:
    path = originals[family]
    assert_mapped(path, "poses")
    assert_mapped(path, "trans")
    seq = load_sequence(path)
    with np.load(path, allow_pickle=False) as archive:
        expected = {key: archive[key] for key in ("poses", "trans", "betas")}
        dmpls = archive["dmpls"] if "dmpls" in archive.files else None
    np.testing.assert_array_equal(seq.root_orient, expected["poses"][:, 0:3])
    np.testing.assert_array_equal(seq.pose_body, expected["poses"][:, 3:66])
    if family == "smplh":
        np.testing.assert_array_equal(seq.pose_hand, expected["poses"][:, 66:156])
        np.testing.assert_array_equal(seq.dmpls, dmpls)
    if family == "smplx":
        np.testing.assert_array_equal(seq.pose_jaw, expected["poses"][:, 66:69])
        np.testing.assert_array_equal(seq.pose_eye, expected["poses"][:, 69:75])
        np.testing.assert_array_equal(seq.pose_hand, expected["poses"][:, 75:165])
    np.testing.assert_array_equal(seq.trans, expected["trans"])
    np.testing.assert_array_equal(seq.betas, expected["betas"])
    assert seq.num_frames == FRAMES and seq.family == family


def test_smplx_split_keys_mapped_equal_np_load(tmp_path: Path) -> None:
    """A file with the SMPL-X split keys and no poses: each split key is its own member."""
    source = write_motion(tmp_path, "smplx")
    with np.load(source, allow_pickle=False) as archive:
        arrays = {
            key: archive[key]
            for key in archive.files
            if key not in ("poses", "latent_labels", "labels", "markers_latent_vids")
        }
    path = tmp_path / "split_stageii.npz"
    write_npz(path, arrays)
    for key in ("root_orient", "pose_body", "pose_hand", "trans"):
        assert_mapped(path, key)
    seq = load_sequence(path)
    for key in ("root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye", "trans"):
        np.testing.assert_array_equal(getattr(seq, key), arrays[key])


def test_a_wide_betas_is_mapped_and_loads(tmp_path: Path, originals: dict[str, Path]) -> None:
    path = wide_betas_file(tmp_path, originals["smplh"])
    assert_mapped(path, "betas")
    with np.load(path) as archive:
        np.testing.assert_array_equal(load_sequence(path).betas, archive["betas"][0])


def wide_betas_file(folder: Path, source: Path) -> Path:
    """The source with betas of shape (1, 9000): 72 kB, mapped like the pose members."""
    with np.load(source, allow_pickle=False) as archive:
        arrays: dict[str, Any] = {key: archive[key] for key in archive.files}
    arrays["betas"] = np.random.default_rng(2).normal(size=(1, 9000))
    path = folder / "wide_poses.npz"
    write_npz(path, arrays)
    return path


# --- damaged bytes in mapped members ---------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "key"),
    [
        ("smplh", "poses"),
        ("smplh", "trans"),
        ("smplh", "dmpls"),
        ("smplx", "poses"),
        ("smplx", "trans"),
        ("smpl", "poses"),
        ("smpl", "trans"),
    ],
)
def test_zeroed_bytes_in_a_mapped_member_are_refused(
    tmp_path: Path, originals: dict[str, Path], family: str, key: str
) -> None:
    source = originals[family]
    assert_mapped(source, key)
    start, size = span(source, key)
    length = min(2000, size // 4)
    path = damaged_copy(source, tmp_path / source.name, start + size // 2, bytes(length))
    assert np_load_refuses(path, key)  # the damage is real: np.load sees it too
    assert_damaged(path, key, "CRC-32 mismatch")


def test_the_reported_case_2700_smplh_frames_2000_zeroed_bytes(tmp_path: Path) -> None:
    source = write_motion(tmp_path, "smplh", frames=2700)
    assert_mapped(source, "poses")
    start, size = span(source, "poses")
    path = damaged_copy(source, tmp_path / "zeroed_poses.npz", start + size // 2, bytes(2000))
    with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
        np.load(path)["poses"]
    assert_damaged(path, "poses", "CRC-32 mismatch")


def test_damaged_wide_betas_is_refused(tmp_path: Path, originals: dict[str, Path]) -> None:
    source = wide_betas_file(tmp_path, originals["smplh"])
    start, size = span(source, "betas")
    path = damaged_copy(source, tmp_path / "bad_poses.npz", start + size - 100, bytes(8))
    assert_damaged(path, "betas", "CRC-32 mismatch")


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("magic", b"\x93NUMPY", b"\x93NUMPZ"),
        ("shape", b"(3000, 156)", b"(2000, 156)"),  # fewer frames: still a valid header
        ("dtype", b"'<f8'", b"'<f4'"),
        ("order", b"False", b"True "),
    ],
)
def test_damage_in_a_mapped_npy_header_is_refused(
    tmp_path: Path, originals: dict[str, Path], what: str, old: bytes, new: bytes
) -> None:
    source = originals["smplh"]
    start, _ = span(source, "poses")
    header = source.read_bytes()[start : start + data_offset(source, "poses")]
    at = start + header.index(old)
    path = damaged_copy(source, tmp_path / source.name, at, new)
    assert_damaged(path, "poses", "CRC-32 mismatch")


# --- small members (mapped too) and deflated ones (read through zipfile) -------------------


@pytest.mark.parametrize("where", ["data", "header"])
def test_damaged_betas_read_through_zipfile_is_refused(
    tmp_path: Path, originals: dict[str, Path], where: str
) -> None:
    source = originals["smplh"]
    assert_mapped(source, "betas")  # small members are mapped and checked too
    start, size = span(source, "betas")
    at = start + size - 8 if where == "data" else start + data_offset(source, "betas") - 20
    path = damaged_copy(source, tmp_path / source.name, at, b"\x00\x01\x02\x03")
    assert_damaged(path, "betas", "CRC-32 mismatch")


def test_a_header_announcing_fewer_rows_is_refused_where_np_load_accepts_it(
    tmp_path: Path,
) -> None:
    """np.load stops reading at the end of the array the header announces, so zipfile never
    reaches the end of the member to check its CRC (it reads ahead only 4 kB): the reader
    reads such members whole. trans of 2000 frames is 48 kB, under the mapping threshold."""
    source = write_motion(tmp_path, "smplh", frames=2000)
    assert_mapped(source, "trans")
    start, _ = span(source, "trans")
    header = source.read_bytes()[start : start + data_offset(source, "trans")]
    at = start + header.index(b"(2000, 3)")
    path = damaged_copy(source, tmp_path / "short_poses.npz", at, b"(1000, 3)")
    with np.load(path) as archive:
        assert archive["trans"].shape == (1000, 3)  # np.load: silently half the rows
    assert_damaged(path, "trans", "CRC-32 mismatch")


@pytest.mark.parametrize("key", ["poses", "trans"])
def test_damaged_bytes_in_a_deflated_member_are_refused(tmp_path: Path, key: str) -> None:
    source = write_motion(tmp_path, "smplh", compress=True)
    assert_not_mapped(source, key)
    start, size = span(source, key)
    path = damaged_copy(source, tmp_path / "bad_poses.npz", start + size // 2, b"\xff" * 64)
    error = assert_damaged(path, key)
    assert "CRC-32 mismatch" in error.problem or "cannot be inflated" in error.problem


# --- properties: any single changed byte is caught -------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For hypothesis examples (function-scoped tmp_path is not reset between them)."""
    return tmp_path_factory.mktemp("integrity_scratch")


@given(fraction=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
@settings(max_examples=60, deadline=None)
def test_any_flipped_byte_in_a_mapped_member_is_refused(
    originals: dict[str, Path], scratch: Path, fraction: float, mask: int
) -> None:
    source = originals["smplh"]
    start, size = span(source, "poses")
    at = start + int(fraction * size)
    data = bytearray(source.read_bytes())
    data[at] ^= mask
    path = scratch / "flipped_poses.npz"
    path.write_bytes(bytes(data))
    assert_damaged(path, "poses", "CRC-32 mismatch")


@given(fraction=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
@settings(max_examples=60, deadline=None)
def test_any_flipped_byte_in_a_small_member_is_refused(
    originals: dict[str, Path], scratch: Path, fraction: float, mask: int
) -> None:
    source = originals["smpl"]
    assert_mapped(source, "betas")
    start, size = span(source, "betas")  # 10 float64 coefficients after a 128-byte header
    data = bytearray(source.read_bytes())
    data[start + int(fraction * size)] ^= mask
    path = scratch / "flipped_small_poses.npz"
    path.write_bytes(bytes(data))
    assert_damaged(path, "betas", "CRC-32 mismatch")


# --- through prepare_vposer_datasets -----------------------------------------------------------


def damage_one(tree: Path) -> str:
    """Zero 2000 bytes in the middle of the mapped poses of one KIT motion; its relative path."""
    victim = sorted((tree / "KIT").rglob("*_poses.npz"))[0]
    assert_mapped(victim, "poses")
    start, size = span(victim, "poses")
    damaged_copy(victim, victim, start + size // 2, bytes(2000))
    return victim.relative_to(tree).as_posix()


def test_prepare_skips_a_damaged_file_with_its_reason(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "amass")
    relative = damage_one(tree)
    out = tmp_path / "out"
    result = prepare(tree, out)
    assert result.skipped["train"] == 1
    skipped = read_manifest(out)["stages"]["stage_I"]["train"]["skipped"]
    assert [s["path"] for s in skipped] == [relative]
    reason = skipped[0]["reason"]
    assert "key 'poses' (member poses.npy) is damaged: CRC-32 mismatch" in reason
    assert "download it again" in reason
    log = (out / "prepare.log").read_text(encoding="utf-8")
    assert relative in log and "CRC-32 mismatch" in log


def test_prepare_in_strict_mode_stops_naming_the_damaged_file(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "amass")
    relative = damage_one(tree)
    with pytest.raises(AmassFormatError, match="CRC-32 mismatch") as info:
        prepare(tree, tmp_path / "out", strict=True)
    assert info.value.path.endswith(relative)


def test_a_format_error_pickles_whole() -> None:
    """Raised in a worker process, it arrives as itself, path and problem kept."""
    import pickle

    from vposer_data.amass import NotAMotionError

    for kind in (AmassFormatError, NotAMotionError):
        error = pickle.loads(pickle.dumps(kind("CMU/01/01_01_poses.npz", "CRC-32 mismatch")))
        assert type(error) is kind
        assert (error.path, error.problem) == ("CMU/01/01_01_poses.npz", "CRC-32 mismatch")
        assert str(error) == "CMU/01/01_01_poses.npz: CRC-32 mismatch"
