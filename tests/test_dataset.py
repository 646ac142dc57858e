"""VPoserDataset: memory-mapped fields, single and batched fetches, and its errors."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TRAINING_SPLITS, TreeCache, prepare
from torch.utils.data import DataLoader

from vposer_data.dataset import (
    DEFAULT_FIELDS,
    DatasetFormatError,
    DatasetNotFoundError,
    VPoserDataset,
    collate_batch,
    field_names,
)
from vposer_data.prepare import split_dir


@pytest.fixture(scope="module")
def train_dir(training_dir: Path) -> Path:
    return split_dir(training_dir, "train")


@pytest.fixture()
def copy_of_train(train_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the train split folder, to damage."""
    return Path(shutil.copytree(train_dir, tmp_path / "train"))


def test_default_fields_are_the_pose_fields_present(train_dir: Path) -> None:
    dataset = VPoserDataset(train_dir)
    present = set(field_names(train_dir))
    assert dataset.fields == tuple(f for f in DEFAULT_FIELDS if f in present)
    # an SMPL+H tree: body, root, hands and the matrot augmentation; no jaw or eyes
    assert dataset.fields == ("root_orient", "pose_body", "pose_body_matrot", "pose_hand")
    assert "seq_id" not in dataset.fields and "betas" not in dataset.fields


def test_smplx_default_fields_include_jaw_and_eyes(amass_tree: TreeCache, tmp_path: Path) -> None:
    data_dir = tmp_path / "vposer"
    prepare(amass_tree(8000, "smplx"), data_dir, TRAINING_SPLITS)
    dataset = VPoserDataset(split_dir(data_dir, "vald"))
    assert {"pose_jaw", "pose_eye"} <= set(dataset.fields)
    assert dataset[0]["pose_jaw"].shape == (3,) and dataset[0]["pose_eye"].shape == (6,)


def test_items_match_the_saved_tensors(train_dir: Path) -> None:
    fields = ["pose_body", "betas", "gender", "seq_id", "frame_id"]
    dataset = VPoserDataset(train_dir, fields)
    saved = {f: torch.load(train_dir / f"{f}.pt", weights_only=True) for f in fields}
    assert len(dataset) == saved["pose_body"].shape[0] > 100
    for index in (0, 7, len(dataset) - 1):
        item = dataset[index]
        assert set(item) == set(fields)
        for f in fields:
            assert torch.equal(item[f], saved[f][index])
            assert item[f].dtype == saved[f].dtype
    assert dataset[0]["pose_body"].shape == (63,)


def test_getitems_is_one_fancy_index_per_field(train_dir: Path) -> None:
    dataset = VPoserDataset(train_dir, ["pose_body", "root_orient", "seq_id"])
    indices = [5, 0, 17, 5, len(dataset) - 1]
    batch = dataset.__getitems__(indices)
    for f in dataset.fields:
        expected = torch.stack([dataset[i][f] for i in indices])
        assert torch.equal(batch[f], expected)
    assert batch["pose_body"].shape == (5, 63)
    assert torch.equal(dataset.__getitems__(torch.tensor(indices))["seq_id"], batch["seq_id"])
    with pytest.raises(IndexError):
        dataset.__getitems__([len(dataset)])


def _mapped_from(tensor: torch.Tensor) -> str | None:
    """The file whose memory mapping holds ``tensor``'s data (Linux /proc), or None."""
    pointer = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if start <= pointer < end:
            return parts[5] if len(parts) == 6 else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_fields_are_memory_mapped_and_items_are_copies(train_dir: Path) -> None:
    dataset = VPoserDataset(train_dir, ["pose_body"])
    assert _mapped_from(dataset.tensors["pose_body"]) == str(train_dir / "pose_body.pt")
    item = dataset[3]["pose_body"]
    assert _mapped_from(item) != str(train_dir / "pose_body.pt")  # a copy, not a view
    item.zero_()
    assert dataset[3]["pose_body"].abs().sum() > 0


def test_pickles_as_its_folder_and_fields(train_dir: Path) -> None:
    dataset = VPoserDataset(train_dir, ["pose_body", "frame_id"])
    blob = pickle.dumps(dataset)
    assert len(blob) < 1000  # workers re-map the files instead of receiving the data
    clone = pickle.loads(blob)
    assert clone.fields == dataset.fields and len(clone) == len(dataset)
    assert torch.equal(clone.__getitems__([1, 2])["pose_body"], dataset[1:3]["pose_body"])


def test_dataloader_with_workers_gets_whole_batches(train_dir: Path) -> None:
    dataset = VPoserDataset(train_dir, ["pose_body", "seq_id"])
    loader = DataLoader(
        dataset, batch_size=100, num_workers=2, collate_fn=collate_batch, drop_last=False
    )
    batches = list(loader)
    assert type(batches[0]) is dict and batches[0]["pose_body"].shape == (100, 63)
    every = torch.cat([b["pose_body"] for b in batches])
    assert torch.equal(every, dataset.tensors["pose_body"])


def test_default_collate_explains_itself(train_dir: Path) -> None:
    loader = DataLoader(VPoserDataset(train_dir), batch_size=4)  # PyTorch's default collate
    with pytest.raises(TypeError, match=re.escape("collate_fn=vposer_data.dataset.collate_batch")):
        next(iter(loader))


def test_single_field_name_as_string(train_dir: Path) -> None:
    assert VPoserDataset(train_dir, "pose_body").fields == ("pose_body",)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no such split folder") as info:
        VPoserDataset(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "nowhere") in str(info.value)


def test_missing_field_lists_the_fields_present(train_dir: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no field pose_tail") as info:
        VPoserDataset(train_dir, ["pose_body", "pose_tail"])
    message = str(info.value)
    assert str(train_dir) in message
    assert "fields present: " in message and "pose_body" in message and "seq_id" in message


def test_folder_without_pose_body(tmp_path: Path) -> None:
    torch.save(torch.zeros(4, 3), tmp_path / "trans.pt")
    with pytest.raises(
        DatasetNotFoundError, match=re.escape("no pose_body.pt; fields present: ['trans']")
    ):
        VPoserDataset(tmp_path)


@pytest.mark.parametrize("fields", [[], [1], ["pose_body", "pose_body"]])
def test_bad_field_lists(train_dir: Path, fields: list) -> None:
    with pytest.raises(ValueError, match="fields="):
        VPoserDataset(train_dir, fields)


def test_unequal_lengths(copy_of_train: Path) -> None:
    torch.save(torch.zeros(3, 3), copy_of_train / "root_orient.pt")
    with pytest.raises(DatasetFormatError, match="fields of unequal length") as info:
        VPoserDataset(copy_of_train, ["pose_body", "root_orient"])
    assert isinstance(info.value, ValueError) and str(copy_of_train) in str(info.value)


class NotATensor:
    pass


def test_pickled_objects_are_refused(copy_of_train: Path) -> None:
    torch.save({"x": NotATensor()}, copy_of_train / "pose_body.pt")
    with pytest.raises(DatasetFormatError, match="refused, it holds more than plain tensors") as i:
        VPoserDataset(copy_of_train, ["pose_body"])
    assert str(copy_of_train / "pose_body.pt") in str(i.value)
    assert "NotATensor" in str(i.value) and "\x1b" not in str(i.value)


def test_a_dict_of_tensors_is_refused(copy_of_train: Path) -> None:
    torch.save({"pose_body": torch.zeros(3, 63)}, copy_of_train / "pose_body.pt")
    with pytest.raises(DatasetFormatError, match="holds a dict, expected one tensor"):
        VPoserDataset(copy_of_train, ["pose_body"])


def test_unreadable_file(copy_of_train: Path) -> None:
    (copy_of_train / "pose_body.pt").write_bytes(b"not a torch file")
    with pytest.raises(
        DatasetFormatError, match=re.escape("pose_body.pt: not a readable torch.save file")
    ):
        VPoserDataset(copy_of_train, ["pose_body"])


def test_repr(train_dir: Path) -> None:
    text = repr(VPoserDataset(train_dir, ["pose_body"]))
    assert "pose_body(63,)" in text and "samples" in text
