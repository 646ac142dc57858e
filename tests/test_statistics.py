"""Training statistics (issue 11, point 4): computed on the statistics split only, stored in
``statistics.pt`` with their provenance, served by the dataset and the DataModule, and used to
normalize batches; plus the dataset's ``clip_frames`` and ``fps`` (issue 10)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import TRAINING_FRAMES, TRAINING_SPLITS, TreeCache, import_examples, prepare
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pytorch_lightning.callbacks import Callback

from vposer_data import VPoserDataModule
from vposer_data.checksums import file_sha256
from vposer_data.dataset import VPoserDataset
from vposer_data.errors import ConfigError
from vposer_data.manifest import ManifestError, split_dir
from vposer_data.statistics import STATISTICS, STATISTICS_NAME, column_stats, sample_axes
from vposer_data.training_statistics import NORMALIZE_EPS, Normalizer, load_statistics

QUIET = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}
#: Clip folders: per-clip fields (N, ...); every other float field is per frame (N, T, ...).
PER_CLIP = {"betas", "canon_offset", "canon_yaw"}
CLIP_FRAMES = 8


@pytest.fixture(scope="module")
def data_dir(training_dir: Path) -> Path:
    """The session's prepared training folder (read-only)."""
    return training_dir


def prepare_small(
    amass_tree: TreeCache,
    out: Path,
    splits: dict[str, list[str]] = TRAINING_SPLITS,
    **settings: Any,
) -> Path:
    """The training tree prepared into ``out`` (returned) with ``config(**settings)``."""
    prepare(amass_tree(TRAINING_FRAMES), out, splits, **settings)
    return out


@pytest.fixture(scope="module")
def clip_dir(amass_tree: TreeCache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip folder (T = CLIP_FRAMES at 30 Hz), with derived per-frame fields."""
    out = tmp_path_factory.mktemp("clips") / "vposer"
    return prepare_small(
        amass_tree,
        out,
        sampling="clips",
        target_fps=30,
        clip_frames=CLIP_FRAMES,
        augmentations=["matrot", "rot6d", "velocities"],
    )


def stored(data_dir: Path, split: str) -> dict[str, np.ndarray]:
    """Every float field of a split, as float64 numpy arrays, read from its ``.pt`` files."""
    tensors = {
        p.stem: torch.load(p, weights_only=True)
        for p in sorted(split_dir(data_dir, split).glob("*.pt"))
    }
    return {n: t.double().numpy() for n, t in tensors.items() if t.is_floating_point()}


def numpy_stats(values: np.ndarray, axes: int = 1) -> dict[str, np.ndarray]:
    over = tuple(range(axes))
    return {
        "mean": values.mean(axis=over),
        "std": values.std(axis=over),
        "min": values.min(axis=over),
        "max": values.max(axis=over),
    }


def assert_stats_equal(served: dict[str, torch.Tensor], expected: dict[str, np.ndarray]) -> None:
    for key in STATISTICS:
        assert served[key].dtype == torch.float32
        assert tuple(served[key].shape) == expected[key].shape, key
        np.testing.assert_allclose(
            served[key].double().numpy(), expected[key], rtol=1e-6, atol=1e-7, err_msg=key
        )


# -- values, storage, provenance ---------------------------------------------------------------


def test_statistics_are_those_of_the_stored_train_tensors(data_dir: Path) -> None:
    statistics = load_statistics(data_dir)
    assert statistics is not None
    train = stored(data_dir, "train")
    assert set(statistics) == set(train)  # every float field, no seq_id / frame_id / gender
    assert not {"seq_id", "frame_id", "gender"} & set(statistics)
    for name, values in train.items():
        assert_stats_equal(statistics[name], numpy_stats(values))
    samples = len(train["pose_body"])
    assert (statistics.split, statistics.samples, statistics.frames) == ("train", samples, samples)
    assert statistics.clip_frames is None
    assert statistics.counts == dict.fromkeys(train, samples)


def test_statistics_file_is_plain_tensors_recorded_with_provenance(data_dir: Path) -> None:
    path = data_dir / STATISTICS_NAME
    payload = torch.load(path, weights_only=True)  # refuses anything but plain data
    assert payload["format_version"] == 1 and payload["split"] == "train"
    manifest = json.loads((data_dir / "manifest.json").read_text())
    record = manifest["stages"]["stage_III"]["train"]
    entry = record["statistics"]
    assert entry["file"] == STATISTICS_NAME
    assert entry["bytes"] == path.stat().st_size and entry["sha256"] == file_sha256(path)
    assert entry["split"] == "train" and entry["samples"] == record["samples"]
    assert entry["frames"] == record["samples"] and entry["clip_frames"] is None
    assert sorted(entry["fields"]) == sorted(payload["fields"])
    # only the statistics split carries them; the manifest holds no per-dimension numbers
    assert "stats" not in record
    for split in ("vald", "test"):
        assert "statistics" not in manifest["stages"]["stage_III"][split]

    def longest_list(value: Any) -> int:
        if isinstance(value, dict):
            return max((longest_list(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return max([len(value), *(longest_list(v) for v in value)])
        return 0

    assert longest_list(manifest["stages"]["stage_III"]) < 63


def test_validation_and_test_do_not_contribute(
    data_dir: Path, amass_tree: TreeCache, tmp_path: Path
) -> None:
    """The same train split with other validation and test splits (and more workers) gives
    the same file, byte for byte; the statistics of train + vald would differ."""
    splits = {**TRAINING_SPLITS, "vald": TRAINING_SPLITS["test"], "test": TRAINING_SPLITS["vald"]}
    other = prepare_small(amass_tree, tmp_path / "other", splits=splits, num_workers=2)
    assert (other / STATISTICS_NAME).read_bytes() == (data_dir / STATISTICS_NAME).read_bytes()
    assert not np.array_equal(  # the vald split really changed
        stored(other, "vald")["pose_body"], stored(data_dir, "vald")["pose_body"]
    )
    served = load_statistics(other)
    assert served is not None
    mixed = np.concatenate(
        [stored(data_dir, "train")["pose_body"], stored(other, "vald")["pose_body"]]
    )
    assert not np.allclose(served["pose_body"]["mean"].numpy(), mixed.mean(axis=0), atol=1e-6)


def test_stats_split_chooses_the_split_and_none_stores_nothing(
    amass_tree: TreeCache, tmp_path: Path
) -> None:
    vald = prepare_small(amass_tree, tmp_path / "v", stats_split="vald")
    statistics = load_statistics(vald)
    assert statistics is not None and statistics.split == "vald"
    assert_stats_equal(statistics["pose_body"], numpy_stats(stored(vald, "vald")["pose_body"]))

    none = prepare_small(amass_tree, tmp_path / "n", stats_split=None)
    assert not (none / STATISTICS_NAME).exists()
    dataset = VPoserDataset(split_dir(none, "train"))
    assert dataset.statistics is None and "stats_split=None" in dataset.statistics_missing
    dm = VPoserDataModule(data_dir=none, normalize=["pose_body"])
    assert dm.statistics is None
    with pytest.raises(ConfigError, match=r"normalize=\['pose_body'\].*stats_split=None"):
        dm.setup("fit")


# -- served ------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "vald", "test"])
def test_every_split_serves_the_training_statistics(data_dir: Path, split: str) -> None:
    dataset = VPoserDataset(split_dir(data_dir, split))
    statistics = dataset.statistics
    assert statistics is not None and statistics.split == "train"
    assert dataset.statistics_missing == ""
    train = stored(data_dir, "train")
    assert_stats_equal(statistics["pose_hand"], numpy_stats(train["pose_hand"]))
    dm = VPoserDataModule(data_dir=data_dir)
    assert dm.statistics is not None
    for name in dm.statistics:
        for key in STATISTICS:
            assert torch.equal(dm.statistics[name][key], statistics[name][key])


def test_statistics_of_a_field_without_them_name_it(data_dir: Path) -> None:
    statistics = load_statistics(data_dir)
    assert statistics is not None
    with pytest.raises(KeyError, match="no training statistics for 'gender'"):
        statistics["gender"]


def test_frame_folders_have_no_clip_frames_and_a_rate_only_on_a_clock(
    data_dir: Path, amass_tree: TreeCache, tmp_path: Path
) -> None:
    random = VPoserDataset(split_dir(data_dir, "train"))
    assert random.clip_frames is None and random.fps is None  # random sampling: no clock
    clocked = prepare_small(amass_tree, tmp_path / "fps", sampling="fps", target_fps=30)
    for split in ("train", "vald", "test"):
        dataset = VPoserDataset(split_dir(clocked, split), ["trans"])
        assert dataset.fps == 30.0 and dataset.clip_frames is None
    # a split folder on its own: no manifest, nothing to tell, no error
    alone = shutil.copytree(split_dir(clocked, "train"), tmp_path / "alone" / "train")
    dataset = VPoserDataset(alone)
    assert dataset.fps is None and dataset.statistics is None and dataset.clip_frames is None
    assert "no prepared folder" in dataset.statistics_missing


# -- clips -------------------------------------------------------------------------------------


def test_clip_statistics_are_per_frame_for_frame_fields_and_per_clip_otherwise(
    clip_dir: Path,
) -> None:
    statistics = load_statistics(clip_dir)
    assert statistics is not None
    train = stored(clip_dir, "train")
    clips = len(train["pose_body"])
    assert train["pose_body"].shape == (clips, CLIP_FRAMES, 63)
    assert (statistics.samples, statistics.frames) == (clips, clips * CLIP_FRAMES)
    assert statistics.clip_frames == CLIP_FRAMES
    assert set(statistics) == set(train) and set(train) >= PER_CLIP
    assert {"trans_vel", "root_angvel", "pose_body_rot6d"} <= set(train)
    for name, values in train.items():
        if name in PER_CLIP:
            assert values.ndim < 3 and statistics.counts[name] == clips
            assert_stats_equal(statistics[name], numpy_stats(values))  # over the clips
        else:
            assert values.shape[:2] == (clips, CLIP_FRAMES), name
            assert statistics.counts[name] == clips * CLIP_FRAMES
            assert_stats_equal(statistics[name], numpy_stats(values, axes=2))  # all frames
    assert statistics["canon_yaw"]["mean"].shape == ()
    assert statistics["pose_body"]["mean"].shape == (63,)


@pytest.mark.parametrize("split", ["train", "vald", "test"])
def test_clip_datasets_tell_their_length_and_rate(clip_dir: Path, split: str) -> None:
    dataset = VPoserDataset(split_dir(clip_dir, split), ["pose_body", "trans", "betas"])
    assert dataset.clip_frames == CLIP_FRAMES and dataset.fps == 30.0
    assert VPoserDataset(split_dir(clip_dir, split), ["betas"]).clip_frames == CLIP_FRAMES
    statistics = dataset.statistics
    assert statistics is not None and statistics.split == "train"
    # normalizing clip batches: per dimension, broadcast over clips and frames
    normalizer = Normalizer(statistics, ["pose_body", "trans", "betas"])
    raw = dataset[:]
    batch = normalizer(raw)
    scale = statistics["pose_body"]["std"].clamp_min(NORMALIZE_EPS)
    torch.testing.assert_close(
        batch["pose_body"], (raw["pose_body"] - statistics["pose_body"]["mean"]) / scale
    )
    back = normalizer.denormalize(batch)
    for name in ("pose_body", "trans", "betas"):
        torch.testing.assert_close(back[name], raw[name], rtol=1e-5, atol=1e-5)
    if split == "train":  # standardised over all of the statistics split's frames
        flat = batch["pose_body"].reshape(-1, 63).double()
        np.testing.assert_allclose(flat.mean(0).numpy(), 0, atol=1e-5)
        np.testing.assert_allclose(flat.std(0, unbiased=False).numpy(), 1, atol=1e-4)


def test_clip_datamodule_serves_normalized_clip_batches(clip_dir: Path) -> None:
    dm = VPoserDataModule(
        data_dir=clip_dir, fields=["pose_body", "trans_vel"], normalize=["trans_vel"],
        batch_size=16,
    )  # fmt: skip
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["trans_vel"].shape == (16, CLIP_FRAMES, 3)
    assert dm.statistics is not None and dm.statistics.clip_frames == CLIP_FRAMES
    raw = dm.denormalize(batch)
    assert not torch.allclose(raw["trans_vel"], batch["trans_vel"])
    assert torch.equal(raw["pose_body"], batch["pose_body"])


# -- the computation, for all inputs -----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    frames_axes=st.sampled_from([1, 2]),
    block_rows=st.integers(1, 9),
)
def test_column_stats_equal_numpy_for_any_array_and_block_size(
    data: st.DataObject, frames_axes: int, block_rows: int
) -> None:
    shape = data.draw(
        hnp.array_shapes(min_dims=frames_axes, max_dims=frames_axes + 1, min_side=1, max_side=7)
    )
    values = data.draw(
        hnp.arrays(
            np.float32,
            shape,
            elements=st.floats(-1e3, 1e3, width=32, allow_nan=False, allow_infinity=False),
        )
    )
    result, count = column_stats(values, frames_axes, block_rows=block_rows)
    assert count == math.prod(shape[:frames_axes])
    expected = numpy_stats(values.astype(np.float64), frames_axes)
    for key in STATISTICS:
        assert result[key].shape == shape[frames_axes:]
        np.testing.assert_allclose(result[key], expected[key], rtol=1e-9, atol=1e-9, err_msg=key)


def test_sample_axes_follow_the_vocabulary_then_the_shape() -> None:
    assert sample_axes("pose_body", (10, 63), None) == 1
    assert sample_axes("pose_body", (10, 8, 63), 8) == 2
    assert sample_axes("betas", (10, 8), 8) == 1  # per clip, even when its width equals T
    assert sample_axes("trans_vel", (10, 8, 3), 8) == 2
    assert sample_axes("canon_offset", (10, 3), 8) == 1


@settings(max_examples=80, deadline=None)
@given(data=st.data(), width=st.integers(1, 6), clip=st.booleans())
def test_normalize_then_denormalize_is_the_identity_in_float32(
    data: st.DataObject, width: int, clip: bool
) -> None:
    finite = {"allow_nan": False, "allow_infinity": False, "width": 32}
    mean = data.draw(hnp.arrays(np.float32, (width,), elements=st.floats(-100, 100, **finite)))
    std = data.draw(hnp.arrays(np.float32, (width,), elements=st.floats(0, 100, **finite)))
    shape = (data.draw(st.integers(1, 5)), *((3,) if clip else ()), width)
    x = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-100, 100, **finite)))
    statistics = {
        "f": {
            "mean": torch.from_numpy(mean),
            "std": torch.from_numpy(std),
            "min": torch.from_numpy(mean),
            "max": torch.from_numpy(mean),
        }
    }
    normalizer = Normalizer(statistics, ["f"])
    batch = {"f": torch.from_numpy(x), "other": torch.arange(3)}
    normalized = normalizer.normalize(batch)
    scale = np.maximum(std, np.float32(NORMALIZE_EPS)).astype(np.float64)  # float32's eps
    expected = (x.astype(np.float64) - mean) / scale  # exact to float64 rounding
    z = normalized["f"].double().numpy()
    assert np.all(np.isfinite(z))
    # float32 arithmetic rounds twice (the difference, the quotient), each time by at most half
    # a float32 step: a relative error of at most eps32, whatever the scale (down to eps, for
    # a std of 0); a result too small to be a normal float32 adds a subnormal step
    eps32 = float(np.finfo(np.float32).eps)
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    assert np.all(np.abs(z - expected) <= eps32 * np.abs(expected) + tiny)
    back = normalizer.denormalize(normalized)["f"].double().numpy()
    assert np.all(np.abs(back - x) <= 4 * eps32 * (np.abs(x) + 2 * np.abs(mean)) + 1e-30)
    assert (
        normalized["other"] is batch["other"]
        and batch["f"].data_ptr() != normalized["f"].data_ptr()
    )
    assert torch.equal(batch["f"], torch.from_numpy(x))  # the input batch is left as it was


# -- the DataModule's normalize ----------------------------------------------------------------


def test_normalized_batches_in_every_split(data_dir: Path) -> None:
    fields = ["pose_body", "pose_hand", "seq_id"]
    plain = VPoserDataModule(data_dir=data_dir, fields=fields, batch_size=64, seed=3)
    dm = VPoserDataModule(
        data_dir=data_dir, fields=fields, normalize=["pose_body"], batch_size=64, seed=3
    )
    plain.setup(None)
    dm.setup(None)
    stats = dm.statistics
    assert stats is not None
    mean, scale = stats["pose_body"]["mean"], stats["pose_body"]["std"].clamp_min(NORMALIZE_EPS)
    loaders = ("train_dataloader", "val_dataloader", "test_dataloader", "predict_dataloader")
    for loader in loaders:
        for raw, got in zip(getattr(plain, loader)(), getattr(dm, loader)(), strict=True):
            assert torch.equal(raw["seq_id"], got["seq_id"])
            assert torch.equal(raw["pose_hand"], got["pose_hand"])  # not asked for
            torch.testing.assert_close(got["pose_body"], (raw["pose_body"] - mean) / scale)
            back = dm.denormalize(got)
            assert back is not got and back["pose_hand"] is got["pose_hand"]
            torch.testing.assert_close(back["pose_body"], raw["pose_body"], rtol=1e-5, atol=1e-5)
    # over the whole training split, standardised: mean 0, std 1 per dimension
    whole = dm.normalizer()(dm.dataset("train")[:])["pose_body"].double()  # type: ignore[misc]
    np.testing.assert_allclose(whole.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(whole.std(0, unbiased=False).numpy(), 1, atol=1e-5)
    # without normalize, denormalize is a copy
    raw = next(iter(plain.val_dataloader()))
    copy = plain.denormalize(raw)
    assert copy == raw and copy is not raw


def test_normalized_batches_with_worker_processes(data_dir: Path) -> None:
    dm = VPoserDataModule(
        data_dir=data_dir, fields=["pose_body"], normalize=["pose_body"], batch_size=128,
        num_workers=1,
    )  # fmt: skip
    dm.setup("validate")
    dataset = dm.dataset("vald")
    batch = next(iter(dm.val_dataloader()))
    expected = dm.normalizer().normalize(dataset[:128])  # type: ignore[union-attr]
    torch.testing.assert_close(batch["pose_body"], expected["pose_body"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"normalize": "pose_body"}, r"normalize='pose_body': expected a list"),
        ({"normalize": []}, r"normalize=\[\]"),
        ({"normalize": ["pose_body", "pose_body"]}, r"distinct"),
        ({"normalize": [3]}, r"normalize=\[3\]"),
    ],
)
def test_invalid_normalize_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VPoserDataModule(data_dir="somewhere", **kwargs)


def test_normalizing_a_field_without_statistics_names_it(data_dir: Path) -> None:
    dm = VPoserDataModule(
        data_dir=data_dir, fields=["pose_body", "gender"], normalize=["pose_body", "gender"]
    )
    with pytest.raises(ConfigError, match=r"no training statistics for gender; they cover"):
        dm.setup("fit")
    dm = VPoserDataModule(data_dir=data_dir, fields=["pose_body"], normalize=["trans"])
    with pytest.raises(ConfigError, match=r"trans not among the fields served \(pose_body\)"):
        dm.setup("fit")


def test_trainer_fit_with_normalized_pose_body(data_dir: Path) -> None:
    import_examples()
    from vposer_model import VPoserVAE

    dm = VPoserDataModule(
        data_dir=data_dir, fields=["pose_body"], normalize=["pose_body"], batch_size=32
    )
    seen: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    class Seen(Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, i: int) -> None:
            seen["train"].append(batch["pose_body"].clone())

        def on_validation_batch_start(self, trainer: Any, module: Any, batch: Any, *a: Any) -> None:
            seen["val"].append(batch["pose_body"].clone())

    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_steps=8, limit_val_batches=2, val_check_interval=4, callbacks=[Seen()], **QUIET
    )
    trainer.fit(VPoserVAE(hidden_dim=32), datamodule=dm)
    assert trainer.global_step == 8
    assert math.isfinite(float(trainer.callback_metrics["train_loss"]))
    assert len(seen["train"]) == 8 and seen["val"]
    normalizer = dm.normalizer()
    assert normalizer is not None
    vald = normalizer.normalize(dm.dataset("vald")[:32])["pose_body"]
    torch.testing.assert_close(seen["val"][0], vald)
    # every training row the model saw is a standardised row of the training split
    rows = normalizer.normalize(dm.dataset("train")[:])["pose_body"]
    seen_rows = torch.cat(seen["train"])
    distances = torch.cdist(seen_rows, rows, compute_mode="donot_use_mm_for_euclid_dist")
    nearest = distances.min(dim=1).values
    assert float(nearest.max()) < 1e-4


# -- old and damaged folders -------------------------------------------------------------------


def old_folder(data_dir: Path, target: Path) -> Path:
    """The folder as an earlier vposer_data wrote it: mean/std lists under "stats" in the
    Stage III train record, no statistics file."""
    shutil.copytree(data_dir, target)
    path = target / "manifest.json"
    manifest = json.loads(path.read_text())
    record = manifest["stages"]["stage_III"]["train"]
    del record["statistics"]
    record["stats"] = {
        name: {"mean": values.mean(0).tolist(), "std": values.std(0).tolist()}
        for name, values in stored(target, "train").items()
    }
    path.write_text(json.dumps(manifest))
    (target / STATISTICS_NAME).unlink()
    return target


def test_a_folder_from_before_statistics_files_still_loads(data_dir: Path, tmp_path: Path) -> None:
    old = old_folder(data_dir, tmp_path / "old")
    dm = VPoserDataModule(data_dir=old, fields=["pose_body"])
    dm.setup(None)
    batch = next(iter(dm.val_dataloader()))  # served as before, unnormalized
    assert torch.equal(
        batch["pose_body"], dm.dataset("vald")[: len(batch["pose_body"])]["pose_body"]
    )
    assert dm.statistics is None and "earlier vposer_data" in dm.statistics_missing
    assert VPoserDataset(split_dir(old, "vald")).statistics is None
    with pytest.raises(
        ConfigError, match=r"normalize=\['pose_body'\]: no training statistics.*--overwrite"
    ):
        VPoserDataModule(data_dir=old, normalize=["pose_body"]).setup("fit")


@pytest.mark.parametrize("damage", ["edited", "deleted"])
def test_a_damaged_statistics_file_is_named(data_dir: Path, tmp_path: Path, damage: str) -> None:
    target = Path(shutil.copytree(data_dir, tmp_path / "copy"))
    path = target / STATISTICS_NAME
    if damage == "deleted":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[-30] ^= 0xFF  # same size, other bytes
        path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=STATISTICS_NAME):
        VPoserDataset(split_dir(target, "vald")).statistics  # noqa: B018
    dm = VPoserDataModule(data_dir=target)
    if damage == "deleted":  # a missing or resized file stops setup, as any final file does
        with pytest.raises(ManifestError, match=rf"{STATISTICS_NAME}: missing"):
            dm.setup("fit")
    else:  # an edit of the same size is caught when the statistics are read (checksum)
        dm.setup("fit")
        with pytest.raises(ManifestError, match="checksum differs"):
            dm.statistics  # noqa: B018


def _stats_as_first_written(array: np.ndarray, block_rows: int) -> dict[str, np.ndarray]:
    """column_stats as first released (a fresh float64 copy per block, ``block.mean`` and
    ``((block - mean) ** 2).sum``): the statistics file pins these bits."""
    flat = array.reshape(array.shape[0], -1)
    count, width = 0, flat.shape[1]
    mean, m2 = np.zeros(width), np.zeros(width)
    low, high = np.full(width, np.inf), np.full(width, -np.inf)
    for start in range(0, flat.shape[0], block_rows):
        block = flat[start : start + block_rows].astype(np.float64)
        n = block.shape[0]
        block_mean = block.mean(axis=0)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0)
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + block_m2 + delta**2 * (count * n / total)
        count = total
        np.minimum(low, block.min(axis=0), out=low)
        np.maximum(high, block.max(axis=0), out=high)
    return {"mean": mean, "std": np.sqrt(m2 / count), "min": low, "max": high}


@pytest.mark.parametrize("width", [3, 63, 189])
def test_column_stats_keep_their_bits_at_realistic_sizes(width: int) -> None:
    """Several full blocks and a partial one, at the widths of real fields (pose_body_matrot is
    189 wide): the in-place computation gives the same float64 bits as the first version, so
    statistics.pt stays byte-identical."""
    rng = np.random.default_rng(width)
    values = (rng.standard_normal((3 * 8192 + 1234, width)) * 3 + 1).astype(np.float32)
    values[5, 0] = np.float32(3e38)  # a huge value: the sums are still compared bit for bit
    result, count = column_stats(values)
    assert count == values.shape[0]
    expected = _stats_as_first_written(values, 8192)
    for key in STATISTICS:
        assert np.array_equal(result[key], expected[key]), key
