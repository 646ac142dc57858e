"""`vposer-data synth`: in process, as a real subprocess, and at the issue's full size."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vposer_data.amass import load_sequence
from vposer_data.cli import main
from vposer_data.synthetic import RELEASES


def motion_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*.npz")
        if p.name != "shape.npz" and not p.name.endswith("_stagei.npz")
    )


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vposer_data", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_synth_writes_the_tree_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "amass"
    assert main(["synth", str(out), "--frames", "8000"]) == 0
    printed = capsys.readouterr().out
    files = motion_files(out)
    assert "8,000 frames" in printed
    assert str(out) in printed
    assert f"{len(files)} motion files" in printed
    assert "smplh" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(RELEASES["smplh"].values())
    assert sum(load_sequence(p).num_frames for p in files) == 8000
    assert all(p.name.endswith("_poses.npz") for p in files)


def test_synth_options_release_seed_compress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--frames", "4000", "--release", "smplx", "--seed", "3"]
    assert main(["synth", str(tmp_path / "a"), *args]) == 0
    assert main(["synth", str(tmp_path / "b"), *args, "--compress"]) == 0
    assert main(["synth", str(tmp_path / "c"), *args[:-1], "4"]) == 0
    capsys.readouterr()
    a, b = motion_files(tmp_path / "a"), motion_files(tmp_path / "b")
    assert {p.relative_to(tmp_path / "a") for p in a} == {p.relative_to(tmp_path / "b") for p in b}
    assert "BMLrub" in {p.name for p in (tmp_path / "a").iterdir()}
    assert all(p.name.endswith("_stageii.npz") for p in a)
    # compression changes the bytes, not the data
    for pa, pb in zip(a, b, strict=True):
        sa, sb = load_sequence(pa), load_sequence(pb)
        assert sa.family == sb.family == "smplx"
        assert (sa.pose_body == sb.pose_body).all()
        assert pb.stat().st_size < pa.stat().st_size
    assert digests(tmp_path / "a") != digests(tmp_path / "c")


def test_synth_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["synth", str(tmp_path), "--release", "smplq"])
    assert info.value.code == 2
    assert "smplq" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["synth", str(tmp_path), "--frames", "many"])
    assert info.value.code == 2


def test_synth_as_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "amass dir"
    result = run_cli("synth", str(out), "--frames", "8000", "--release", "smplx")
    assert result.returncode == 0, result.stderr
    assert "8,000 frames" in result.stdout and "smplx" in result.stdout
    files = motion_files(out)
    assert files
    assert sum(load_sequence(p).num_frames for p in files) == 8000
    # the same command in process writes the same bytes
    assert main(["synth", str(tmp_path / "again"), "--frames", "8000", "--release", "smplx"]) == 0
    assert digests(out) == digests(tmp_path / "again")


def test_subprocess_reports_bad_arguments(tmp_path: Path) -> None:
    result = run_cli("synth", str(tmp_path), "--release", "nope")
    assert result.returncode == 2
    assert "nope" in result.stderr


@pytest.mark.slow
def test_full_size_synth_twice_is_identical_and_loads(tmp_path: Path) -> None:
    """The issue's check: `vposer-data synth DIR --frames 200000` twice with the same seed
    gives identical bytes, and every motion file loads."""
    trees = [tmp_path / "first", tmp_path / "second"]
    for tree in trees:
        result = run_cli("synth", str(tree), "--frames", "200000", "--seed", "0", timeout=300)
        assert result.returncode == 0, result.stderr
        assert "200,000 frames" in result.stdout
    first, second = digests(trees[0]), digests(trees[1])
    assert len(first) > 200
    assert first == second
    files = motion_files(trees[0])
    assert sum(load_sequence(p).num_frames for p in files) == 200_000


def test_synth_body_models_writes_every_family_and_gender_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vposer_data.body_model import FAMILIES, GENDERS, load_body_model

    models = tmp_path / "models"
    assert (
        main(["synth", str(tmp_path / "amass"), "--frames", "8000", "--body-models", str(models)])
        == 0
    )
    assert "Wrote 9 made-up body-model files" in capsys.readouterr().out
    for family in FAMILIES:
        for gender in GENDERS:
            assert load_body_model(models, family, gender).family == family
    stamps = {p: p.stat().st_mtime_ns for p in models.rglob("*.npz")}
    assert (
        main(["synth", str(tmp_path / "again"), "--frames", "8000", "--body-models", str(models)])
        == 0
    )
    assert f"Reusing the made-up body models in {models}" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in models.rglob("*.npz")} == stamps  # reused
