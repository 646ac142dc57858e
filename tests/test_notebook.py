"""notebooks/inspect_batches.ipynb runs top to bottom (so it cannot rot) and is committed clean."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from helpers import REPO
from nbclient import NotebookClient

NOTEBOOK = REPO / "notebooks" / "inspect_batches.ipynb"


def _text(outputs: list) -> str:
    parts = []
    for output in outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/markdown", ""))
    return "".join(parts)


def test_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPOSER_DEMO_DIR", str(tmp_path / "demo"))
    monkeypatch.setenv("VPOSER_DEMO_FRAMES", "8000")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",  # jupyter_client runs a "python" kernelspec with sys.executable
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    code = [c for c in notebook.cells if c.cell_type == "code"]
    text = "\n".join(_text(c.outputs) for c in code)
    assert f"python: {sys.executable}" in text  # the kernel is this environment's python
    assert "wrote a synthetic AMASS tree" in text
    assert "| `pose_body` | (512, 63) | float32 |" in text
    assert "| **train** | **all** |" in text and "| vald | HumanEva |" in text
    assert "pose_body equal to the source frame: True; root_orient equal: True" in text
    assert "training clips of 32 frames at 30 Hz" in text
    assert "canonical first frame: trans xy = [0.0, 0.0], faces +y: True" in text
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2
    assert (tmp_path / "demo" / "vposer" / "manifest.json").is_file()
