"""Changed AMASS inputs under an existing output are loud, not silently reused."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vposer_data.config import PrepareConfig
from vposer_data.errors import PrepareError, StaleOutputError
from vposer_data.prepare import prepare_vposer_datasets
from vposer_data.synthetic import write_amass_tree, write_motion_npz

SPLITS = {"train": ["CMU"], "vald": ["HumanEva"]}
CONFIG = PrepareConfig(progress=False, num_workers=0)


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, Path]:
    amass = tmp_path / "amass"
    write_amass_tree(amass, total_frames=6000, seed=3)
    out = tmp_path / "out"
    prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    return amass, out


def _first_motion(folder: Path) -> Path:
    return sorted(folder.rglob("*_poses.npz"))[0]


def test_unchanged_inputs_are_reused(prepared: tuple[Path, Path]) -> None:
    amass, out = prepared
    assert prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG).ran == []


def test_an_added_motion_file_is_named_and_overwrite_includes_it(
    prepared: tuple[Path, Path],
) -> None:
    amass, out = prepared
    before = prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG).samples["train"]
    rng = np.random.default_rng(0)
    subject = _first_motion(amass / "CMU").parent
    added = subject / "zz_added_poses.npz"
    write_motion_npz(added, "smplh", 600, 120.0, "male", rng.normal(size=16), rng)
    with pytest.raises(
        StaleOutputError, match=r"split 'train'.*1 added \(e\.g\. CMU/.*zz_added_poses"
    ):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    result = prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG, overwrite=True)
    assert result.samples["train"] > before
    # without amass_dir, the prepared data is used as it is
    assert prepare_vposer_datasets(SPLITS, None, out, config=CONFIG).ran == []


def test_removed_and_replaced_files_are_named(prepared: tuple[Path, Path]) -> None:
    amass, out = prepared
    victim = _first_motion(amass / "HumanEva")
    victim.unlink()
    with pytest.raises(StaleOutputError, match=r"split 'vald'.*1 removed \(e\.g\. HumanEva/"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def _rewrite(target: Path, frames: int | None = None, seed: int = 1) -> None:
    """Write another motion in place of ``target``: the same keys, dtypes and (unless
    ``frames`` says otherwise) shapes, hence the same size, with other values."""
    with np.load(target, allow_pickle=False) as archive:
        num_frames = archive["poses"].shape[0] if frames is None else frames
        fps = float(archive["mocap_framerate"])
        gender = archive["gender"].item()  # str or bytes, as the original stores it
        betas = archive["betas"]
    rng = np.random.default_rng(seed)
    write_motion_npz(target, "smplh", num_frames, fps, gender, betas, rng)


def _later_mtime(path: Path, before: os.stat_result) -> None:
    """Make sure the modification time moved, even on a file system with coarse times."""
    now = path.stat()
    if now.st_mtime_ns == before.st_mtime_ns:
        os.utime(path, ns=(now.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert path.stat().st_mtime_ns != before.st_mtime_ns


def test_a_file_replaced_by_another_of_another_size_is_named(
    prepared: tuple[Path, Path],
) -> None:
    amass, out = prepared
    target = _first_motion(amass / "CMU")
    _rewrite(target, frames=321)
    name = target.relative_to(amass).as_posix()
    with pytest.raises(
        StaleOutputError, match=rf"split 'train'.*1 replaced.*\(e\.g\. {re.escape(name)}\)"
    ):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def test_a_file_replaced_by_another_of_the_same_size_is_named(
    prepared: tuple[Path, Path],
) -> None:
    amass, out = prepared
    target = _first_motion(amass / "HumanEva")
    before_stat, before_bytes = target.stat(), target.read_bytes()
    _rewrite(target)
    _later_mtime(target, before_stat)
    assert target.stat().st_size == before_stat.st_size
    assert target.read_bytes() != before_bytes
    name = target.relative_to(amass).as_posix()
    with pytest.raises(StaleOutputError) as info:
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    message = str(info.value)
    assert "split 'vald': the AMASS files changed since it was prepared: 1 replaced" in message
    assert f"same name but other size or modification time (e.g. {name})" in message
    assert "split 'train'" not in message  # only the split whose file changed
    # without amass_dir, the prepared data is served as it is
    served = prepare_vposer_datasets(SPLITS, None, out, config=CONFIG)
    assert served.ran == []
    # overwrite rebuilds it from the new file, and then it is current again
    assert prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG, overwrite=True).ran
    assert prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG).ran == []


def _touch(path: Path) -> None:
    """A modification time one second later, the content untouched."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _prepare_logged(amass: Path, out: Path) -> tuple[list[str], list[str]]:
    """Prepare again, returning the stages that ran and the lines logged."""
    lines: list[str] = []
    result = prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG, logger=lines.append)
    return result.ran, lines


def _same_content_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "new modification times and the same content" in line]


def test_a_touched_file_is_the_same_input_and_logged(prepared: tuple[Path, Path]) -> None:
    """A new modification time over the same bytes is the same input: its members' CRC-32s
    match the recorded ones. The log says so once per split, with the count."""
    amass, out = prepared
    target = _first_motion(amass / "CMU")
    _touch(target)
    ran, lines = _prepare_logged(amass, out)
    assert ran == []
    assert _same_content_lines(lines) == [
        "split 'train': 1 AMASS files have new modification times and the same content "
        "(the CRC-32s of their zip members match): the same inputs"
    ]


def test_a_copy_without_times_is_the_same_input_until_a_member_changes(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    """`cp -r` without `-p`: every file gets a new time and keeps its bytes; nothing reruns.
    Then one file rewritten with other values of the same size and a new time is named."""
    amass, out = prepared
    copy = tmp_path / "copy"
    shutil.copytree(amass, copy, copy_function=shutil.copy)  # shutil.copy keeps no times
    files = sorted(p.relative_to(amass) for p in amass.rglob("*.npz"))
    assert all((copy / f).stat().st_mtime_ns != (amass / f).stat().st_mtime_ns for f in files)
    counts = {
        split: sum(1 for f in files if f.parts[0] in datasets) for split, datasets in SPLITS.items()
    }
    ran, lines = _prepare_logged(copy, out)
    assert ran == []
    assert sorted(_same_content_lines(lines)) == [
        f"split '{split}': {counts[split]} AMASS files have new modification times and the "
        "same content (the CRC-32s of their zip members match): the same inputs"
        for split in sorted(SPLITS)
    ]
    target = _first_motion(copy / "HumanEva")
    before_stat, before_bytes = target.stat(), target.read_bytes()
    _rewrite(target)
    _later_mtime(target, before_stat)
    assert target.stat().st_size == before_stat.st_size
    assert target.read_bytes() != before_bytes
    name = target.relative_to(copy).as_posix()
    with pytest.raises(StaleOutputError) as info:
        prepare_vposer_datasets(SPLITS, copy, out, config=CONFIG)
    message = str(info.value)
    assert (
        "split 'vald': the AMASS files changed since it was prepared: 1 replaced, same name "
        f"but other size or modification time (e.g. {name})"
    ) in message
    assert "split 'train'" not in message


def test_a_file_that_is_no_longer_a_zip_is_replaced(prepared: tuple[Path, Path]) -> None:
    """Same size, new time, bytes that are no zip archive: replaced, never a crash."""
    amass, out = prepared
    target = _first_motion(amass / "CMU")
    before = target.stat()
    target.write_bytes(bytes(before.st_size))  # zeros: no end of central directory record
    _later_mtime(target, before)
    name = target.relative_to(amass).as_posix()
    with pytest.raises(StaleOutputError, match=rf"1 replaced.*\(e\.g\. {re.escape(name)}\)"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def _shift_values(target: Path) -> None:
    """Rewrite ``target`` with every numeric array plus one: the same keys, dtypes and shapes,
    hence the same size, with other member CRC-32s and a new time."""
    before = target.stat()
    with np.load(target, allow_pickle=False) as archive:
        arrays = {
            key: archive[key] + 1 if archive[key].dtype.kind in "iuf" else archive[key]
            for key in archive.files
        }
    np.savez(target, **arrays)
    _later_mtime(target, before)
    assert target.stat().st_size == before.st_size


def test_the_same_members_at_another_size_are_replaced(prepared: tuple[Path, Path]) -> None:
    """The same arrays deflated: the members' CRC-32s (over the uncompressed bytes) match,
    the file's size does not; only a file of the same size can be the same input."""
    amass, out = prepared
    target = _first_motion(amass / "CMU")
    with np.load(target, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    with zipfile.ZipFile(target) as archive:
        crcs = sorted((i.filename, i.CRC) for i in archive.infolist())
    np.savez_compressed(target, **arrays)
    with zipfile.ZipFile(target) as archive:
        assert sorted((i.filename, i.CRC) for i in archive.infolist()) == crcs
    name = target.relative_to(amass).as_posix()
    with pytest.raises(StaleOutputError, match=rf"1 replaced.*\(e\.g\. {re.escape(name)}\)"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def test_a_touched_file_that_was_no_zip_is_replaced(tmp_path: Path) -> None:
    """A file that was not a readable zip when recorded has no content to compare: a new
    time makes it replaced, even with the same bytes."""
    amass = tmp_path / "amass"
    write_amass_tree(amass, total_frames=6000, seed=3)
    bad = _first_motion(amass / "CMU").with_name("zz_bad_poses.npz")
    bad.write_bytes(b"not a zip archive" * 10)
    out = tmp_path / "out"
    prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)  # skipped as unreadable
    _touch(bad)
    name = bad.relative_to(amass).as_posix()
    with pytest.raises(StaleOutputError, match=rf"1 replaced.*\(e\.g\. {re.escape(name)}\)"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def test_several_replaced_files_are_counted_and_some_named(prepared: tuple[Path, Path]) -> None:
    amass, out = prepared
    targets = sorted((amass / "CMU").rglob("*.npz"))  # the motions and the shape.npz files
    assert len(targets) > 3
    for target in targets[:-1]:
        _shift_values(target)
    _touch(targets[-1])  # the same content: not counted
    targets = targets[:-1]
    names = ", ".join(t.relative_to(amass).as_posix() for t in targets[:3])
    with pytest.raises(StaleOutputError) as info:
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    expected = f"{len(targets)} replaced, same name but other size or modification time"
    assert f"{expected} (e.g. {names})" in str(info.value)


def test_a_record_without_content_stamps_compares_times(prepared: tuple[Path, Path]) -> None:
    """Stage I records written before content stamps were kept: a new time is a replaced
    file, as it was when they were written."""
    amass, out = prepared
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for record in manifest["stages"]["stage_I"].values():
        del record["inputs"]["contents"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    target = _first_motion(amass / "CMU")
    _touch(target)
    name = target.relative_to(amass).as_posix()
    with pytest.raises(StaleOutputError, match=rf"1 replaced.*{re.escape(name)}"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns - 1_000_000_000))  # restored
    assert prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG).ran == []


def test_a_record_from_before_times_were_kept_is_checked_by_size(
    prepared: tuple[Path, Path],
) -> None:
    """Stage I records written by earlier versions hold a digest of paths and sizes only:
    they stay valid, and a change of size is still noticed."""
    amass, out = prepared
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for record in manifest["stages"]["stage_I"].values():
        paths = {f["path"] for f in record["files"]}
        paths |= {s["path"] for s in record["skipped"]} | set(record["not_motions"])
        text = "\n".join(f"{p}\t{(amass / p).stat().st_size}" for p in sorted(paths))
        record["inputs"] = {
            "count": len(paths),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    target = _first_motion(amass / "CMU")
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG).ran == []
    _rewrite(target, frames=321)
    with pytest.raises(StaleOutputError, match=r"files replaced \(same names, other sizes\)"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)


def test_a_vanished_amass_dir_says_to_pass_none(prepared: tuple[Path, Path]) -> None:
    amass, out = prepared
    shutil.rmtree(amass)
    with pytest.raises(PrepareError, match="amass_dir=None"):
        prepare_vposer_datasets(SPLITS, amass, out, config=CONFIG)
    assert prepare_vposer_datasets(SPLITS, None, out, config=CONFIG).ran == []
