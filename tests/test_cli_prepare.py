"""The ``prepare``, ``info`` and ``demo`` commands, run in process through ``cli.main``."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import SPLITS, TreeCache, read_manifest

from vposer_data.cli import main
from vposer_data.summary import verify


@pytest.fixture(scope="module")
def tree(amass_tree: TreeCache) -> Path:
    return amass_tree(seed=23)


def prepare_args(tree: Path, out: Path, *extra: str) -> list[str]:
    return [
        "prepare",
        "--amass-dir",
        str(tree),
        "--out",
        str(out),
        "--no-progress",
        "--batch-size",
        "256",
        "--splits",
        json.dumps(SPLITS),
        *extra,
    ]


@pytest.fixture(scope="module")
def prepared(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("cli_out") / "V02"
    buffer = io.StringIO()  # a module fixture cannot use capsys
    with contextlib.redirect_stdout(buffer):
        code = main(prepare_args(tree, out))
    assert code == 0
    return out, buffer.getvalue()


def test_prepare_prints_a_summary(prepared: tuple[Path, str]) -> None:
    out, printed = prepared
    manifest = read_manifest(out)
    assert manifest["complete"] is True
    assert f"Prepared {out}" in printed
    for split in SPLITS:
        samples = manifest["stages"]["stage_III"][split]["samples"]
        assert f"[{split}] {samples:,} samples" in printed
    assert "pose_body_matrot" in printed and "189" in printed
    assert "configuration:" in printed and "keep_rate = 0.3" in printed
    assert "skipped motion files: 0" in printed
    assert verify(out) == []


def test_prepare_again_says_already_prepared(
    tree: Path, prepared: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = prepared
    assert main(prepare_args(tree, out)) == 0
    printed = capsys.readouterr().out
    assert "already prepared" in printed
    assert "[train]" in printed


def test_prepare_with_other_settings_fails_naming_them(
    tree: Path, prepared: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = prepared
    assert main(prepare_args(tree, out, "--keep-rate", "0.5")) == 2
    error = capsys.readouterr().err
    assert "keep_rate: existing 0.3, requested 0.5" in error
    assert "--overwrite" in error


def test_prepare_with_an_unknown_dataset_fails_listing_the_folders(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    splits = json.dumps({"train": ["NoSuchDataset"]})
    args = ["prepare", "--amass-dir", str(tree), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*args, "--splits", splits]) == 2
    error = capsys.readouterr().err
    assert "NoSuchDataset" in error and "CMU" in error


def test_info_verify_passes_on_a_prepared_folder(
    prepared: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = prepared
    assert main(["info", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "Verification passed" in printed
    assert "[vald]" in printed and "HumanEva" in printed


def test_info_verify_fails_naming_an_altered_file(
    prepared: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(prepared[0], out)
    target = out / "stage_III" / "vald" / "pose_body.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the tensor data, same size
    target.write_bytes(bytes(data))
    assert main(["info", str(out), "--verify"]) == 1
    printed = capsys.readouterr().out
    assert "Verification FAILED" in printed
    failures = printed.split("Verification FAILED", 1)[1]
    assert str(target) in failures
    assert "pose_body.pt" in failures and failures.count(".pt") == 1  # only that file


def test_info_on_a_folder_that_is_not_prepared_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_demo_generates_prepares_and_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = tmp_path / "demo"
    assert main(["demo", str(demo), "--frames", "20000", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic AMASS tree" in printed
    for split in ("train", "vald", "test"):
        assert f"[{split}]" in printed
    out = demo / "vposer"
    assert read_manifest(out)["complete"] is True
    assert verify(out) == []
    assert main(["demo", str(demo), "--frames", "20000", "--no-progress"]) == 0
    assert "already prepared" in capsys.readouterr().out
