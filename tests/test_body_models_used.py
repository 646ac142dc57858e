"""Which model files a preparation uses: found before any stage runs (both layouts, each
motion's own gender or neutral), refused when they would run code, known by their SHA-256
(copied: the same output; another file: a stale output naming it); the settings and errors
around them; the DataModule serving the fields."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import file_hashes, load_split, prepare, read_manifest
from test_body_fields import body_config, write_family_tree

from vposer_data import interrupts
from vposer_data.cli import build_parser
from vposer_data.config import PrepareConfig
from vposer_data.datamodule import VPoserDataModule
from vposer_data.errors import ConfigError, PrepareError, StaleOutputError
from vposer_data.model_files import BodyModelError, ChumpyModelError
from vposer_data.models_used import MissingBodyModelError, motion_model
from vposer_data.synthetic import write_motion_npz
from vposer_data.synthetic_models import model_path, write_body_models

SPLITS = {"train": ["CMU"], "vald": ["HumanEva"], "test": ["SFU"]}
SEED = 5


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMPL+H motions of every gender in each split. Read-only."""
    return write_family_tree(tmp_path_factory.mktemp("tree"), "smplh")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SMPL+H models of every gender, AMASS layout. Read-only."""
    root = tmp_path_factory.mktemp("models")
    write_body_models(root, families=("smplh",), seed=SEED)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tree: Path, models: Path) -> Path:
    """``tree`` prepared with joints and contacts. Read-only: tests copy it."""
    out = tmp_path_factory.mktemp("prepared") / "out"
    prepare(tree, out, SPLITS, **body_config(models))
    return out


def test_each_motion_is_known_by_family_and_gender(tree: Path, tmp_path: Path) -> None:
    found = {motion_model(path) for path in tree.rglob("*.npz")}
    assert found == {("smplh", "male"), ("smplh", "female"), ("smplh", "neutral")}
    rng = np.random.default_rng(0)
    deflated = tmp_path / "deflated_poses.npz"  # read through zipfile
    write_motion_npz(deflated, "smplx", 10, 30.0, b"Female ", np.zeros(16), rng, compress=True)
    assert motion_model(deflated) == ("smplx", "female")
    split_keys = tmp_path / "split_keys.npz"  # no poses: the family from the keys stored
    np.savez(split_keys, root_orient=np.zeros((2, 3)), pose_body=np.zeros((2, 63)),
             pose_hand=np.zeros((2, 90)), gender=np.array("male"))  # fmt: skip
    assert motion_model(split_keys) == ("smplh", "male")
    (tmp_path / "shape.npz").write_bytes(b"")
    (tmp_path / "x_poses.npz").write_bytes(b"not a zip")
    assert motion_model(tmp_path / "shape.npz") is None
    assert motion_model(tmp_path / "x_poses.npz") is None


def test_the_labels_do_not_depend_on_the_number_of_readers(models: Path, tmp_path: Path) -> None:
    """Stage I poses the feet of an item's motions together (8 files): in reader processes
    and in threads, whatever their number, the items and so every output byte are the same.
    Twelve motions in the training split: two items."""
    datasets = ("CMU", "HumanEva", "SFU", "ACCAD", "BMLmovi")
    tree = write_family_tree(tmp_path / "tree", "smplh", frames=90, datasets=datasets)
    splits = {"train": list(datasets[:4]), "vald": ["BMLmovi"]}
    outputs = []
    for workers in (0, 1, 2):
        out = tmp_path / f"out{workers}"
        prepare(tree, out, splits, num_workers=workers, **body_config(models))
        outputs.append(file_hashes(out))
    assert outputs[0] == outputs[1] == outputs[2]
    assert any("contacts" in name for name in outputs[0])


def test_ctrl_c_while_models_are_read_leaves_no_reader_behind(
    tree: Path, models: Path, tmp_path: Path
) -> None:
    """The models are read on a helper thread while the motions are scanned: a Ctrl-C at the
    scan's second motion (the first model's read begun) stops the run there, nothing made,
    and the helper thread is gone when the stop arrives."""
    before = threading.active_count()
    out = tmp_path / "out"
    with interrupts.ctrl_c_at("inputs", 2), pytest.raises(interrupts.Interrupted):
        prepare(tree, out, SPLITS, **body_config(models))
    assert threading.active_count() == before
    assert not out.exists()


def test_a_missing_gender_stops_before_anything_is_made(
    tree: Path, models: Path, tmp_path: Path
) -> None:
    partial = tmp_path / "models"
    shutil.copytree(models, partial)
    shutil.rmtree(partial / "smplh" / "female")
    out = tmp_path / "out"
    with pytest.raises(MissingBodyModelError) as caught:
        prepare(tree, out, SPLITS, **body_config(partial))
    message = str(caught.value)
    assert str(partial / "smplh" / "female" / "model.npz") in message  # both layouts
    assert str(partial / "smplh" / "SMPLH_FEMALE.npz") in message
    assert "CMU/s1/m1_poses.npz" in message and "needed by 3 motion(s)" in message
    assert "body_model_gender='neutral'" in message
    assert not out.exists()
    # the neutral model for every motion: no female model needed
    prepare(tree, out, SPLITS, **body_config(partial), body_model_gender="neutral")
    recorded = read_manifest(out)["body_models"]
    assert list(recorded) == ["smplh/neutral"]


def test_both_layouts_give_the_same_joints(prepared: Path, models: Path, tmp_path: Path) -> None:
    other = tmp_path / "smplx_layout"
    write_body_models(other, families=("smplh",), layouts=("smplx",), seed=SEED)
    out = tmp_path / "out"
    prepare(Path(read_manifest(prepared)["amass_dir"]), out, SPLITS, **body_config(other))
    for name in ("joints", "contacts", "floor_z"):
        assert torch.equal(load_split(out, "train")[name], load_split(prepared, "train")[name])
    files = read_manifest(out)["body_models"]
    assert files["smplh/male"]["file"] == str(model_path(other, "smplh", "male", "smplx"))


def test_copied_models_are_the_same_output(
    prepared: Path, tree: Path, models: Path, tmp_path: Path
) -> None:
    out, copied = tmp_path / "out", tmp_path / "elsewhere"
    shutil.copytree(prepared, out)
    shutil.copytree(models, copied)
    result = prepare(tree, out, SPLITS, **body_config(copied))
    assert result.ran == []


def test_another_model_file_is_a_stale_output_naming_it(
    prepared: Path, tree: Path, models: Path, tmp_path: Path
) -> None:
    out, changed = tmp_path / "out", tmp_path / "changed"
    shutil.copytree(prepared, out)
    shutil.copytree(models, changed)
    write_body_models(changed, families=("smplh",), genders=("female",), seed=SEED + 1)
    with pytest.raises(StaleOutputError) as caught:
        prepare(tree, out, SPLITS, **body_config(changed))
    message = str(caught.value)
    assert str(changed / "smplh" / "female" / "model.npz") in message
    assert "body model smplh/female" in message and "smplh/male" not in message
    result = prepare(tree, out, SPLITS, overwrite=True, **body_config(changed))
    assert "stage_II/train" in result.ran
    assert not torch.equal(
        load_split(out, "train")["joints"], load_split(prepared, "train")["joints"]
    )


def test_a_complete_folder_is_rerun_without_reading_its_motions(
    prepared: Path, tree: Path, models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rerun with nothing to do (a training job's prepare_data) takes the models a complete
    folder records instead of reading every motion's zip directory (17k files in AMASS); the
    models are still looked for and checked by SHA-256 (the test above). Changed AMASS files
    make the folder stale, named, without every motion being looked at for its model."""
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    shortcut = "inputs recorded: body models as recorded"
    with caplog.at_level(logging.DEBUG, logger="vposer_data"):
        result = prepare(tree, out, SPLITS, **body_config(models))
    assert not result.ran and shortcut in caplog.text
    assert file_hashes(out) == file_hashes(prepared)
    partial = tmp_path / "models"
    shutil.copytree(models, partial)
    shutil.rmtree(partial / "smplh" / "female")
    with pytest.raises(MissingBodyModelError, match="smplh female model this folder was"):
        prepare(tree, out, SPLITS, **body_config(partial))
    changed = tmp_path / "tree"
    shutil.copytree(tree, changed)
    rng = np.random.default_rng(1)
    write_motion_npz(changed / "SFU" / "s0" / "m0_poses.npz", "smplh", 60, 120.0, "male",
                     np.zeros(16), rng)  # fmt: skip
    caplog.clear()
    with (
        caplog.at_level(logging.DEBUG, logger="vposer_data"),
        pytest.raises(StaleOutputError, match=r"m0_poses\.npz"),
    ):
        prepare(changed, out, SPLITS, **body_config(models))
    assert shortcut in caplog.text
    assert file_hashes(out) == file_hashes(prepared)


def test_a_pickle_that_would_run_code_is_refused_before_any_stage(
    tree: Path, models: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    shutil.copytree(models, folder)
    shutil.rmtree(folder / "smplh" / "male")
    pkl = folder / "smplh" / "SMPLH_MALE.pkl"
    pkl.write_bytes(b"\x80\x02cchumpy.ch\nCh\nq\x00.")  # a pickle naming chumpy's Ch
    out = tmp_path / "out"
    with pytest.raises(ChumpyModelError, match="chumpy"):
        prepare(tree, out, SPLITS, **body_config(folder))
    assert not out.exists()
    marker = tmp_path / "ran"
    pkl.write_bytes(f"cos\nsystem\n(Vtouch {marker}\ntR.".encode())  # protocol 0: os.system
    with pytest.raises(BodyModelError, match="refused"):
        prepare(tree, out, SPLITS, **body_config(folder))
    assert not marker.exists() and not out.exists()


def test_body_fields_without_body_model_dir_are_a_config_error(
    tree: Path, prepared: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="body_model_dir is None"):
        prepare(tree, out, SPLITS, augmentations=["joints"])
    assert not out.exists()
    config = PrepareConfig(augmentations=["contacts"])  # a setting alone is not an error
    assert config.body_model_gender == "file" and "body_model_gender" in config.identity()
    assert "body_model_gender" not in PrepareConfig().identity()
    assert "body_model_dir" not in config.identity()
    with pytest.raises(ConfigError, match="body_model_gender='female'"):
        PrepareConfig(body_model_gender="female")
    with pytest.raises(ConfigError, match="'set' must be one of body, all"):
        PrepareConfig(augmentations=[{"name": "joints", "set": "hands"}])
    # a prepared folder is served without the models
    dm = VPoserDataModule(data_dir=prepared, fields=["joints", "contacts", "floor_z"])
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["joints"].shape[1:] == (52, 3) and batch["contacts"].dtype == torch.uint8


def test_set_all_refuses_a_split_of_several_families(models: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_family_tree(tree, "smplh", datasets=("CMU", "HumanEva"))
    write_family_tree(tree, "smplx", datasets=("KIT", "SFU"))
    splits = {"train": ["CMU", "KIT"], "vald": ["HumanEva"], "test": ["SFU"]}
    with pytest.raises(ConfigError, match="split 'train' mixes body-model families"):
        prepare(tree, tmp_path / "out", splits, **body_config(models))
    assert not (tmp_path / "out").exists()


def test_the_command_has_the_flags(models: Path, tree: Path) -> None:
    args = build_parser().parse_args(
        [
            "prepare",
            "--amass-dir",
            str(tree),
            "--out",
            "x",
            "--augment",
            "joints",
            "--body-model-dir",
            str(models),
            "--body-model-gender",
            "neutral",
        ]
    )
    assert args.body_model_dir == str(models) and args.body_model_gender == "neutral"


def test_statistics_and_normalize_serve_the_fields(prepared: Path) -> None:
    dm = VPoserDataModule(
        data_dir=prepared,
        fields=["joints", "floor_z", "contacts"],
        normalize=["joints", "floor_z"],
        batch_size=16,
    )
    dm.setup("fit")
    stats = dm.statistics
    assert stats is not None
    assert stats["joints"]["mean"].shape == (52, 3) and stats["floor_z"]["mean"].shape == ()
    assert "contacts" not in stats  # 0/1 labels: no statistics
    batch = next(iter(dm.train_dataloader()))
    raw = load_split(prepared, "train")["joints"]
    mean, std = stats["joints"]["mean"], stats["joints"]["std"]
    assert torch.allclose(((raw - mean) / std).mean(dim=0), torch.zeros(52, 3), atol=1e-4)
    back = dm.denormalize(batch)
    assert float(back["joints"][..., 2].max()) < 3 and np.isfinite(batch["joints"].numpy()).all()


def test_info_lists_the_models_and_the_report_draws_a_stick_figure(
    prepared: Path, models: Path
) -> None:
    pytest.importorskip("matplotlib")
    from vposer_data.report import report_figure
    from vposer_data.stick_figure import motion_strip
    from vposer_data.summary import summarize

    text = summarize(prepared)
    for gender in ("male", "female", "neutral"):
        path = model_path(models, "smplh", gender, "amass")
        assert f"smplh  {gender:<8s} {path}  sha256 " in text
    strip = motion_strip(prepared, frames=5)
    assert strip is not None and strip.joints.shape == (5, 52, 3)
    assert strip.contacts is not None and strip.contacts.shape == (5, 4)
    titles = [ax.get_title() for ax in report_figure(prepared).axes]
    assert any("feet: red in contact" in title for title in titles)


def test_a_resume_without_amass_finds_the_recorded_models_again(
    prepared: Path, models: Path, tmp_path: Path
) -> None:
    """Stage I recorded, the rest to do, amass_dir None: the models the folder records are
    looked for again in body_model_dir (a copy here) and the result is the same."""
    out, copied = tmp_path / "out", tmp_path / "copied"
    shutil.copytree(prepared, out)
    shutil.copytree(models, copied)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stages"]["stage_II"], manifest["stages"]["stage_III"] = {}, {}
    manifest["complete"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    for folder in ("stage_II", "stage_III"):
        shutil.rmtree(out / folder)
    (out / "statistics.pt").unlink()
    with pytest.raises(PrepareError, match="pass body_model_dir"):
        prepare(None, out, SPLITS, **body_config(models, body_model_dir=None))
    result = prepare(None, out, SPLITS, **body_config(copied))
    assert "stage_II/train" in result.ran
    assert file_hashes(out) == file_hashes(prepared)
    assert read_manifest(out)["body_models"]["smplh/male"]["file"].startswith(str(copied))
