"""The report figure and ``vposer-data report``: a valid, readable PNG of a prepared folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from helpers import TRAINING_FRAMES, TRAINING_SPLITS, TreeCache, prepare

from vposer_data.cli import main
from vposer_data.dataset import VPoserDataset
from vposer_data.manifest import Manifest
from vposer_data.prepare import split_dir
from vposer_data.report import BODY_JOINTS, joint_angles, report_figure, samples_per_dataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data_dir(amass_tree: TreeCache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "vposer"
    augmentations = [{"name": "mirror", "p": 0.5}, "matrot"]
    tree = amass_tree(TRAINING_FRAMES)
    prepare(tree, out, TRAINING_SPLITS, augmentations=augmentations, augment_passes=2)
    return out


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 800 <= width <= 2000 and 600 <= height <= 1400
    assert image.std() > 0.05  # not a blank canvas


def test_samples_per_dataset_counts_what_training_reads(data_dir: Path) -> None:
    counts = samples_per_dataset(data_dir)
    manifest = Manifest.load(data_dir)
    assert set(counts) == {"train", "vald", "test"}
    assert set(counts["train"]) == {"CMU", "KIT", "BML"}
    for split, per_dataset in counts.items():
        assert sum(per_dataset.values()) == manifest.record("stage_III", split)["samples"]
        planned = manifest.record("stage_I", split)["datasets"]
        passes = 2 if split == "train" else 1  # two augmentation passes of augment_splits
        assert per_dataset == {k: passes * v for k, v in planned.items()}


def test_joint_angles(data_dir: Path) -> None:
    folder = split_dir(data_dir, "train")
    angles = joint_angles(folder)
    pose = VPoserDataset(folder, ["pose_body"]).tensors["pose_body"].numpy()
    assert angles.shape == (len(pose), len(BODY_JOINTS))
    expected = np.degrees(np.linalg.norm(pose[:, :3].astype(np.float64), axis=1))
    assert np.allclose(angles[:, 0], expected)
    assert joint_angles(folder, max_samples=50).shape == (50, 21)
    assert np.array_equal(
        joint_angles(folder, max_samples=50), joint_angles(folder, max_samples=50)
    )


def test_report_figure_has_its_three_panels(data_dir: Path) -> None:
    figure = report_figure(data_dir)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "Samples per source dataset",
        "Joint rotation angles per split (all 21 body joints)",
        "Per joint: median and interquartile range",
    ]


def test_report_command_writes_a_png(data_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "figures" / "report.png"
    assert main(["report", str(data_dir), "--out", str(out)]) == 0
    assert f"Wrote {out}" in capsys.readouterr().out
    _check_png(out)


def test_report_default_path_and_all_samples(data_dir: Path, tmp_path: Path) -> None:
    assert main(["report", str(data_dir), "--max-samples", "0"]) == 0
    _check_png(data_dir / "report.png")
    (data_dir / "report.png").unlink()


def test_report_of_an_unprepared_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.png")]) == 2
    assert "not a prepared folder" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()
