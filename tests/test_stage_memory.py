"""Stages I and III write each field as it comes, not the split held in memory: every file is
what ``torch.save`` of its whole tensor writes, Stage I's rows are their source frames, for
any keep rate and with reader processes; and the peak memory of a run does not grow with the
data kept."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SPLITS, TreeCache, prepare, read_manifest, record_problems

from vposer_data.stages.stage1 import GENDER_CODES

KEEP_RATES = [0.3, 1.0]


@pytest.fixture(scope="module")
def kept(amass_tree: TreeCache, tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """A 20,000-frame tree prepared at each keep rate, files read in two worker processes
    (their arrays come back through shared memory). Read-only."""
    tree = amass_tree(20_000)
    outs = {}
    for keep_rate in KEEP_RATES:
        out = tmp_path_factory.mktemp(f"keep{keep_rate}") / "out"
        prepare(tree, out, keep_rate=keep_rate, num_workers=2)
        outs[keep_rate] = out
    return outs


def _saved_whole(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("keep_rate", KEEP_RATES)
def test_each_file_is_torch_save_of_its_whole_tensor(kept: dict[float, Path], keep_rate: float):
    out = kept[keep_rate]
    folders = sorted(p for stage in ("stage_I", "stage_III") for p in (out / stage).iterdir())
    files = sorted(p for folder in folders for p in folder.glob("*.pt"))
    assert len(files) > 20
    for path in files:
        assert path.read_bytes() == _saved_whole(torch.load(path, weights_only=True)), path
    assert record_problems(out) == []  # sizes and checksums recorded are the files'
    for folder in folders:  # only tensors: no spill file left behind
        assert all(p.suffix == ".pt" for p in folder.iterdir()), folder


@pytest.mark.parametrize("keep_rate", KEEP_RATES)
def test_stage_i_rows_are_their_source_frames(
    amass_tree: TreeCache, kept: dict[float, Path], keep_rate: float
) -> None:
    """Every row of every split against the source file its ``seq_id`` names, at the frame
    its ``frame_id`` names, read here with numpy."""
    tree = amass_tree(20_000)
    out = kept[keep_rate]
    record = read_manifest(out)["stages"]["stage_I"]
    for split in SPLITS:
        fields = {
            p.stem: torch.load(p, weights_only=True).numpy()
            for p in (out / "stage_I" / split).glob("*.pt")
        }
        files = record[split]["files"]
        assert np.array_equal(np.unique(fields["seq_id"]), np.arange(len(files)))
        assert (np.diff(fields["seq_id"]) >= 0).all()  # in the files' order
        for seq_id, entry in enumerate(files):
            rows = fields["seq_id"] == seq_id
            assert rows.sum() == entry["kept"]
            with np.load(tree / entry["path"]) as npz:
                frames = fields["frame_id"][rows]
                poses = npz["poses"][frames].astype(np.float32)
                assert np.array_equal(fields["root_orient"][rows], poses[:, :3])
                assert np.array_equal(fields["pose_body"][rows], poses[:, 3:66])
                assert np.array_equal(fields["pose_hand"][rows], poses[:, 66:156])
                assert np.array_equal(
                    fields["trans"][rows], npz["trans"][frames].astype(np.float32)
                )
                betas = npz["betas"].astype(np.float32)
                assert (fields["betas"][rows] == betas).all()
                gender = str(np.asarray(npz["gender"]).astype(str))
                assert (fields["gender"][rows] == GENDER_CODES[gender]).all()


#: Run in a fresh process: how much the peak resident size (VmHWM) grows over a whole prepare
#: run, above what imports took.
PEAK_SCRIPT = """
import json, sys
from pathlib import Path
import h5py, numpy, torch
from vposer_data.config import PrepareConfig
from vposer_data.prepare import prepare_vposer_datasets
from vposer_data.splits import AMASS_SPLITS

def peak():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

before = peak()
config = PrepareConfig(progress=False, **json.loads(sys.argv[3]))
result = prepare_vposer_datasets(AMASS_SPLITS, sys.argv[1], sys.argv[2], config=config)
print(peak() - before)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_data_kept(amass_tree: TreeCache, tmp_path: Path):
    """400,000 raw frames, all kept: about 220 MB of Stage I rows and 440 MB of final
    tensors (the training split's largest column 184 MB), which the run held whole before
    (its peak grew by about 230 MB); now it holds a few blocks and windows (about 75 MB)."""
    tree = amass_tree(400_000, "smplh", seed=0)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(PEAK_SCRIPT),
            str(tree),
            str(tmp_path / "out"),
            json.dumps({"keep_rate": 1.0}),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    grown = int(done.stdout.strip())
    assert grown < 160 << 20, f"the peak grew by {grown / 2**20:.0f} MB"
    samples = read_manifest(tmp_path / "out")["stages"]["stage_III"]["train"]["samples"]
    assert samples * 189 * 4 > 170 << 20  # pose_body_matrot of train: the size claimed
