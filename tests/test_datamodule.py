"""VPoserDataModule without a Trainer: preparation, setup per stage, loaders, checks, errors."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import TRAINING_FRAMES, TRAINING_SPLITS, TreeCache, provenance
from torch.utils.data import DataLoader

from vposer_data import AMASS_SPLITS, PrepareConfig, VPoserDataModule
from vposer_data.cli import main as cli_main
from vposer_data.dataset import VPoserDataset, collate_batch
from vposer_data.errors import PrepareError, StaleOutputError
from vposer_data.loader import BatchDataLoader, BatchIndexSampler, DistributedBatchIndexSampler
from vposer_data.manifest import ManifestError


def prepared(data_dir: Path, **kwargs: Any) -> VPoserDataModule:
    """A DataModule over ``training_dir`` or a copy of it (settings as it was prepared with)."""
    kwargs = {"splits": TRAINING_SPLITS, **kwargs}
    return VPoserDataModule(data_dir=data_dir, **kwargs)


def test_importing_the_package_does_not_import_lightning() -> None:
    code = (
        "import sys, vposer_data\n"
        "assert vposer_data.VPoserDataset and vposer_data.PrepareConfig\n"
        "assert vposer_data.prepare_vposer_datasets\n"
        "assert 'pytorch_lightning' not in sys.modules and 'lightning' not in sys.modules\n"
        "assert vposer_data.VPoserDataModule\n"
        "assert 'pytorch_lightning' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hyperparameters_are_plain_values(training_dir: Path) -> None:
    augmentations = [{"name": "noise", "sigma": 0.01}, "matrot"]
    dm = prepared(training_dir, prepare={"augmentations": augmentations})
    assert dm.hparams["batch_size"] == 512 and dm.hparams["num_workers"] == 0
    assert dm.hparams["splits"] == TRAINING_SPLITS
    assert dm.hparams["prepare"]["augmentations"][0] == {"name": "noise", "sigma": 0.01}
    json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in dm.hparams.items()})
    assert [a.name for a in dm.prepare_config.augmentations] == ["noise", "matrot"]


def test_defaults() -> None:
    dm = VPoserDataModule(data_dir="somewhere")
    assert dm.splits == AMASS_SPLITS and dm.amass_dir is None and dm.fields is None
    assert dm.prepare_config == PrepareConfig() and dm.prepare_data_per_node


def test_a_folder_is_served_as_prepared_without_restating_its_settings(
    amass_tree: TreeCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Prepared by the command with other settings and a custom split mapping, a folder is
    served by VPoserDataModule(data_dir) alone; settings given are still checked."""
    amass = amass_tree(TRAINING_FRAMES)
    out = tmp_path / "vposer"
    splits = {"train": ["CMU", "KIT"], "vald": ["HumanEva"], "test": ["SFU"]}
    code = cli_main(
        ["prepare", "--amass-dir", str(amass), "--out", str(out), "--compression", "gzip",
         "--keep-rate", "0.5", "--splits", json.dumps(splits), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    caplog.set_level(logging.INFO, logger="vposer_data")
    dm = VPoserDataModule(data_dir=out)
    dm.setup("fit")
    assert dm.splits == splits and dm.prepare_config.keep_rate == 0.5
    assert len(dm.dataset("train")) > 0
    served = [r.getMessage() for r in caplog.records if "as it was prepared" in r.getMessage()]
    assert len(served) == 1 and '"keep_rate": 0.5' in served[0]
    dm.setup("test")  # logged once
    assert sum("as it was prepared" in r.getMessage() for r in caplog.records) == 1
    # the same settings, given: fine; another value, given: the named error
    VPoserDataModule(data_dir=out, prepare={"keep_rate": 0.5}).setup("fit")
    VPoserDataModule(data_dir=out, prepare={"hdf5_compression": "none"}).setup("fit")
    with pytest.raises(StaleOutputError, match=re.escape("keep_rate: existing 0.5, requested 0.3")):
        VPoserDataModule(data_dir=out, prepare=PrepareConfig()).setup("fit")
    with pytest.raises(StaleOutputError, match=re.escape("splits.vald: existing ['HumanEva']")):
        VPoserDataModule(data_dir=out, splits={**splits, "vald": ["ACCAD"]}).setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"num_workers": -1}, "num_workers=-1"),
        ({"persistent_workers": True}, "persistent_workers=True: needs num_workers > 0"),
        ({"splits": ["CMU"]}, "splits=\\['CMU'\\]"),
        ({"fields": "pose_body"}, "fields='pose_body'"),
        ({"prepare": {"keep_rate": 1.5}}, "keep_rate=1.5"),
        ({"prepare": {"augmentations": ["no_such_thing"]}}, "no_such_thing"),
        ({"prepare": {"keep_rat": 0.5}}, "unknown PrepareConfig settings \\['keep_rat'\\]"),
        ({"prepare": ["keep_rate"]}, "prepare=\\['keep_rate'\\]"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VPoserDataModule(data_dir="somewhere", **kwargs)


@pytest.mark.parametrize(
    ("stage", "splits"),
    [
        ("fit", {"train", "vald"}),
        ("validate", {"vald"}),
        ("test", {"test"}),
        ("predict", {"test"}),
        (None, {"train", "vald", "test"}),
    ],
)
def test_setup_maps_only_what_the_stage_needs(
    training_dir: Path, stage: str | None, splits: set[str]
) -> None:
    dm = prepared(training_dir)
    dm.setup(stage)
    assert set(dm.datasets) == splits
    assert all(isinstance(d, VPoserDataset) for d in dm.datasets.values())


def test_prepare_data_sets_no_state(training_dir: Path) -> None:
    dm = prepared(training_dir)
    before = dict(vars(dm))
    dm.prepare_data()  # already prepared with these settings: nothing to do
    assert vars(dm) == before and dm.datasets == {}


def test_train_loader_is_seeded_shuffled_and_drops_the_last_batch(training_dir: Path) -> None:
    def order(seed: int) -> list[tuple[int, int]]:
        dm = prepared(training_dir, fields=["pose_body", "seq_id", "frame_id"], batch_size=64)
        dm.seed = seed
        dm.setup("fit")
        batches = list(dm.train_dataloader())
        assert all(b["pose_body"].shape == (64, 63) for b in batches)
        assert len(batches) == len(dm.datasets["train"]) // 64
        return [
            (int(s), int(f))
            for b in batches
            for s, f in zip(b["seq_id"], b["frame_id"], strict=True)
        ]

    first, again, other = order(0), order(0), order(1)
    assert first == again and first != other
    train = VPoserDataset(training_dir / "stage_III" / "train", ["seq_id", "frame_id"])
    in_file_order = provenance(train)
    assert first != in_file_order[: len(first)]
    assert len(set(first)) == len(first)  # no sample twice in an epoch


def test_second_epoch_is_a_different_order(training_dir: Path) -> None:
    dm = prepared(training_dir, fields=["frame_id"], batch_size=64)
    dm.setup("fit")
    loader = dm.train_dataloader()
    first = torch.cat([b["frame_id"] for b in loader])
    second = torch.cat([b["frame_id"] for b in loader])
    assert not torch.equal(first, second)


@pytest.mark.parametrize("split", ["vald", "test"])
def test_eval_loaders_keep_every_sample_in_order(training_dir: Path, split: str) -> None:
    dm = prepared(training_dir, batch_size=50)
    dm.setup(None)
    loader = dm.val_dataloader() if split == "vald" else dm.test_dataloader()
    got = torch.cat([b["pose_body"] for b in loader])
    assert torch.equal(got, dm.datasets[split].tensors["pose_body"])
    assert len(got) % 50 != 0  # the partial last batch is kept
    assert torch.equal(torch.cat([b["pose_body"] for b in dm.predict_dataloader()]),
                       dm.datasets["test"].tensors["pose_body"])  # fmt: skip


def test_loader_settings(training_dir: Path) -> None:
    dm = prepared(training_dir, num_workers=2)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    assert loader.pin_memory == torch.cuda.is_available()
    assert not prepared(training_dir).train_dataloader().persistent_workers
    assert prepared(training_dir, pin_memory=True).val_dataloader().pin_memory


@pytest.mark.parametrize("loader", ["train", "val"])
def test_one_fancy_index_per_field_per_batch(
    training_dir: Path, monkeypatch: pytest.MonkeyPatch, loader: str
) -> None:
    """Each batch is one batched fetch (``__getitems__``): one ``index_select`` per field, and
    never a per-sample ``dataset[i]``."""
    calls = {"single": 0, "getitems": 0, "index_select": 0, "rows": 0}
    getitem, getitems = VPoserDataset.__getitem__, VPoserDataset.__getitems__
    index_select = torch.Tensor.index_select

    def counting_getitem(self: VPoserDataset, index: Any) -> Any:
        calls["single"] += isinstance(index, int)
        return getitem(self, index)

    def counting_getitems(self: VPoserDataset, indices: Any) -> Any:
        calls["getitems"] += 1
        calls["rows"] += len(indices)
        return getitems(self, indices)

    def counting_index_select(self: torch.Tensor, *args: Any) -> torch.Tensor:
        calls["index_select"] += 1
        return index_select(self, *args)

    monkeypatch.setattr(VPoserDataset, "__getitem__", counting_getitem)
    monkeypatch.setattr(VPoserDataset, "__getitems__", counting_getitems)
    monkeypatch.setattr(torch.Tensor, "index_select", counting_index_select)
    dm = prepared(training_dir, fields=["pose_body", "root_orient", "seq_id"], batch_size=32)
    dm.setup("fit")
    batches = list(dm.train_dataloader() if loader == "train" else dm.val_dataloader())
    rows = sum(len(b["seq_id"]) for b in batches)
    assert len(batches) > 3
    assert calls == {
        "single": 0,
        "getitems": len(batches),
        "index_select": 3 * len(batches),
        "rows": rows,
    }


def test_amass_dir_none_and_nothing_prepared_says_how_to_fix(tmp_path: Path) -> None:
    target = tmp_path / "not_prepared"
    dm = VPoserDataModule(data_dir=target)
    with pytest.raises(PrepareError, match="Pass amass_dir=") as info:
        dm.prepare_data()
    assert str(target) in str(info.value) and "vposer-data prepare" in str(info.value)
    assert not target.exists()  # nothing written for a mistyped path
    with pytest.raises(PrepareError, match="amass_dir"):
        dm.setup("fit")


def test_prepare_data_from_raw_amass_then_reuse(amass_tree: TreeCache, tmp_path: Path) -> None:
    amass = amass_tree(6000)
    out = tmp_path / "vposer"
    dm = VPoserDataModule(
        data_dir=out, amass_dir=amass, splits=TRAINING_SPLITS, prepare={"progress": False}
    )
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["train"]) > 0
    log = (out / "prepare.log").read_text()
    dm.prepare_data()  # done: nothing runs again
    again = VPoserDataModule(data_dir=str(out), splits=TRAINING_SPLITS)  # amass_dir=None
    again.prepare_data()
    again.setup("test")
    assert (out / "prepare.log").read_text() == log
    assert log.count("=== vposer_data") == 1


def test_setup_before_preparation_finished(amass_tree: TreeCache, tmp_path: Path) -> None:
    amass = amass_tree(6000)
    dm = VPoserDataModule(data_dir=tmp_path / "vposer", amass_dir=amass, splits=TRAINING_SPLITS)
    with pytest.raises(PrepareError, match="call prepare_data\\(\\) before setup\\(\\)"):
        dm.setup("fit")


def test_other_settings_are_loud(training_dir: Path) -> None:
    dm = prepared(training_dir, prepare={"keep_rate": 0.5})
    with pytest.raises(StaleOutputError, match=re.escape("keep_rate: existing 0.3, requested 0.5")):
        dm.setup("fit")
    with pytest.raises(StaleOutputError, match="keep_rate"):
        dm.prepare_data()
    other_splits = {**TRAINING_SPLITS, "test": ["SFU", "ACCAD"]}
    with pytest.raises(StaleOutputError, match=re.escape("splits.test")):
        prepared(training_dir, splits=other_splits).setup("test")


def test_damaged_file_is_named(training_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(training_dir, tmp_path / "copy"))
    victim = copy / "stage_III" / "vald" / "pose_body.pt"
    with open(victim, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ManifestError, match=re.escape("no longer match manifest.json")) as info:
        prepared(copy).setup("validate")
    assert str(victim) in str(info.value)
    victim.unlink()
    with pytest.raises(ManifestError, match="missing"):
        prepared(copy).setup("fit")


def test_incomplete_manifest(training_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(training_dir, tmp_path / "copy"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["complete"] = False
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PrepareError, match=r"preparation has not finished.*Pass amass_dir="):
        prepared(copy).setup("fit")


def test_a_stage_whose_split_is_absent(training_dir: Path) -> None:
    dm = VPoserDataModule(data_dir=training_dir, splits={"train": ["CMU"]})
    with pytest.raises(ValueError, match="setup\\('test'\\) needs a 'test' split"):
        dm.setup("test")
    with pytest.raises(ValueError, match="stage='train'"):
        dm.setup("train")
    with pytest.raises(ValueError, match="not among this VPoserDataModule's splits"):
        prepared(training_dir).dataset("holdout")


def test_batch_index_sampler() -> None:
    sampler = BatchIndexSampler(103, 10, seed=5)
    first = list(sampler)
    assert len(first) == len(sampler) == 10 and all(b.dtype == np.int64 for b in first)
    assert all(len(b) == 10 for b in first)
    assert len(set(np.concatenate(first).tolist())) == 100  # no row twice; 3 dropped
    second = list(sampler)  # without set_epoch, the next iteration is the next epoch
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    sampler.set_epoch(0)
    assert np.array_equal(np.concatenate(list(sampler)), np.concatenate(first))
    assert np.array_equal(
        np.concatenate(list(BatchIndexSampler(103, 10, seed=5))), np.concatenate(first)
    )
    keep_all = BatchIndexSampler(103, 10, shuffle=False, drop_last=False)
    assert len(keep_all) == 11
    assert np.array_equal(np.concatenate(list(keep_all)), np.arange(103))


def test_distributed_batch_index_sampler_shares_are_disjoint() -> None:
    shares = [
        np.concatenate(list(DistributedBatchIndexSampler(103, 4, num_replicas=3, rank=r, seed=1)))
        for r in range(3)
    ]
    assert [len(s) for s in shares] == [32, 32, 32]  # 34 each, less the partial batch of 2
    every = np.concatenate(shares)
    assert len(set(every.tolist())) == len(every)
    whole = [
        np.concatenate(
            list(DistributedBatchIndexSampler(103, 1, num_replicas=3, rank=r, drop_last=False))
        )
        for r in range(3)
    ]
    assert sorted(np.concatenate(whole).tolist()) == sorted(
        BatchIndexSampler(103, 1).indices(0)[:102].tolist()
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 10, "batch_size": 0}, {"size": -1, "batch_size": 2}, {"num_replicas": 2, "rank": 2}],
)
def test_batch_index_sampler_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        BatchIndexSampler(**{"size": 10, "batch_size": 2, **kwargs})


def test_batch_data_loader_fast_path_equals_the_dataloader(training_dir: Path) -> None:
    dataset = VPoserDataset(training_dir / "stage_III" / "train", ["pose_body", "frame_id"])

    def batches(loader_cls: type, workers: int) -> list[dict[str, torch.Tensor]]:
        loader = loader_cls(
            dataset,
            sampler=BatchIndexSampler(len(dataset), 100, seed=2),
            batch_size=None,
            collate_fn=collate_batch,
            num_workers=workers,
        )
        assert len(loader) == len(dataset) // 100
        return list(loader)

    fast, plain, workers = (
        batches(BatchDataLoader, 0),
        batches(DataLoader, 0),
        batches(BatchDataLoader, 2),
    )
    assert BatchDataLoader(dataset, num_workers=0)._fast() is False  # not a batch sampler
    for other in (plain, workers):
        assert len(other) == len(fast)
        for a, b in zip(fast, other, strict=True):
            assert type(a) is dict and a.keys() == b.keys()
            assert all(torch.equal(a[k], b[k]) for k in a)
