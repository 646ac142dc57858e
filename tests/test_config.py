"""PrepareConfig as the one declaration of every setting: the command's flags, the folder
identity and the documentation's settings table (tests/test_docs.py) are made from it; the
layers that read a prepared folder import no torch; every user error is a VPoserDataError."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import vposer_data
from vposer_data import (
    ConfigError,
    PrepareConfig,
    StaleOutputError,
    VPoserDataError,
    prepare_vposer_datasets,
)
from vposer_data.cli import build_parser
from vposer_data.cli import main as cli_main
from vposer_data.synthetic import write_amass_tree

QUIET = {"progress": False, "num_workers": 0}
SPLITS = {"train": ["CMU"], "vald": ["HumanEva"]}


def test_every_setting_has_a_flag_with_its_help() -> None:
    parser = build_parser()
    prepare = next(
        a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "prepare"
    )[1]  # type: ignore[union-attr]
    flags = {a.dest: a for a in prepare._actions}
    for f in dataclasses.fields(PrepareConfig):
        assert f.name in flags, f"no flag for {f.name}"
        first_words = f.metadata["help"].replace("`", "").split()[:3]
        assert " ".join(first_words) in (flags[f.name].help or ""), f.name
    assert "--compression-level" in flags["hdf5_compression_level"].option_strings


def test_flags_not_given_keep_the_defaults_and_given_ones_are_used() -> None:
    from vposer_data.cli import _config_from_args

    args = build_parser().parse_args(["prepare", "--amass-dir", "a", "--out", "o"])
    assert _config_from_args(args) == PrepareConfig()
    args = build_parser().parse_args(
        ["prepare", "--amass-dir", "a", "--out", "o", "--compression", "gzip",
         "--compression-level", "4", "--target-fps", "30", "--augment", "mirror",
         "--augment", '{"name": "noise", "sigma": 0.02}', "--augment", "matrot",
         "--stats-split", "none", "--no-progress", "--fps-overrides", "{}"]
    )  # fmt: skip
    config = _config_from_args(args)
    assert config.hdf5_compression == "gzip" and config.hdf5_compression_level == 4
    assert config.sampling == "fps" and config.target_fps == 30
    assert [s.name for s in config.augmentations] == ["mirror", "noise", "matrot"]
    assert config.stats_split is None and config.progress is False
    assert config.fps_overrides == {}


def test_target_fps_zero_is_an_error_not_random_sampling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="target_fps=0"):
        PrepareConfig(target_fps=0)
    code = cli_main(["prepare", "--amass-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--target-fps", "0"])  # fmt: skip
    assert code == 2
    assert "--target-fps 0: expected a rate > 0 in Hz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_identity_holds_only_what_changes_the_final_tensors() -> None:
    base = PrepareConfig().identity()
    assert "hdf5_compression" not in base and "hdf5_compression_level" not in base
    assert "num_workers" not in base and "strict" not in base and "progress" not in base
    assert PrepareConfig(hdf5_compression="gzip", hdf5_compression_level=9).identity() == base
    # target_fps under random sampling, keep_rate under fps sampling
    assert PrepareConfig(target_fps=25).identity() == base
    fps = PrepareConfig(sampling="fps", target_fps=30)
    assert "keep_rate" not in fps.identity()
    assert PrepareConfig(sampling="fps", target_fps=30, keep_rate=0.5).identity() == fps.identity()
    # batch_size decides the draws of random augmentations only
    assert "batch_size" not in base
    noisy = PrepareConfig(augmentations=["noise", "matrot"])
    assert noisy.identity()["batch_size"] == 8192


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("config_tree")
    write_amass_tree(root, total_frames=6000, seed=3)
    return root


@pytest.mark.parametrize(
    "change",
    [
        {"hdf5_compression": "gzip"},
        {"hdf5_compression": "lzf"},
        {"hdf5_compression_level": 7},
        {"target_fps": 12.5},
    ],
    ids=["gzip", "lzf", "level", "target_fps-under-random"],
)
def test_settings_outside_the_identity_reuse_the_folder(
    tree: Path, tmp_path: Path, change: dict[str, object]
) -> None:
    out = tmp_path / "out"
    prepare_vposer_datasets(SPLITS, tree, out, config=PrepareConfig(**QUIET))
    again = prepare_vposer_datasets(SPLITS, tree, out, config=PrepareConfig(**QUIET, **change))
    assert again.ran == []


def test_keep_rate_under_fps_sampling_reuses_the_folder(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    fps = {"sampling": "fps", "target_fps": 20.0, **QUIET}
    prepare_vposer_datasets(SPLITS, tree, out, config=PrepareConfig(**fps))
    again = prepare_vposer_datasets(SPLITS, tree, out, config=PrepareConfig(**fps, keep_rate=0.9))
    assert again.ran == []
    with pytest.raises(StaleOutputError, match=r"target_fps: existing 20\.0, requested 25\.0"):
        prepare_vposer_datasets(
            SPLITS, tree, out, config=PrepareConfig(**{**fps, "target_fps": 25.0})
        )


def test_a_mapping_without_the_statistics_split_says_so(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stats_split='train': the split mapping has no such"):
        prepare_vposer_datasets({"vald": ["HumanEva"]}, tree, tmp_path / "o", config=QUIET)
    result = prepare_vposer_datasets(
        {"vald": ["HumanEva"]}, tree, tmp_path / "o", config={**QUIET, "stats_split": None}
    )
    assert result.samples["vald"] > 0


def test_deterministic_passes_are_refused() -> None:
    with pytest.raises(ConfigError, match="every pass would be an identical copy"):
        PrepareConfig(augment_passes=2)
    PrepareConfig(augment_passes=2, augmentations=["random_zrot", "matrot"])


def test_info_on_a_prepared_folder_imports_no_torch(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_vposer_datasets(SPLITS, tree, out, config=PrepareConfig(**QUIET))
    code = (
        "import sys\n"
        "from vposer_data.cli import main\n"
        f"assert main(['info', {str(out)!r}]) == 0\n"
        "import vposer_data.config, vposer_data.manifest, vposer_data.fields\n"
        "heavy = [m for m in ('torch', 'h5py', 'pytorch_lightning') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_user_errors_are_one_family_and_exported() -> None:
    from vposer_data.amass import AmassFormatError, NotAMotionError
    from vposer_data.dataset import DatasetFormatError, DatasetNotFoundError
    from vposer_data.errors import PrepareError
    from vposer_data.manifest import ManifestError
    from vposer_data.splits import SplitError

    for error in (AmassFormatError, NotAMotionError, SplitError, ConfigError, DatasetFormatError):
        assert issubclass(error, VPoserDataError) and issubclass(error, ValueError)
    assert issubclass(DatasetNotFoundError, FileNotFoundError)
    for error in (PrepareError, StaleOutputError, ManifestError, DatasetNotFoundError):
        assert issubclass(error, VPoserDataError)
    for name in ("PrepareResult", "load_sequence", "AmassSequence", "VPoserDataError"):
        assert name in vposer_data.__all__ and getattr(vposer_data, name) is not None
    assert "write_amass_tree" not in vposer_data.__all__
    assert len(vposer_data.__all__) == len(set(vposer_data.__all__))


def test_the_command_reports_user_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["prepare", "--amass-dir", str(tmp_path / "none"), "--out",
                     str(tmp_path / "o"), "--splits", "{not json"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("vposer-data: error: --splits") and "Traceback" not in err
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "manifest.json").write_text(json.dumps({"format_version": 99}))
    assert cli_main(["info", str(tmp_path / "o")]) == 2
    assert "not a vposer_data manifest of format" in capsys.readouterr().err


def test_the_default_clip_stride_and_the_same_stride_given_are_one_identity() -> None:
    clips = {"sampling": "clips", "target_fps": 30, "clip_frames": 16}
    assert PrepareConfig(**clips).identity() == PrepareConfig(**clips, clip_stride=16).identity()
    assert PrepareConfig(**clips).identity()["clip_stride"] == 16
    assert PrepareConfig(**clips, clip_stride=8).identity()["clip_stride"] == 8
