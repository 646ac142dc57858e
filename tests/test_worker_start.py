"""The stages fork their workers on Linux even where Python's default start method is not
``fork`` (``forkserver`` since Python 3.14): workers started otherwise import torch afresh per
split and stage, and Stage I could not share memory with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import TreeCache
from test_pinned_output import DEMO_STAGE_III_SHA256, stage_iii_digest

from vposer_data.stages.file_readers import workers_can_share
from vposer_data.stages.worker_start import worker_context

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork on Linux only")


@linux_only
def test_the_stages_fork_on_linux() -> None:
    context = worker_context()
    assert context is not None and context.get_start_method() == "fork"


_UNDER_OTHER_DEFAULT = textwrap.dedent(
    """
    import json, multiprocessing, os, sys
    from pathlib import Path

    if __name__ == "__main__":
        method, amass, out = sys.argv[1:]
        multiprocessing.set_start_method(method, force=True)  # as Python 3.14 does: forkserver
        from vposer_data import AMASS_SPLITS, PrepareConfig, prepare_vposer_datasets
        from vposer_data.stages.file_readers import read_in_order, workers_can_share

        readers = list(read_in_order(lambda _: os.getppid(), range(40), 2, shared=()))
        prepare_vposer_datasets(
            AMASS_SPLITS, amass, out, config=PrepareConfig(progress=False, num_workers=2)
        )
        from multiprocessing import forkserver
        print(json.dumps({
            "can_share": workers_can_share(2),
            "reader_parents": sorted(set(readers)),
            "pid": os.getpid(),
            "forkserver_started": forkserver._forkserver._forkserver_pid is not None,
        }))
    """
)


@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_are_forked_whatever_the_default_start_method(
    amass_tree: TreeCache, tmp_path: Path, method: str
) -> None:
    """Under another default start method, Stage I still reads in processes this one forked
    (they share its memory files), no forkserver is ever started, and the output keeps its
    pinned bytes."""
    script = tmp_path / "under_other_default.py"
    script.write_text(_UNDER_OTHER_DEFAULT)
    amass = amass_tree(200_000, "smplh", seed=0)  # the demo tree, whose output is pinned
    out = tmp_path / "vposer"
    done = subprocess.run(
        [sys.executable, str(script), method, str(amass), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["can_share"] is True
    assert seen["reader_parents"] == [seen["pid"]]  # read in children of that process
    assert seen["forkserver_started"] is False
    assert stage_iii_digest(out) == DEMO_STAGE_III_SHA256


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_sharing_follows_the_stages_context_not_the_default() -> None:
    assert workers_can_share(2) == (worker_context() is not None and hasattr(os, "memfd_create"))
    assert workers_can_share(0) is False


_ROMA_IN_WORKERS = textwrap.dedent(
    """
    import json, os, sys
    import torch.utils.data._utils.worker as worker
    from vposer_data import PrepareConfig, prepare_vposer_datasets

    amass, out, augmentations = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    original = worker._worker_loop

    def loop(kind, dataset, *args, **kwargs):  # each worker as it starts: is roma there yet?
        if type(dataset).__name__ == "AugmentedBatches":  # Stage II's, not Stage I's readers
            # one write of a few bytes: atomic on a pipe, never interleaved with another worker's
            os.write(1, f"worker roma {'roma' in sys.modules}\\n".encode())
        return original(kind, dataset, *args, **kwargs)

    worker._worker_loop = loop
    config = PrepareConfig(
        progress=False, num_workers=2, batch_size=256, augmentations=augmentations
    )
    prepare_vposer_datasets({"train": ["CMU"], "vald": ["HumanEva"]}, amass, out, config=config)
    print("parent roma", "roma" in sys.modules)
    """
)


@linux_only
@pytest.mark.parametrize(
    ("augmentations", "expected"),
    [(["random_zrot", "matrot"], True), (["remove_zrot"], True), (["matrot"], False)],
)
def test_stage_ii_workers_start_with_roma_when_they_need_it(
    amass_tree: TreeCache, tmp_path: Path, augmentations: list[str], expected: bool
) -> None:
    """An augmentation that takes rotation logs needs roma (about a second to import): Stage II
    imports it before forking its workers, which then start with it instead of importing it
    each on its first batch. Runs that do not need it never import it."""
    done = subprocess.run(
        [sys.executable, "-c", _ROMA_IN_WORKERS, str(amass_tree()), str(tmp_path / "out"),
         json.dumps(augmentations)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    workers = [line for line in lines if line.startswith("worker roma")]
    assert len(workers) >= 2  # one per split at least: a worker that made a batch (of 2 each)
    assert set(workers) == {f"worker roma {expected}"}
    assert f"parent roma {expected}" in lines
