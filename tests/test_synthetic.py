"""The synthetic AMASS tree: loadable, exact in size, deterministic, realistic in its quirks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from vposer_data.amass import AmassSequence, NotAMotionError, load_sequence
from vposer_data.synthetic import (
    RELEASES,
    SyntheticSummary,
    write_amass_tree,
    write_motion_npz,
    write_npz,
)

FAMILY = {"smplh": "smplh", "smplx": "smplx"}
MOTION_SUFFIX = {"smplh": "_poses.npz", "smplx": "_stageii.npz"}


def is_motion_file(path: Path) -> bool:
    return (
        path.suffix == ".npz" and path.name != "shape.npz" and not path.name.endswith("_stagei.npz")
    )


def motion_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.npz") if is_motion_file(p))


def load_all(root: Path) -> list[AmassSequence]:
    return [load_sequence(p) for p in motion_files(root)]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def raw_key(path: Path, key: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return archive[key]


def test_every_motion_file_loads_with_the_release_family(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    release, root, summary = release_tree
    files = motion_files(root)
    assert files
    assert all(p.name.endswith(MOTION_SUFFIX[release]) for p in files)
    sequences = [load_sequence(p) for p in files]
    assert {s.family for s in sequences} == {FAMILY[release]}
    assert summary.motion_files == len(files)
    assert summary.release == release
    assert summary.root == str(root)
    for seq in sequences:
        assert seq.betas.shape == (16,)
        assert seq.trans.shape == (seq.num_frames, 3)
        assert seq.pose_hand is not None and seq.pose_hand.shape == (seq.num_frames, 90)
        if release == "smplh":
            assert seq.dmpls is not None and seq.dmpls.shape == (seq.num_frames, 8)
        else:
            assert seq.pose_jaw is not None and seq.pose_eye is not None


def test_non_motion_files_are_present_and_refused_as_non_motions(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    release, root, _ = release_tree
    shape_files = [p for p in root.rglob("*.npz") if not is_motion_file(p)]
    assert shape_files
    if release == "smplh":
        assert {p.name for p in shape_files} == {"shape.npz"}
    else:
        names = {p.name for p in shape_files}
        assert names <= {"male_stagei.npz", "female_stagei.npz", "neutral_stagei.npz"}
        assert {"male_stagei.npz", "female_stagei.npz"} <= names
    for path in shape_files:
        with pytest.raises(NotAMotionError):
            load_sequence(path)
    for folder in RELEASES[release].values():
        assert (root / folder / "LICENSE.txt").is_file()


def test_folder_names_follow_the_release(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    release, root, summary = release_tree
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert folders == sorted(RELEASES[release].values())
    assert set(summary.datasets) == set(folders)
    for folder, count in summary.datasets.items():
        assert count == len(motion_files(root / folder)) >= 1


def test_frame_total_equals_the_request(
    release_tree: tuple[str, Path, SyntheticSummary], small_tree_frames: int
) -> None:
    _, root, summary = release_tree
    assert small_tree_frames == 8000
    assert summary.total_frames == small_tree_frames
    assert sum(s.num_frames for s in load_all(root)) == small_tree_frames


@pytest.mark.parametrize("total", [3840, 5000, 12_345])
def test_frame_total_is_exact_for_other_sizes(tmp_path: Path, total: int) -> None:
    summary = write_amass_tree(tmp_path, total_frames=total, release="smplh", seed=3)
    assert summary.total_frames == total
    assert sum(s.num_frames for s in load_all(tmp_path)) == total


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_same_seed_gives_identical_bytes(tmp_path: Path, release: str) -> None:
    a = write_amass_tree(tmp_path / "a", total_frames=4000, release=release, seed=11)
    b = write_amass_tree(tmp_path / "b", total_frames=4000, release=release, seed=11)
    bytes_a, bytes_b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert len(bytes_a) > 30
    assert bytes_a.keys() == bytes_b.keys()
    for rel, data in bytes_a.items():
        assert data == bytes_b[rel], rel
    assert (a.motion_files, a.total_frames, a.datasets) == (
        b.motion_files,
        b.total_frames,
        b.datasets,
    )


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_different_seed_gives_different_data(tmp_path: Path, release: str) -> None:
    write_amass_tree(tmp_path / "a", total_frames=4000, release=release, seed=11)
    write_amass_tree(tmp_path / "b", total_frames=4000, release=release, seed=12)
    bytes_a, bytes_b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert bytes_a != bytes_b
    common_motions = [r for r in bytes_a.keys() & bytes_b.keys() if is_motion_file(Path(r))]
    assert common_motions
    assert all(bytes_a[r] != bytes_b[r] for r in common_motions)


def test_rewriting_a_tree_in_place_gives_the_same_bytes(tmp_path: Path) -> None:
    write_amass_tree(tmp_path, total_frames=4000, release="smplx", seed=5)
    before = tree_bytes(tmp_path)
    write_amass_tree(tmp_path, total_frames=4000, release="smplx", seed=5)
    assert tree_bytes(tmp_path) == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_frame_rates_are_the_real_ones_including_non_integers(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    _, root, _ = release_tree
    rates = {s.fps for s in load_all(root)}
    assert {60.0, 100.0, 120.0, 250.0} <= rates
    non_integer = {r for r in rates if r != round(r)}
    assert non_integer, rates
    assert all(abs(r - round(r)) < 1e-3 for r in non_integer)


def test_genders_are_stored_as_str_and_as_bytes(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    _, root, _ = release_tree
    kinds = {raw_key(p, "gender").dtype.kind for p in motion_files(root)}
    assert kinds == {"U", "S"}
    assert {s.gender for s in load_all(root)} >= {"male", "female"}


def test_smplx_files_have_object_arrays_and_nan_markers(smplx_tree: Path) -> None:
    files = motion_files(smplx_tree)
    nan_seen = False
    for path in files:
        with np.load(path, allow_pickle=False) as archive:
            assert {"markers_latent_vids", "markers", "root_orient", "pose_body"} <= set(
                archive.files
            )
            with pytest.raises(ValueError, match="allow_pickle"):
                archive["markers_latent_vids"]
            nan_seen |= bool(np.isnan(archive["markers"]).any())
            # the split keys agree with poses
            poses = archive["poses"]
            np.testing.assert_array_equal(archive["pose_body"], poses[:, 3:66])
            np.testing.assert_array_equal(archive["pose_hand"], poses[:, 75:165])
    assert nan_seen


def test_names_with_spaces_and_deeper_nesting(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    release, root, _ = release_tree
    files = [p.relative_to(root) for p in motion_files(root)]
    assert any(" " in p.name for p in files)
    depths = {len(p.parts) for p in files}
    assert depths == {3, 4}  # dataset/subject/file and dataset/subject/session/file
    ekut = RELEASES[release]["EKUT"]
    assert all(len(p.parts) == 4 for p in files if p.parts[0] == ekut)


def test_motion_is_smooth_and_within_joint_limits(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    _, root, _ = release_tree
    for seq in load_all(root):
        step = np.abs(np.diff(seq.pose_body, axis=0)).max()
        assert step < 0.2, (seq.path, seq.fps, step)
        assert seq.pose_hand is not None
        assert np.abs(np.diff(seq.pose_hand, axis=0)).max() < 0.2
        for part in (seq.pose_body, seq.pose_hand, seq.pose_jaw, seq.pose_eye):
            if part is not None:
                assert np.abs(part).max() < np.pi
        # root_orient is a continuous axis-angle path: its norm may pass pi (a valid rotation,
        # as MoSh output can be), but it never jumps and stays below 2 pi
        assert np.abs(np.diff(seq.root_orient, axis=0)).max() < 0.2
        assert np.linalg.norm(seq.root_orient, axis=1).max() < 2 * np.pi
        assert np.abs(np.diff(seq.trans, axis=0)).max() < 0.1
        # not a constant: the body does move
        assert np.ptp(seq.pose_body, axis=0).max() > 0.05


def test_root_orientation_is_upright_in_a_z_up_world(
    release_tree: tuple[str, Path, SyntheticSummary],
) -> None:
    """Rotating the body's up axis (y) by root_orient gives roughly world up (z)."""
    _, root, _ = release_tree
    for seq in load_all(root):
        rotvec = seq.root_orient
        angle = np.linalg.norm(rotvec, axis=1, keepdims=True)
        axis = rotvec / np.maximum(angle, 1e-12)
        y = np.array([0.0, 1.0, 0.0])
        # Rodrigues: v cos + (k x v) sin + k (k.v)(1 - cos)
        up = (
            y * np.cos(angle)
            + np.cross(axis, y) * np.sin(angle)
            + axis * (axis @ y)[:, None] * (1 - np.cos(angle))
        )
        assert up[:, 2].min() > 0.9, seq.path


@pytest.mark.parametrize(
    ("family", "width", "betas_width"), [("smpl", 72, 10), ("smplh", 156, 16), ("smplx", 165, 16)]
)
def test_write_motion_npz_writes_each_family(
    tmp_path: Path, family: str, width: int, betas_width: int
) -> None:
    path = tmp_path / f"one_{family}.npz"
    betas = np.random.default_rng(0).normal(0, 1, 16)
    write_motion_npz(path, family, 90, 59.99998, b"female", betas, np.random.default_rng(1))
    assert raw_key(path, "poses").shape == (90, width)
    seq = load_sequence(path)
    assert seq.family == family
    assert seq.num_frames == 90
    assert seq.fps == 59.99998
    assert seq.gender == "female"
    np.testing.assert_array_equal(seq.betas, betas[:betas_width])


def test_write_motion_npz_refuses_an_unknown_family(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="family"):
        write_motion_npz(
            tmp_path / "x.npz", "smplq", 10, 60.0, "male", np.zeros(16), np.random.default_rng(0)
        )


def test_write_amass_tree_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="release"):
        write_amass_tree(tmp_path, total_frames=8000, release="smplq")
    with pytest.raises(ValueError, match="total_frames"):
        write_amass_tree(tmp_path, total_frames=100, release="smplh")


def test_compressed_tree_loads_and_is_deflated(tmp_path: Path) -> None:
    summary = write_amass_tree(tmp_path, total_frames=4000, release="smplx", seed=2, compress=True)
    files = motion_files(tmp_path)
    with zipfile.ZipFile(files[0]) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert sum(load_sequence(p).num_frames for p in files) == summary.total_frames == 4000


def test_write_npz_is_readable_deterministic_and_atomic(tmp_path: Path) -> None:
    arrays = {
        "a": np.arange(12.0).reshape(3, 4),
        "b": np.array(b"female"),
        "c": np.array("male"),
        "d": np.array([{"x": 1}]),
    }
    for compress in (False, True):
        one, two = tmp_path / f"one{compress}.npz", tmp_path / f"two{compress}.npz"
        write_npz(one, arrays, compress=compress)
        write_npz(two, arrays, compress=compress)
        assert one.read_bytes() == two.read_bytes()
        with np.load(one, allow_pickle=False) as archive:
            assert archive.files == ["a", "b", "c", "d"]
            np.testing.assert_array_equal(archive["a"], arrays["a"])
            assert archive["b"].item() == b"female"
            assert archive["c"].item() == "male"
        with np.load(one, allow_pickle=True) as archive:
            assert archive["d"][0] == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "oneFalse.npz",
        "oneTrue.npz",
        "twoFalse.npz",
        "twoTrue.npz",
    ]
