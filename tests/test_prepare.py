"""What ``prepare_vposer_datasets`` writes: the Stage III tensors, their provenance back to the
AMASS files, the manifest's records, the sampling modes, the families and their errors."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import SPLITS, TreeCache, load_split, prepare, read_manifest
from torch.utils.data import DataLoader, Dataset

from vposer_data.errors import PrepareError
from vposer_data.prepare import prepare_vposer_datasets
from vposer_data.sampling import trim_bounds
from vposer_data.summary import summarize
from vposer_data.synthetic import write_motion_npz

POSE_FIELDS = ("root_orient", "pose_body", "pose_hand", "trans", "dmpls")
DEFAULT_FIELDS = {
    "root_orient": 3,
    "pose_body": 63,
    "pose_hand": 90,
    "dmpls": 8,
    "trans": 3,
    "betas": 16,
    "pose_body_matrot": 189,
    "gender": None,
    "seq_id": None,
    "frame_id": None,
}
INTEGER_FIELDS = ("gender", "seq_id", "frame_id")
GENDER_CODES = {"male": -1, "neutral": 0, "female": 1}


@pytest.fixture(scope="module")
def tree(amass_tree: TreeCache) -> Path:
    return amass_tree(10_000, seed=5)


@pytest.fixture(scope="module")
def prepared(tree: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("vposer") / "V02"
    result = prepare(tree, out)
    return out, result, read_manifest(out)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an AMASS file, without its object arrays (never unpickled)."""
    arrays = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError:  # an object array (SMPL-X marker labels)
                continue
    return arrays


def source_frames(tree: Path, manifest: dict, split: str, tensors: dict):
    """Yield (source path, source arrays, row indices, frame ids) per source file of a split."""
    files = manifest["stages"]["stage_I"][split]["files"]
    seq_id = tensors["seq_id"].numpy()
    frame_id = tensors["frame_id"].numpy()
    for index in np.unique(seq_id):
        rows = np.flatnonzero(seq_id == index)
        path = tree / files[index]["path"]
        yield path, load_npz(path), rows, frame_id[rows]


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues' formula in float64, (..., 3) -> (..., 3, 3)."""
    aa = aa.astype(np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.maximum(angle, 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*aa.shape[:-1], 3, 3)
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


# --------------------------------------------------------------------------- the default run


def test_result_lists_each_stage_of_each_split_once(prepared) -> None:
    out, result, _ = prepared
    assert result.ran == [
        f"{stage}/{split}" for stage in ("stage_I", "stage_II", "stage_III") for split in SPLITS
    ]
    assert set(result.samples) == set(SPLITS)
    assert all(n > 0 for n in result.samples.values())
    assert result.skipped == {split: 0 for split in SPLITS}
    assert result.split_dirs == {split: out / "stage_III" / split for split in SPLITS}
    assert set(result.seconds) == {"stage_I", "stage_II", "stage_III"}


def test_stage3_holds_only_one_pt_per_field_all_of_one_length(prepared) -> None:
    out, result, manifest = prepared
    for split in SPLITS:
        folder = out / "stage_III" / split
        names = sorted(os.listdir(folder))
        assert names and all(name.endswith(".pt") for name in names), names
        assert {"root_orient.pt", "pose_body.pt"} <= set(names)
        assert sorted(f"{f}.pt" for f in manifest["stages"]["stage_III"][split]["fields"]) == names
        lengths = {name: torch.load(folder / name, weights_only=True).shape[0] for name in names}
        assert set(lengths.values()) == {result.samples[split]}, lengths


def test_default_fields_shapes_and_dtypes(prepared) -> None:
    out, result, _ = prepared
    for split in SPLITS:
        tensors = load_split(out, split)
        assert set(tensors) == set(DEFAULT_FIELDS)
        n = result.samples[split]
        for name, width in DEFAULT_FIELDS.items():
            tensor = tensors[name]
            assert tuple(tensor.shape) == ((n,) if width is None else (n, width)), name
            if name in INTEGER_FIELDS:
                assert not tensor.is_floating_point() and tensor.dtype != torch.bool, name
            else:
                assert tensor.dtype == torch.float32, name
            assert tensor.is_contiguous()


def test_every_row_is_its_source_frame_cast_to_float32(tree: Path, prepared) -> None:
    out, _, manifest = prepared
    checked = 0
    for split in SPLITS:
        tensors = load_split(out, split)
        for path, source, rows, frames in source_frames(tree, manifest, split, tensors):
            poses = source["poses"][frames]
            expected = {
                "root_orient": poses[:, 0:3],
                "pose_body": poses[:, 3:66],
                "pose_hand": poses[:, 66:156],
                "trans": source["trans"][frames],
                "dmpls": source["dmpls"][frames],
                "betas": np.repeat(source["betas"][None], len(frames), axis=0),
            }
            for name, values in expected.items():
                got = tensors[name][rows].numpy()
                assert np.array_equal(got, values.astype(np.float32)), (path, name)
            checked += len(rows)
    assert checked == sum(read_manifest(out)["stages"]["stage_III"][s]["samples"] for s in SPLITS)


def test_gender_is_coded_from_each_source_file(tree: Path, prepared) -> None:
    out, _, manifest = prepared
    seen = set()
    for split in SPLITS:
        tensors = load_split(out, split)
        for _path, source, rows, _frames in source_frames(tree, manifest, split, tensors):
            raw = source["gender"].item()
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            codes = set(tensors["gender"][rows].tolist())
            assert codes == {GENDER_CODES[name]}
            seen.add(name)
    assert {"male", "female"} <= seen


def test_gender_codes_for_str_and_bytes_and_neutral(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    rng = np.random.default_rng(1)
    genders: list[str | bytes] = ["male", b"female", "neutral", b"male"]
    for i, gender in enumerate(genders):
        folder = amass / "DS" / f"s{i}"
        folder.mkdir(parents=True)
        write_motion_npz(
            folder / f"m{i}_poses.npz", "smplh", 200, 60.0, gender, rng.normal(size=16), rng
        )
    out = tmp_path / "out"
    prepare(amass, out, splits={"train": ["DS"]})
    tensors = load_split(out, "train")
    files = read_manifest(out)["stages"]["stage_I"]["train"]["files"]
    for index, gender in enumerate(genders):
        assert files[index]["path"] == f"DS/s{index}/m{index}_poses.npz"
        name = gender.decode() if isinstance(gender, bytes) else gender
        rows = tensors["seq_id"] == index
        assert set(tensors["gender"][rows].tolist()) == {GENDER_CODES[name]}


def test_matrot_holds_the_rotation_matrices_of_pose_body(prepared) -> None:
    out, _, _ = prepared
    tensors = load_split(out, "train")
    expected = axis_angle_to_matrix(tensors["pose_body"].numpy().reshape(-1, 21, 3))
    got = tensors["pose_body_matrot"].numpy().reshape(-1, 21, 3, 3)
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_manifest_lists_each_source_file_with_its_provenance(tree: Path, prepared) -> None:
    out, _, manifest = prepared
    for split, datasets in SPLITS.items():
        record = manifest["stages"]["stage_I"][split]
        files = record["files"]
        assert [f["path"] for f in files] == sorted(f["path"] for f in files)
        seq_id = load_split(out, split)["seq_id"]
        for index, entry in enumerate(files):
            assert set(entry) == {"path", "dataset", "family", "fps", "frames", "kept"}
            assert not os.path.isabs(entry["path"])
            source = load_npz(tree / entry["path"])
            assert entry["dataset"] in datasets
            assert entry["path"].startswith(entry["dataset"] + "/")
            assert entry["family"] == "smplh"
            assert entry["fps"] == float(source["mocap_framerate"])
            assert entry["frames"] == source["poses"].shape[0]
            assert entry["kept"] == int((seq_id == index).sum())
        assert sum(f["kept"] for f in files) == record["samples"]
        assert record["skipped"] == []
        # per-subject shape files are recognised as such, not as motions
        assert record["not_motions"] and all(p.endswith("shape.npz") for p in record["not_motions"])


def test_random_sampling_keeps_the_rounded_fraction_of_each_trimmed_motion(prepared) -> None:
    out, _, manifest = prepared
    for split in SPLITS:
        tensors = load_split(out, split)
        for index, entry in enumerate(manifest["stages"]["stage_I"][split]["files"]):
            start, stop = trim_bounds(entry["frames"], 0.1)
            frames = tensors["frame_id"][tensors["seq_id"] == index].numpy()
            assert len(frames) == entry["kept"] == round(0.3 * (stop - start))
            assert np.all(np.diff(frames) > 0)
            assert frames.min() >= start and frames.max() < stop


class OriginalVPoserDS(Dataset):
    """The original VPoser training loader's pattern: every ``*.pt`` of a split folder, loaded
    whole and cast to float32, all of one length, indexed per sample."""

    def __init__(self, dataset_dir: str) -> None:
        assert os.path.exists(dataset_dir)
        self.ds = {}
        for data_fname in glob.glob(os.path.join(dataset_dir, "*.pt")):
            k = os.path.basename(data_fname).replace(".pt", "")
            self.ds[k] = torch.load(data_fname).type(torch.float32)
        lengths = {len(v) for v in self.ds.values()}
        assert len(lengths) == 1, "Different data sizes"

    def __len__(self) -> int:
        return len(next(iter(self.ds.values())))

    def __getitem__(self, idx: int) -> dict:
        return {k: v[idx] for k, v in self.ds.items()}


def test_the_original_vposer_loader_reads_stage3(prepared) -> None:
    out, result, _ = prepared
    for split in SPLITS:
        folder = out / "stage_III" / split
        assert (folder / "root_orient.pt").exists() and (folder / "pose_body.pt").exists()
        ds = OriginalVPoserDS(str(folder))
        assert len(ds) == result.samples[split]
        batch = next(iter(DataLoader(ds, batch_size=32, shuffle=True)))
        assert batch["pose_body"].shape == (32, 63)
        assert batch["pose_body_matrot"].view(-1, 21, 9).shape == (32, 21, 9)


# --------------------------------------------------------------------------- other settings


def test_fps_sampling_follows_each_files_own_rate(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "fps"
    prepare(tree, out, sampling="fps", target_fps=30.0)
    manifest = read_manifest(out)
    rates = set()
    for split in SPLITS:
        tensors = load_split(out, split)
        for index, entry in enumerate(manifest["stages"]["stage_I"][split]["files"]):
            fps = entry["fps"]
            rates.add(fps)
            frames = tensors["frame_id"][tensors["seq_id"] == index].numpy().astype(np.int64)
            start, stop = trim_bounds(entry["frames"], 0.1)
            assert frames[0] == start and frames[-1] < stop
            assert np.all(np.abs(np.diff(frames) - fps / 30.0) < 1.0)
            seconds = (frames - start) / fps
            assert np.allclose(seconds, np.arange(len(frames)) / 30.0, atol=0.5 / fps + 1e-9)
            if fps == pytest.approx(120.0, abs=1e-3):
                assert set(np.diff(frames).tolist()) == {4}
    assert len(rates) >= 3  # several source rates, among them non-integer ones
    assert any(r != int(r) for r in rates)


def test_smplx_release_gives_jaw_and_eye(amass_tree: TreeCache, tmp_path: Path) -> None:
    tree = amass_tree(8000, "smplx", seed=2)
    splits = {"train": ["CMU", "MPI_HDM05"], "vald": ["HumanEva"]}  # HDM05 under its new name
    out = tmp_path / "out"
    result = prepare(tree, out, splits=splits)
    manifest = read_manifest(out)
    for split in splits:
        tensors = load_split(out, split)
        n = result.samples[split]
        assert tuple(tensors["pose_jaw"].shape) == (n, 3)
        assert tuple(tensors["pose_eye"].shape) == (n, 6)
        assert tuple(tensors["pose_hand"].shape) == (n, 90)
        assert "dmpls" not in tensors
        assert {f["family"] for f in manifest["stages"]["stage_I"][split]["files"]} == {"smplx"}
        for _path, source, rows, frames in source_frames(tree, manifest, split, tensors):
            for name in ("pose_jaw", "pose_eye", "pose_hand", "pose_body", "root_orient"):
                expected = source[name][frames].astype(np.float32)
                assert np.array_equal(tensors[name][rows].numpy(), expected), name
    paths = [f["path"] for f in manifest["stages"]["stage_I"]["train"]["files"]]
    assert any(p.startswith("HDM05/") for p in paths)


def _motion(path: Path, family: str, betas_width: int = 16, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_motion_npz(path, family, 200, 120.0, "female", rng.normal(size=betas_width), rng)


def test_mixing_smpl_into_a_smplh_dataset_is_an_error_naming_files(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    _motion(amass / "DS" / "s1" / "a_poses.npz", "smplh", 10, seed=1)
    _motion(amass / "DS" / "s1" / "b_poses.npz", "smplh", 10, seed=2)
    _motion(amass / "DS" / "s2" / "c_poses.npz", "smpl", 10, seed=3)
    _motion(amass / "Other" / "s1" / "d_poses.npz", "smplh", 10, seed=4)
    with pytest.raises(PrepareError) as error:
        prepare(amass, tmp_path / "out", splits={"train": ["DS"], "vald": ["Other"]})
    message = str(error.value)
    assert "DS" in message and "families" in message
    assert "smplh: DS/s1/a_poses.npz" in message
    assert "smpl: DS/s2/c_poses.npz" in message
    assert not (tmp_path / "out" / "stage_III").exists()


def test_betas_of_different_widths_in_one_split_is_an_error_naming_files(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    _motion(amass / "A" / "s1" / "a_poses.npz", "smplh", 16, seed=1)
    _motion(amass / "B" / "s1" / "b_poses.npz", "smplh", 10, seed=2)
    with pytest.raises(PrepareError) as error:
        prepare(amass, tmp_path / "out", splits={"train": ["A", "B"]})
    message = str(error.value)
    assert "betas" in message and "'train'" in message
    assert "16 betas: A/s1/a_poses.npz" in message
    assert "10 betas: B/s1/b_poses.npz" in message


#: Per sampling mode: its settings, and the frames of a second motion (60 Hz) that passes the
#: trimming and still yields no sample (None: in that mode every trimmed motion yields one).
SHORT_CASES: dict[str, tuple[dict[str, Any], int | None]] = {
    # 10 frames keep 8 after trimming; round(0.05 * 8) = 0 of them drawn
    "random": ({"keep_rate": 0.05}, 10),
    # the clock has a tick at the start of any trimmed motion
    "fps": ({"target_fps": 30.0}, None),
    # 30 frames keep 24 after trimming: 0.38 s, 12 ticks at 30 Hz, fewer than 16
    "clips": ({"target_fps": 30.0, "clip_frames": 16}, 30),
}


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("sampling", sorted(SHORT_CASES))
def test_a_motion_too_short_for_a_sample_is_listed_and_never_stops_a_strict_run(
    tmp_path: Path, sampling: str, num_workers: int
) -> None:
    """In every sampling mode: a real SMPL+H motion of 9 frames (trimming 0.1 at each end
    drops none of them), and one that yields no sample after trimming, are listed under
    ``too_short`` with their frame counts, not as unusable, and a strict run goes on; read in
    this process or in reader processes (whose results cross through shared memory), the
    manifest is written and read back as plain JSON."""
    settings, second = SHORT_CASES[sampling]
    amass = tmp_path / "amass"
    rng = np.random.default_rng(3)
    lengths = {"a": 300, "b": 9} | ({"c": second} if second else {})
    for name, frames in lengths.items():
        path = amass / "DS" / "s1" / f"{name}_poses.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_motion_npz(path, "smplh", frames, 60.0, "male", rng.normal(size=16), rng)
    out = tmp_path / "out"
    messages: list[str] = []
    prepare(amass, out, {"train": ["DS"]}, logger=messages.append, strict=True,
            sampling=sampling, num_workers=num_workers, **settings)  # fmt: skip
    assert read_manifest(out)["complete"]
    record = read_manifest(out)["stages"]["stage_I"]["train"]
    assert [f["path"] for f in record["files"]] == ["DS/s1/a_poses.npz"]
    assert record["skipped"] == []
    short = {item["path"]: item for item in record["too_short"]}
    assert {path: item["frames"] for path, item in short.items()} == {
        f"DS/s1/{name}_poses.npz": frames for name, frames in lengths.items() if name != "a"
    }
    assert {type(item["frames"]) for item in short.values()} == {int}
    assert short["DS/s1/b_poses.npz"]["reason"] == (
        "too short: 9 frames, too few for trimming 0.1 at each end to drop a frame"
    )
    if second:
        assert short["DS/s1/c_poses.npz"]["reason"].startswith(f"too short for one clip: {second}"
            if sampling == "clips" else f"too short: {second} frames leave none")  # fmt: skip
    assert any(f"{len(short)} motions too short to yield a sample" in m for m in messages)
    assert f"motions too short to yield a sample: {len(short)}" in summarize(out)
    assert "  [train] DS/s1/b_poses.npz: 9 frames" in summarize(out)


def test_without_trimming_three_frames_still_give_a_frame(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    rng = np.random.default_rng(3)
    for name, frames in (("a", 200), ("d", 3)):
        path = amass / "DS" / "s1" / f"{name}_poses.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_motion_npz(path, "smplh", frames, 60.0, "male", rng.normal(size=16), rng)
    # with trimming 3 frames are too short; without, round(0.3 * 3) = 1 frame is kept
    untrimmed = tmp_path / "untrimmed"
    prepare(amass, untrimmed, splits={"train": ["DS"]}, trim=0.0)
    files = read_manifest(untrimmed)["stages"]["stage_I"]["train"]["files"]
    assert {f["path"]: f["kept"] for f in files}["DS/s1/d_poses.npz"] == 1


def test_split_where_some_files_lack_hands_drops_pose_hand(tmp_path: Path) -> None:
    amass = tmp_path / "amass"
    _motion(amass / "H" / "s1" / "a_poses.npz", "smplh", 10, seed=1)
    _motion(amass / "S" / "s1" / "b_poses.npz", "smpl", 10, seed=2)
    _motion(amass / "V" / "s1" / "c_poses.npz", "smplh", 10, seed=3)
    out = tmp_path / "out"
    messages: list[str] = []
    result = prepare(
        amass, out, splits={"train": ["H", "S"], "vald": ["V"]}, logger=messages.append
    )
    train = load_split(out, "train")
    assert "pose_hand" not in train and "dmpls" not in train
    assert {"root_orient", "pose_body", "trans", "betas", "pose_body_matrot"} <= set(train)
    assert tuple(train["betas"].shape) == (result.samples["train"], 10)
    assert "pose_hand" in load_split(out, "vald")  # the other split keeps its hands
    notes = [m for m in messages if "left out" in m]
    assert len(notes) == 2 and all(m.startswith("WARNING: split 'train'") for m in notes)
    assert "'pose_hand'" in notes[0] and "1 of 2 motion files lack it" in notes[0]
    assert "'dmpls'" in notes[1] and "1 of 2 motion files lack it" in notes[1]
    log_text = (out / "prepare.log").read_text()
    assert all(note.removeprefix("WARNING: ") in log_text for note in notes)
    record = read_manifest(out)["stages"]["stage_I"]["train"]
    assert record["dropped_fields"] == {"pose_hand": 1, "dmpls": 1}
    assert "WARNING: field pose_hand left out: 1 of 2 motion files lack it" in summarize(out)


def test_amass_dir_none_on_an_unprepared_folder_says_how_to_fix_and_creates_nothing(
    tmp_path: Path,
) -> None:
    target = tmp_path / "not_prepared"
    with pytest.raises(PrepareError, match="pass amass_dir"):
        prepare_vposer_datasets({"train": ["CMU"]}, None, target)
    assert not target.exists()
