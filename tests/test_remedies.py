"""One remedy text for a stale or damaged folder: whichever check finds it (prepare, the
manifest, the statistics, the data module), the error's last line starts with REBUILD_HINT,
so the command line can say it in its own words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import SPLITS, prepare

from vposer_data.datamodule import VPoserDataModule
from vposer_data.errors import REBUILD_HINT, VPoserDataError
from vposer_data.statistics import STATISTICS_NAME
from vposer_data.training_statistics import read_statistics


def _last_line(error: BaseException) -> str:
    return str(error).splitlines()[-1]


@pytest.fixture
def copy(small_reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(small_reference, out)
    return out


def test_an_unreadable_manifest(copy: Path, small_tree: Path) -> None:
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(VPoserDataError) as info:
        prepare(small_tree, copy)
    assert _last_line(info.value).startswith(REBUILD_HINT)


def test_other_settings(copy: Path, small_tree: Path) -> None:
    with pytest.raises(VPoserDataError) as info:
        prepare(small_tree, copy, keep_rate=0.5)
    assert _last_line(info.value).startswith(REBUILD_HINT)
    with pytest.raises(VPoserDataError) as info:
        VPoserDataModule(data_dir=copy, splits=SPLITS, prepare={"keep_rate": 0.5}).setup(None)
    assert _last_line(info.value).startswith(REBUILD_HINT)


def test_a_damaged_final_file(copy: Path) -> None:
    with (copy / "stage_III" / "vald" / "pose_body.pt").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(VPoserDataError) as info:
        VPoserDataModule(data_dir=copy).setup(None)
    assert _last_line(info.value).startswith(REBUILD_HINT)


def test_altered_statistics(copy: Path) -> None:
    path = copy / STATISTICS_NAME
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(VPoserDataError) as info:
        read_statistics(copy)
    assert _last_line(info.value).startswith(REBUILD_HINT)
