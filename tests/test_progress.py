"""Progress bars are made only when shown: a quiet run leaves no tqdm monitor thread in the
caller's process (a process with threads that later forks risks inheriting a lock held)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tqdm import tqdm

from vposer_data.progress import progress


def test_a_bar_is_made_only_when_shown() -> None:
    items = [1, 2, 3]
    assert progress(items, False) is items
    shown = progress(items, True, disable=True)  # a tqdm, kept silent here
    assert isinstance(shown, tqdm) and list(shown) == items


def test_a_quiet_preparation_leaves_no_thread_behind(small_tree: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, threading
        from vposer_data import PrepareConfig, prepare_vposer_datasets

        splits = {"train": ["CMU", "KIT"], "vald": ["HumanEva"], "test": ["SFU"]}
        config = PrepareConfig(progress=False, num_workers=2, batch_size=128)
        prepare_vposer_datasets(splits, sys.argv[1], sys.argv[2], config=config)
        print(sorted(t.name for t in threading.enumerate()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(small_tree), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['MainThread']"
