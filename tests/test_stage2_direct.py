"""Stage II's uncompressed file is written by the DataLoader workers themselves, each batch's
rows straight into contiguous datasets allocated up front. At a size with many batches whose
boundaries fall anywhere (and several workers), the file holds exactly what the chunked,
compressed path writes through the single writer, any HDF5 reader reads it, and Stage III's
direct read of a contiguous dataset agrees with h5py's."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import file_hashes, prepare

from vposer_data.h5chunks import column_region

SPLITS = {"train": ["CMU", "KIT", "BML"], "vald": ["HumanEva"]}


@pytest.fixture(scope="module")
def prepared(amass_tree, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tree = amass_tree(60_000, seed=5)
    outs = {}
    for compression, workers in (("none", 2), ("lzf", 2), ("gzip", 2), ("none", 0)):
        out = tmp_path_factory.mktemp(f"direct_{compression}_{workers}") / "V02"
        prepare(
            tree,
            out,
            SPLITS,
            hdf5_compression=compression,
            num_workers=workers,
            batch_size=997,  # batches straddle everything
            augmentations=[{"name": "noise", "sigma": 0.01}, "mirror", "matrot"],
            augment_passes=2,
        )
        outs[f"{compression}/{workers}"] = out
    return outs


def test_direct_writes_equal_the_compressed_path(prepared: dict[str, Path]) -> None:
    for split in SPLITS:
        with (
            h5py.File(prepared["none/2"] / "stage_II" / f"{split}.h5", "r") as direct,
            h5py.File(prepared["lzf/2"] / "stage_II" / f"{split}.h5", "r") as chunked,
        ):
            assert sorted(direct) == sorted(chunked)
            if split == "train":  # many batches, two passes
                assert direct["pose_body"].shape[0] > 8 * 997
            for name in direct:
                assert direct[name].chunks is None and direct[name].compression is None
                assert chunked[name].chunks is not None
                assert direct[name].dtype == chunked[name].dtype
                np.testing.assert_array_equal(direct[name][...], chunked[name][...])
            assert dict(direct.attrs)["source_rows"] == dict(chunked.attrs)["source_rows"]


def test_the_final_tensors_do_not_depend_on_the_compression(prepared: dict[str, Path]) -> None:
    """Stage III saves a contiguous dataset from its place in the HDF5 file, and inflates a
    compressed one into a spill file first (removed after): the same files either way."""
    final = file_hashes(prepared["none/2"])
    assert file_hashes(prepared["lzf/2"]) == final
    assert file_hashes(prepared["gzip/2"]) == final


def test_the_worker_count_does_not_change_the_contents(prepared: dict[str, Path]) -> None:
    assert file_hashes(prepared["none/2"]) == file_hashes(prepared["none/0"])
    for split in SPLITS:  # the files differ only in the configuration attribute
        with (
            h5py.File(prepared["none/2"] / "stage_II" / f"{split}.h5", "r") as two,
            h5py.File(prepared["none/0"] / "stage_II" / f"{split}.h5", "r") as none,
        ):
            for name in two:
                np.testing.assert_array_equal(two[name][...], none[name][...])


def test_reading_a_contiguous_dataset_directly_agrees_with_h5py(prepared: dict[str, Path]) -> None:
    with h5py.File(prepared["none/2"] / "stage_II" / "train.h5", "r") as h5:
        for name in h5:
            region = column_region(h5[name])
            assert region is not None
            fast = np.memmap(region[0], h5[name].dtype, "r", region[1], h5[name].shape)
            np.testing.assert_array_equal(fast, h5[name][...])


def test_a_failed_direct_write_comes_back_as_its_reason(
    prepared: dict[str, Path], tmp_path: Path
) -> None:
    """A worker's write that fails (a full disk shows as ENOSPC here) is not raised inside
    the worker, where the DataLoader would wrap it in a traceback: its reason travels back
    with the batch, and the writer raises it naming the file."""
    from vposer_data.manifest import Manifest
    from vposer_data.stages.stage2 import AugmentedBatches, FieldLayout

    out = prepared["none/0"]
    record = Manifest.load(out).record("stage_I", "train")
    assert record is not None
    dataset = AugmentedBatches(
        out / "stage_I" / "train", list(record["fields"]), record["samples"], 64, 1, (), 0
    )
    layouts = {
        name: FieldLayout(tuple(meta["shape"][1:]), meta["dtype"], 64, offset=0)
        for name, meta in record["fields"].items()
    }
    dataset.layouts = layouts
    dataset.direct_file = tmp_path  # a folder: opening it for writing fails (EISDIR)
    pieces = dataset[0]
    assert pieces.error == "Is a directory"
    assert pieces.rows == [] and pieces.chunks == []


def test_the_writer_leaves_no_descriptor_open(amass_tree, tmp_path: Path) -> None:
    """With no workers the writer augments and writes the batches itself; the descriptor it
    opened on the HDF5 file is closed when the stage ends."""
    tree = amass_tree()
    before = set(os.listdir("/proc/self/fd"))
    prepare(tree, tmp_path / "V02", num_workers=0)
    opened = {
        os.readlink(f"/proc/self/fd/{fd}")
        for fd in set(os.listdir("/proc/self/fd")) - before
        if os.path.exists(f"/proc/self/fd/{fd}")
    }
    assert not [path for path in opened if ".h5" in path], opened


def _mapped_resident_kb(folder: Path) -> int:
    """Resident kB of this process's mappings of files in ``folder`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5].startswith(str(folder))
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps")
def test_a_batch_unmaps_the_stage_I_rows_it_has_used(tmp_path: Path) -> None:
    """A Stage II worker reads the split's Stage I tensors through a mapping; the rows up to
    the end of each batch are unmapped after it, so the process holds about a batch of them
    (and what the kernel maps ahead, up to a large page-cache folio), not every page it has
    read, and the output is the same. At a realistic size: 64 MB, 32 batches, two passes."""
    from vposer_data.stages.stage2 import AugmentedBatches, FieldLayout

    folder = tmp_path / "stage_I"
    folder.mkdir()
    rows, batch = 266_305, 8192  # 252-byte rows: batches straddle pages
    source = torch.arange(rows * 63, dtype=torch.float32).reshape(rows, 63)
    torch.save(source, folder / "pose_body.pt")
    split_kb = rows * 252 // 1024
    layout = FieldLayout((63,), "float32", batch, offset=0)
    written = {}
    for release in (True, False):
        dataset = AugmentedBatches(folder, ["pose_body"], rows, batch, 2, (), 0)
        dataset.layouts = {"pose_body": layout}
        dataset.direct_file = tmp_path / f"out-{release}.bin"
        dataset.direct_file.write_bytes(b"")
        if not release:
            dataset._release_source = lambda rows: None  # type: ignore[method-assign]
        gc.collect()  # earlier datasets no longer map the file
        before = _mapped_resident_kb(folder)
        most = 0
        for index in range(len(dataset)):  # the rows are read as the worker writes them
            assert dataset[index].error is None
            most = max(most, _mapped_resident_kb(folder) - before)
        dataset.close()
        written[release] = dataset.direct_file.read_bytes()
        if release:  # at most a batch and a 2 MB folder ahead: 4 MB, where the split is 64 MB
            assert most < 2 * batch * 252 // 1024 + 2048
        else:  # what the check above guards against: every page read stays
            assert most > 0.9 * split_kb
    assert written[True] == written[False]
    assert written[True][: rows * 252] == source.numpy().tobytes()
