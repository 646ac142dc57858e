"""Session fixtures of the fault tests: the larger tree that runs are killed in, its
uninterrupted output (read-only; tests that damage something copy it first), and the zygote
that forks the runs. The small tree and its reference are the shared ``small_tree`` and
``small_reference`` of ``tests/conftest.py``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import BIG_CONFIG, BIG_FRAMES, BIG_SEED, BIG_SPLITS, Zygote
from helpers import TreeCache, file_hashes, prepare


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal gives it: a test run started in the background (bash's ``&``
    without job control) inherits SIGINT ignored, which this package's runs respect, so the
    Ctrl-C tests would see no Ctrl-C. The runs they start inherit the restored default."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def big_tree(amass_tree: TreeCache) -> Path:
    """An SMPL+H-era tree of BIG_FRAMES frames. Read-only."""
    return amass_tree(BIG_FRAMES, seed=BIG_SEED)


@pytest.fixture(scope="session")
def big_reference_dir(big_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``big_tree`` prepared without incident (BIG_SPLITS, BIG_CONFIG). Read-only."""
    out = tmp_path_factory.mktemp("faults_big_reference") / "out"
    prepare(big_tree, out, BIG_SPLITS, **BIG_CONFIG)
    return out


@pytest.fixture(scope="session")
def big_reference(big_reference_dir: Path) -> dict[str, str]:
    """Stage III hashes of ``big_reference_dir``: what every interrupted run must end with."""
    return file_hashes(big_reference_dir)


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    """A child that has imported torch and the package, forking fresh runs on demand."""
    forker = Zygote(tmp_path_factory.mktemp("faults_fifos"))
    try:
        yield forker
    finally:
        forker.close()
