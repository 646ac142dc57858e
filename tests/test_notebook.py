"""The getting-started paths (docs/index.md) in their order, on a fresh folder (issue 22):
``vposer-data demo demo_data``, then ``notebooks/inspect_batches.ipynb`` (executed top to
bottom, so it cannot rot), then ``examples/train.py`` with ``examples/datamodule.yaml``, then
the demo again. Each exits cleanly and reuses what the one before made: nothing is written
twice. The notebook is also committed clean."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from helpers import EXAMPLES, REPO, import_examples
from nbclient import NotebookClient

from vposer_data.cli import main as cli_main

NOTEBOOK = REPO / "notebooks" / "inspect_batches.ipynb"
#: The demo's size here: small, so the whole order runs in seconds.
FRAMES = "8000"


def _text(outputs: list) -> str:
    parts = []
    for output in outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/markdown", ""))
    return "".join(parts)


def _written(demo: Path) -> dict[str, int]:
    """Relative path -> modification time (ns) of every file of the synthetic tree and of the
    folder the demo prepared: a file written again shows here."""
    return {
        str(path.relative_to(demo)): path.stat().st_mtime_ns
        for sub in ("amass", "vposer")
        for path in sorted((demo / sub).rglob("*"))
        if path.is_file()
    }


def test_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def _run_notebook(demo: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VPOSER_DEMO_DIR", str(demo))
    monkeypatch.setenv("VPOSER_DEMO_FRAMES", FRAMES)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",  # jupyter_client runs a "python" kernelspec with sys.executable
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    code = [c for c in notebook.cells if c.cell_type == "code"]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3
    return "\n".join(_text(c.outputs) for c in code)


def _train(extra: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``python examples/train.py fit --config examples/datamodule.yaml``, kept short."""
    monkeypatch.setattr("sys.argv", ["train.py"])  # LightningCLI also looks at sys.argv
    import_examples()
    from train import main

    fitted = main(
        [
            "fit",
            "--config",
            str(EXAMPLES / "datamodule.yaml"),
            "--model.hidden_dim=64",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            *extra,
        ]
    )
    assert fitted.trainer.global_step == 2


def test_the_readme_order_on_a_fresh_folder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)  # the guide's commands run where demo_data/ is made
    demo = tmp_path / "demo_data"

    assert cli_main(["demo", "demo_data", "--frames", FRAMES, "--no-progress"]) == 0
    assert "Wrote a synthetic AMASS tree" in capsys.readouterr().out
    written = _written(demo)

    text = _run_notebook(demo, monkeypatch)
    assert f"python: {sys.executable}" in text  # the kernel is this environment's python
    assert f"reusing the synthetic AMASS tree in {demo / 'amass'}" in text
    assert "| `pose_body` | (512, 63) | float32 |" in text
    assert "| **train** | **all** |" in text and "| vald | HumanEva |" in text
    assert "pose_body equal to the source frame: True; root_orient equal: True" in text
    assert "training clips of 32 frames at 30 Hz" in text
    assert "canonical first frame: trans xy = [0.0, 0.0], faces +y: True" in text
    assert "joints (" in text and ", 32, 22, 3) torch.float32, contacts (" in text
    assert _written(demo) == written

    _train([], monkeypatch)  # the YAML's data paths are demo_data/amass and demo_data/vposer
    assert "vposer_data's synthetic demo tree (8,000 frames)" in caplog.text
    assert _written(demo) == written
    assert (tmp_path / "lightning_logs").is_dir()  # where .gitignore expects it

    assert cli_main(["demo", "demo_data", "--frames", FRAMES, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Reusing the synthetic AMASS tree" in printed and "already prepared" in printed
    assert _written(demo) == written


def test_the_example_training_names_the_demo_when_its_data_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no demo_data/ here
    with pytest.raises(SystemExit) as stopped:
        _train([], monkeypatch)
    assert "data.amass_dir demo_data/amass does not exist" in str(stopped.value.code)
    assert "vposer-data demo demo_data" in str(stopped.value.code)
    assert not (tmp_path / "demo_data").exists()
