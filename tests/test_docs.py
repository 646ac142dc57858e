"""The documentation: the site builds with ``mkdocs build --strict``; the generated tables are
their declarations (settings, fields, augmentations, joint names, commands); the README's and
the guide's marked code blocks run on the demo data; every command's help names its page; the
README stays short and the changelog names this version."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from vposer_data import PrepareConfig, doc_tables
from vposer_data._version import __version__
from vposer_data.augment.registry import augmentations_table
from vposer_data.cli import DOCS_PAGES, DOCS_ROOT, build_parser
from vposer_data.config import settings_table
from vposer_data.fields import FIELDS
from vposer_data.skeleton import joints_table

DOCS = REPO / "docs"
README = REPO / "README.md"
#: A fenced block right after this line runs in the tests.
RUN_MARK = "<!-- test: run -->"
_RUNNABLE = re.compile(r"^<!-- test: run -->\n```(\w+)\n(.*?)^```$", re.M | re.S)
#: The demo the marked blocks run on (the size the notebook test uses).
DEMO = ["demo", "demo_data", "--frames", "8000", "--no-progress"]

# The marked blocks run in one interpreter, after the demo: each page in a fresh copy of the
# demo folder (with the repository's examples/), its blocks in order in one namespace, as a
# reader would type them. A bash block of `vposer-data` commands runs them through
# vposer_data.cli.main (what the console script calls), in this process; any other bash block
# runs through bash.
_DRIVER = r"""
import json, os, shlex, shutil, subprocess, sys
from vposer_data.cli import main
demo_command, pages = json.loads(sys.argv[1])
demo = os.path.abspath("demo")
os.chdir(demo)
assert main(demo_command) == 0
for page, blocks in pages.items():
    folder = os.path.join(os.path.dirname(demo), page.replace("/", "_"))
    shutil.copytree(demo, folder)
    os.chdir(folder)
    namespace = {"__name__": "__main__"}
    for language, code, where in blocks:
        print(f"@@ block {where} ({language})", flush=True)
        if language == "python":
            exec(compile(code, where, "exec"), namespace)
            continue
        lines = [line for line in code.replace("\\\n", " ").splitlines() if line.strip()]
        commands = [shlex.split(line, comments=True) for line in lines]
        if all(words[0] == "vposer-data" for words in commands):
            for words in commands:
                assert main(words[1:]) == 0, (where, words)
        else:
            subprocess.run(["bash", "-euo", "pipefail", "-c", code], check=True)
    os.chdir(demo)
"""


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def runnable_blocks(page: Path) -> list[tuple[str, str, str]]:
    """(language, code, page:line) of each block marked to run, in page order."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _RUNNABLE.finditer(text):
        line = text[: match.start()].count("\n") + 3
        blocks.append((match.group(1), match.group(2), f"{page.relative_to(REPO)}:{line}"))
    marks = len(re.findall(rf"^{RUN_MARK}$", text, re.M))
    assert len(blocks) == marks, f"{page}: a {RUN_MARK} line is not right before a block"
    return blocks


def _marked(page: Path, name: str) -> str:
    return doc_tables.marked_tables(page.read_text(encoding="utf-8"))[name]


# -- the site -------------------------------------------------------------------------------


def test_the_site_builds_strict_and_offline(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("prepare.prepare_vposer_datasets", "config.PrepareConfig", "splits.SplitError"):
        assert f'id="vposer_data.{name}"' in api, name  # the docstrings were found
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert f"{__version__}" in changelog  # CHANGELOG.md is included
    assert (site / "stick_figure.png").is_file()


# -- the generated tables -------------------------------------------------------------------


def test_every_generated_table_is_its_declaration() -> None:
    assert doc_tables.update(DOCS, check=True) == [], "run: python -m vposer_data.doc_tables docs"


def test_the_settings_table_is_the_declaration() -> None:
    table = _marked(DOCS / "reference" / "settings.md", "settings-table")
    assert table == settings_table()
    for name in PrepareConfig.__dataclass_fields__:
        assert f"| `{name}` |" in table


def test_the_fields_table_lists_every_field() -> None:
    table = _marked(DOCS / "reference" / "fields.md", "fields-table")
    assert table == doc_tables.fields_table()
    for name in FIELDS:
        assert f"| `{name}` |" in table
    assert "| `joints` | (J, 3) | (T, J, 3) | float32 |" in table
    assert "| `betas` | (B,) | (B,) | float32 | all | read from AMASS |" in table


def test_the_augmentation_and_joint_tables_are_the_registry_and_the_skeleton() -> None:
    augmentations = _marked(DOCS / "samples.md", "augmentations-table")
    assert augmentations == augmentations_table()
    assert "| `mirror` | `p` (1.0) | `augment_splits` |" in augmentations
    assert "the default `p=1` mirrors every sample" in augmentations
    assert _marked(DOCS / "samples.md", "joints-table") == joints_table()


def test_a_stale_table_is_found_and_made_anew(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    page = docs / "reference" / "settings.md"
    page.write_text(page.read_text().replace("| `keep_rate` | `0.3` |", "| `keep_rate` | `0.5` |"))
    assert doc_tables.main([str(docs), "--check"]) == 1
    assert "0.5` |" in page.read_text()  # --check writes nothing
    assert doc_tables.main([str(docs)]) == 0
    assert doc_tables.main([str(docs), "--check"]) == 0
    assert _marked(page, "settings-table") == settings_table()
    page.write_text(page.read_text().replace("settings-table", "setings-table"))
    with pytest.raises(ValueError, match="unknown table marker 'setings-table'"):
        doc_tables.update(docs)


def test_a_table_on_no_page_is_an_error(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    (docs / "reference" / "fields.md").unlink()
    assert doc_tables.main([str(docs), "--check"]) == 2
    with pytest.raises(ValueError, match=r"no page holds the tables \['fields-table'\]"):
        doc_tables.update(docs, check=True)


# -- the code blocks ------------------------------------------------------------------------


RUNNABLE_PAGES = [page for page in _pages() if runnable_blocks(page)]


def test_the_readme_and_the_guide_have_runnable_examples() -> None:
    assert len(runnable_blocks(README)) >= 3  # the three ways in
    names = {page.name for page in RUNNABLE_PAGES}
    assert {"README.md", "index.md", "preparing.md", "samples.md", "training.md"} <= names


def test_the_marked_blocks_run_on_the_demo(tmp_path: Path) -> None:
    """Every marked block of the README and the guide, in a folder where
    ``vposer-data demo demo_data --frames 8000`` has run (with the repository's examples/)."""
    shutil.copytree(REPO / "examples", tmp_path / "demo" / "examples")
    pages = {str(page.relative_to(REPO)): runnable_blocks(page) for page in RUNNABLE_PAGES}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps([DEMO, pages])],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert done.stdout.count("@@ block ") == sum(len(blocks) for blocks in pages.values())


# -- the command's help ---------------------------------------------------------------------


def test_every_commands_help_names_its_page() -> None:
    parser = build_parser()
    assert f"documentation: {DOCS_ROOT}index.md" in " ".join(parser.format_help().split())
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {name for name in DOCS_PAGES if name is not None}
    for name, sub in commands.items():
        page = DOCS_PAGES[name]
        assert (DOCS / page).is_file(), page
        assert f"documentation: {DOCS_ROOT}{page}" in " ".join(sub.format_help().split()), name
    assert "docs/reference/settings.md" in " ".join(commands["prepare"].format_help().split())
    assert (DOCS / "reference" / "settings.md").is_file()


def test_the_commands_table_links_each_page() -> None:
    table = _marked(DOCS / "preparing.md", "commands-table")
    for name, page in DOCS_PAGES.items():
        if name is not None:
            assert re.search(rf"^\| `vposer-data {name}\b.*\[{re.escape(page)}\]", table, re.M)


# -- the README and the changelog -----------------------------------------------------------


def test_the_readme_is_short_and_keeps_the_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert len((REPO / "benchmarks" / "README.md").read_text().splitlines()) <= 150
    assert "bash scripts/demo.sh     # set up, generate a synthetic AMASS sample" in text
    assert "bash scripts/test.sh     # set up with the test extras, then ruff" in text
    assert not re.search(r"\bissue \d+|\bgit [0-9a-f]{7}\b", text, re.I)
    assert "docs/stick_figure.png" in text and (DOCS / "stick_figure.png").stat().st_size < 100_000
    for link in re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]+)", text):
        assert (REPO / link).exists(), link


def test_the_changelog_names_this_version_first() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.M)
    assert versions and versions[0] == __version__
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
