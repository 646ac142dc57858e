"""What a new user meets first (issue 22): the extras the documentation names, the version,
the licence and the typing marker in the built package, and a command that answers argument
errors in its own words, before importing torch. (The generated tables: tests/test_docs.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from helpers import REPO
from packaging.requirements import Requirement

from vposer_data._version import __version__
from vposer_data.cli import build_parser
from vposer_data.cli import main as cli_main
from vposer_data.errors import PrepareError
from vposer_data.synthetic import ensure_synthetic_tree, synthetic_tree_options

README = REPO / "README.md"
#: Getting started: installing, with the extras table.
GUIDE = REPO / "docs" / "index.md"
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _marked(name: str) -> str:
    text = GUIDE.read_text()
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    return text[text.index(start) + len(start) : text.index(end)]


# -- one synthetic tree for the demo, the notebook and the example training (point 1) -------


def test_a_synthetic_tree_is_written_once_and_recognised(tmp_path: Path) -> None:
    tree = tmp_path / "amass"
    assert synthetic_tree_options(tree) is None
    assert ensure_synthetic_tree(tree, total_frames=4000) is not None
    assert synthetic_tree_options(tree) == {"frames": 4000, "release": "smplh", "seed": 0}
    times = {p: p.stat().st_mtime_ns for p in tree.rglob("*")}
    assert ensure_synthetic_tree(tree, total_frames=4000) is None  # reused, not rewritten
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*")} == times
    with pytest.raises(PrepareError, match=r"written with .*'frames': 4000.*not .*'frames': 5000"):
        ensure_synthetic_tree(tree, total_frames=5000)


def test_a_folder_that_is_not_a_finished_synthetic_tree_is_never_written_into(
    tmp_path: Path,
) -> None:
    real = tmp_path / "amass"
    (real / "CMU").mkdir(parents=True)
    (real / "CMU" / "LICENSE.txt").write_text("real AMASS\n")
    with pytest.raises(PrepareError, match=r"holds no \.synthetic\.json: it is not a finished"):
        ensure_synthetic_tree(real, total_frames=4000)
    assert [p.name for p in real.rglob("*")] == ["CMU", "LICENSE.txt"]
    assert synthetic_tree_options(real) is None


# -- extras (point 2) ----------------------------------------------------------------------


def test_the_guide_names_every_extra_and_what_it_is_for() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", _marked("extras"), re.M))
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(rows) == set(extras)
    assert all(len(purpose) > 20 for purpose in rows.values())
    assert "examples/train.py" in rows["cli"]


def _floor(requirement: str) -> tuple[int, ...]:
    (spec,) = [s for s in Requirement(requirement).specifier if s.operator == ">="]
    return tuple(int(part) for part in spec.version.split("."))


def test_the_cli_extra_requires_what_lightning_requires_of_jsonargparse() -> None:
    from pytorch_lightning.cli import _JSONARGPARSE_SIGNATURES_AVAILABLE

    (ours,) = PYPROJECT["project"]["optional-dependencies"]["cli"]
    assert "signatures" in Requirement(ours).extras
    lightnings = [r for r in requires("pytorch_lightning") or [] if r.startswith("jsonargparse")]
    lightnings.append(str(_JSONARGPARSE_SIGNATURES_AVAILABLE.requirement))  # cli.py's check
    for theirs in lightnings:
        assert _floor(ours) >= _floor(theirs.split(";")[0]), theirs


# -- version, licence, typing, augmentation table, .gitignore (point 5) --------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli_main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"vposer-data {__version__}"
    assert __version__ == version("vposer-data") == PYPROJECT["project"]["version"]


def test_the_built_wheel_has_the_licence_the_author_and_py_typed(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "vposer_data", source / "vposer_data")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        licence = archive.read(next(n for n in names if n.endswith("licenses/LICENSE"))).decode()
    assert "vposer_data/py.typed" in names
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "Author: vposer_data developers" in metadata.splitlines()


def test_the_readme_says_amass_and_the_body_models_have_their_own_licences() -> None:
    text = " ".join(README.read_text().split())
    assert "Apache License 2.0 (`LICENSE`)" in text
    assert "AMASS and the SMPL-family body models (SMPL, SMPL+H, SMPL-X)" in text
    assert "have their own licences, which each user must accept" in text


def test_lightning_logs_are_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "lightning_logs/version_0/metrics.csv"], cwd=REPO
    )
    assert ignored.returncode == 0


# -- the command's errors (point 8) --------------------------------------------------------

_RUN_EACH = """
import json, sys
from vposer_data.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    print("----", file=sys.stderr)
    results.append([code, "torch" in sys.modules])
print(json.dumps(results))
"""


def test_argument_errors_name_the_flag_before_torch_is_imported(tmp_path: Path) -> None:
    amass, out = tmp_path / "amass", tmp_path / "out"
    (amass / "CMU").mkdir(parents=True)
    prepare = ["prepare", "--amass-dir", str(amass), "--out", str(out)]
    cases = {
        "--target-fps 0: expected a rate > 0 in Hz": [*prepare, "--target-fps", "0"],
        "--target-fps: --sampling fps needs a rate > 0 in Hz": [*prepare, "--sampling", "fps"],
        "--augment: unknown augmentation 'nosuch'": [*prepare, "--augment", "nosuch"],
        "--keep-rate 2: expected 0 < keep_rate <= 1": [*prepare, "--keep-rate", "2"],
        "--stats-split train: the split mapping has no such split": [
            *prepare, "--splits", '{"vald": ["CMU"]}'
        ],
        "dataset 'NoSuch' not found in": [*prepare, "--splits", '{"train": ["NoSuch"]}'],
        f"--amass-dir {tmp_path / 'none'} does not exist": [
            "prepare", "--amass-dir", str(tmp_path / "none"), "--out", str(out)
        ],
        "argument --keep-rate: invalid float value: 'abc'": [*prepare, "--keep-rate", "abc"],
        "--clip-frames 1: expected an integer >= 2": [
            "demo", str(tmp_path / "demo"), "--clip-frames", "1"
        ],
        "--frames 10: expected at least 3840": ["demo", str(tmp_path / "demo"), "--frames", "10"],
        "--frames 20: expected at least": ["synth", str(tmp_path / "synth"), "--frames", "20"],
        "holds no manifest.json: not a prepared folder": ["report", str(tmp_path / "none")],
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _RUN_EACH, json.dumps(list(cases.values()))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    messages = done.stderr.split("----\n")
    for (expected, argv), (code, torch_imported), message in zip(
        cases.items(), json.loads(done.stdout.splitlines()[-1]), messages, strict=False
    ):
        assert code == 2, (argv, message)
        assert expected in message, (argv, message)
        assert not torch_imported, argv
        assert "PrepareConfig" not in message and "target_fps" not in message
    assert not out.exists() and not (tmp_path / "demo").exists()
    assert not (tmp_path / "synth").exists()


def test_the_stale_remedy_names_the_command_that_was_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = ["demo", str(tmp_path / "demo"), "--frames", "4000", "--no-progress"]
    assert cli_main(demo) == 0
    capsys.readouterr()
    assert cli_main([*demo, "--keep-rate", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "keep_rate: existing 0.3, requested 0.5" in err
    assert "Run `vposer-data demo --overwrite` (with the same arguments) to rebuild it" in err
    assert "overwrite=True" not in err and "vposer-data prepare" not in err
    prepare = ["prepare", "--amass-dir", str(tmp_path / "demo" / "amass")]
    assert cli_main([*prepare, "--out", str(tmp_path / "demo" / "vposer"), "--trim", "0.2"]) == 2
    assert "Run `vposer-data prepare --overwrite`" in capsys.readouterr().err


def test_demo_help_documents_every_argument() -> None:
    parser = build_parser()
    demo = parser._subparsers._group_actions[0].choices["demo"]  # type: ignore[union-attr]
    assert demo.description and "DIR/amass" in demo.description
    for action in demo._actions:
        assert action.help, f"demo {action.dest} has no help"
    assert "DIR/vposer" in demo.format_help()
