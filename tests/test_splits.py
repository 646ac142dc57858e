"""Split resolution on both AMASS releases' folder names, and motion-file discovery."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.splits import (
    AMASS_SPLITS,
    DATASET_ALIASES,
    SourceFile,
    SplitError,
    find_npz_files,
    resolve_datasets,
    resolve_split_files,
)
from vposer_data.synthetic import RELEASES


def npz_below(root: Path, folder: str) -> list[str]:
    """Independent listing: every visible .npz below root/folder, relative, POSIX, sorted."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in (root / folder).rglob("*.npz")
        if not p.name.startswith(".")
    )


def touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- the standard splits ------------------------------------------------------------------


def test_amass_splits_are_exactly_the_vposer_ones() -> None:
    assert AMASS_SPLITS == {
        "vald": ["HumanEva", "MPI_HDM05", "SFU", "MPI_mosh"],
        "test": ["Transitions_mocap", "SSM_synced"],
        "train": [
            "CMU",
            "MPI_Limits",
            "TotalCapture",
            "Eyes_Japan_Dataset",
            "KIT",
            "BML",
            "EKUT",
            "TCD_handMocap",
            "ACCAD",
        ],
    }
    assert list(AMASS_SPLITS) == ["vald", "test", "train"]


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_every_release_folder_is_an_alias_of_its_dataset(release: str) -> None:
    for name, folder in RELEASES[release].items():
        assert folder == name or folder in DATASET_ALIASES[name], (name, folder)
        if folder != name:
            assert name in DATASET_ALIASES[folder]


def test_standard_splits_resolve_on_both_releases(
    release_tree: tuple[str, Path, object],
) -> None:
    release, root, _ = release_tree
    lines: list[str] = []
    resolved = resolve_datasets(AMASS_SPLITS, root, log=lines.append)
    assert list(resolved) == list(AMASS_SPLITS)
    aliased = []
    for split, entries in AMASS_SPLITS.items():
        assert [d.entry for d in resolved[split]] == entries
        assert [d.folder for d in resolved[split]] == [RELEASES[release][e] for e in entries]
        aliased += [e for e in entries if RELEASES[release][e] != e]
    # one log line per alias used, naming the entry and the folder it found
    assert aliased, "each release renames at least BML"
    assert len(lines) == len(aliased)
    for entry, line in zip(aliased, lines, strict=True):
        assert repr(entry) in line and repr(RELEASES[release][entry]) in line
        assert "alias" in line


def test_no_log_line_when_names_match_the_folders(smplh_tree: Path) -> None:
    lines: list[str] = []
    resolve_datasets({"train": ["CMU", "KIT"], "vald": ["SFU"]}, smplh_tree, log=lines.append)
    assert lines == []


def test_split_files_are_every_npz_of_the_split_sorted(
    release_tree: tuple[str, Path, object],
) -> None:
    release, root, _ = release_tree
    files = resolve_split_files(AMASS_SPLITS, root, log=[].append)
    assert list(files) == list(AMASS_SPLITS)
    for split, entries in AMASS_SPLITS.items():
        expected = [
            SourceFile(path=p, dataset=e)
            for e in entries
            for p in npz_below(root, RELEASES[release][e])
        ]
        assert files[split] == expected
        for entry in entries:
            paths = [f.path for f in files[split] if f.dataset == entry]
            assert paths == sorted(paths)
            assert paths, entry
    every = [f.path for split in files.values() for f in split]
    assert len(every) == len(set(every))
    assert not any(p.endswith("LICENSE.txt") for p in every)
    # nested datasets (subject/session/file) are found
    ekut = RELEASES[release]["EKUT"]
    assert any(p.startswith(f"{ekut}/") and p.count("/") == 3 for p in every)


def test_subfolder_entry_on_smplx_tree(smplx_tree: Path) -> None:
    files = resolve_split_files({"train": ["BMLrub/rub001"]}, smplx_tree, log=[].append)
    paths = [f.path for f in files["train"]]
    assert paths == npz_below(smplx_tree, "BMLrub/rub001")
    assert any(p.endswith("_stageii.npz") for p in paths)
    assert all(p.startswith("BMLrub/rub001/") for p in paths)
    assert len(paths) < len(npz_below(smplx_tree, "BMLrub"))
    assert {f.dataset for f in files["train"]} == {"BMLrub/rub001"}


def test_subfolder_entry_on_smplh_tree_by_folder_or_alias(smplh_tree: Path) -> None:
    direct: list[str] = []
    via_alias: list[str] = []
    by_folder = resolve_split_files(
        {"train": ["BioMotionLab_NTroje/rub001"]}, smplh_tree, log=direct.append
    )
    by_alias = resolve_split_files({"train": ["BML/rub001"]}, smplh_tree, log=via_alias.append)
    expected = npz_below(smplh_tree, "BioMotionLab_NTroje/rub001")
    assert expected and len(expected) < len(npz_below(smplh_tree, "BioMotionLab_NTroje"))
    assert [f.path for f in by_folder["train"]] == expected
    assert [f.path for f in by_alias["train"]] == expected
    assert direct == []
    assert len(via_alias) == 1 and "'BioMotionLab_NTroje'" in via_alias[0]


def test_subject_level_split_of_one_dataset(smplx_tree: Path) -> None:
    files = resolve_split_files(
        {"train": ["BMLrub/rub001"], "vald": ["BMLrub/rub002"]}, smplx_tree, log=[].append
    )
    train = {f.path for f in files["train"]}
    vald = {f.path for f in files["vald"]}
    assert train and vald and not train & vald


def test_missing_subfolder_lists_the_subfolders(smplx_tree: Path) -> None:
    with pytest.raises(SplitError) as info:
        resolve_datasets({"train": ["BMLrub/rub999"]}, smplx_tree, log=[].append)
    message = str(info.value)
    assert "BMLrub/rub999" in message and "rub001" in message


# --- errors -----------------------------------------------------------------------------


def test_unknown_name_lists_the_folders_that_exist(smplx_tree: Path) -> None:
    with pytest.raises(SplitError) as info:
        resolve_datasets({"train": ["CMU", "NoSuchData"]}, smplx_tree, log=[].append)
    message = str(info.value)
    assert "NoSuchData" in message
    for folder in RELEASES["smplx"].values():
        assert folder in message


def test_unknown_alias_names_what_was_tried(tmp_path: Path) -> None:
    touch(tmp_path / "CMU" / "s1" / "a.npz")
    with pytest.raises(SplitError) as info:
        resolve_datasets({"train": ["BML"]}, tmp_path, log=[].append)
    message = str(info.value)
    assert "BMLrub" in message and "BioMotionLab_NTroje" in message and "CMU" in message


@pytest.mark.parametrize(
    ("splits", "named"),
    [
        ({"train": ["CMU"], "test": ["CMU"]}, "CMU"),
        ({"train": ["BML"], "test": ["BMLrub"]}, "BMLrub"),
        ({"train": ["BMLrub"], "test": ["BMLrub/rub001"]}, "BMLrub/rub001"),
        ({"train": ["BMLrub/rub001"], "test": ["BML"]}, "BMLrub"),
        ({"train": ["KIT", "ACCAD", "KIT"]}, "KIT"),
        ({"train": ["HDM05"], "vald": ["MPI_HDM05"]}, "HDM05"),
    ],
)
def test_same_dataset_twice_is_an_error_naming_it(
    smplx_tree: Path, splits: dict[str, list[str]], named: str
) -> None:
    with pytest.raises(SplitError) as info:
        resolve_datasets(splits, smplx_tree, log=[].append)
    message = str(info.value)
    assert named in message
    assert "once" in message


def test_same_dataset_via_alias_on_smplh_tree(smplh_tree: Path) -> None:
    with pytest.raises(SplitError, match="BioMotionLab_NTroje"):
        resolve_datasets({"train": ["BML"], "test": ["BMLrub"]}, smplh_tree, log=[].append)


def test_dataset_under_two_release_names_is_ambiguous(tmp_path: Path) -> None:
    touch(tmp_path / "BMLrub" / "rub001" / "a_stageii.npz")
    touch(tmp_path / "BioMotionLab_NTroje" / "rub001" / "a_poses.npz")
    with pytest.raises(SplitError) as info:
        resolve_datasets({"train": ["BML"]}, tmp_path, log=[].append)
    assert "BMLrub" in str(info.value) and "BioMotionLab_NTroje" in str(info.value)
    # naming a folder exactly picks it, as the message advises
    for folder in ("BMLrub", "BioMotionLab_NTroje"):
        lines: list[str] = []
        resolved = resolve_datasets({"train": [folder]}, tmp_path, log=lines.append)
        assert resolved["train"][0].folder == folder
        assert lines == []
        files = resolve_split_files({"train": [f"{folder}/rub001"]}, tmp_path, log=[].append)
        assert [f.path for f in files["train"]] == npz_below(tmp_path, folder)


def test_empty_split_is_an_error(smplh_tree: Path) -> None:
    with pytest.raises(SplitError, match="'vald'"):
        resolve_datasets({"train": ["CMU"], "vald": []}, smplh_tree, log=[].append)


def test_empty_mapping_is_an_error(smplh_tree: Path) -> None:
    with pytest.raises(SplitError, match="empty"):
        resolve_datasets({}, smplh_tree, log=[].append)


def test_split_given_as_a_string_is_an_error(smplh_tree: Path) -> None:
    with pytest.raises(SplitError, match="list"):
        resolve_datasets({"train": "CMU"}, smplh_tree, log=[].append)


@pytest.mark.parametrize("entry", ["", "/", "../CMU", "CMU/../KIT", "CMU/.."])
def test_entry_that_is_not_a_dataset_path_is_an_error(smplh_tree: Path, entry: str) -> None:
    with pytest.raises(SplitError):
        resolve_datasets({"train": [entry]}, smplh_tree, log=[].append)


def test_split_without_npz_files_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path / "CMU" / "s1" / "a_poses.npz")
    touch(tmp_path / "KIT" / "LICENSE.txt", "license")
    touch(tmp_path / "KIT" / "s1" / "readme.md", "x")
    touch(tmp_path / "KIT" / "s1" / "._hidden_poses.npz")
    splits = {"train": ["CMU"], "test": ["KIT"]}
    assert resolve_datasets(splits, tmp_path, log=[].append)["test"][0].folder == "KIT"
    with pytest.raises(SplitError) as info:
        resolve_split_files(splits, tmp_path, log=[].append)
    assert "'test'" in str(info.value) and "KIT" in str(info.value)


def test_empty_dataset_in_a_split_with_files_is_logged(tmp_path: Path) -> None:
    touch(tmp_path / "CMU" / "s1" / "a_poses.npz")
    (tmp_path / "KIT").mkdir()
    lines: list[str] = []
    files = resolve_split_files({"train": ["CMU", "KIT"]}, tmp_path, log=lines.append)
    assert [f.path for f in files["train"]] == ["CMU/s1/a_poses.npz"]
    assert len(lines) == 1 and "KIT" in lines[0] and "no .npz" in lines[0]


def test_missing_amass_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SplitError, match="does not exist"):
        resolve_split_files(AMASS_SPLITS, tmp_path / "nowhere", log=[].append)


def test_amass_dir_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path / "amass.tar")
    with pytest.raises(SplitError, match="not a directory"):
        resolve_split_files(AMASS_SPLITS, tmp_path / "amass.tar", log=[].append)


def test_split_error_is_a_value_error() -> None:
    assert issubclass(SplitError, ValueError)


# --- discovery --------------------------------------------------------------------------


def test_files_sorted_whatever_the_creation_order(tmp_path: Path) -> None:
    wanted = [
        "DS/a/01_poses.npz",
        "DS/a/02_poses.npz",
        "DS/a/10_poses.npz",
        "DS/b c/x - trial 1_poses.npz",
        "DS/b/deep/er/still_poses.npz",
        "DS/z/z_poses.npz",
    ]
    ignored = [
        "DS/LICENSE.txt",
        "DS/a/._01_poses.npz",
        "DS/a/notes.npz.txt",
        "DS/.cache/hidden_poses.npz",
    ]
    for rel in reversed(wanted + ignored):
        touch(tmp_path / rel)
    assert find_npz_files(tmp_path, "DS") == sorted(wanted)
    files = resolve_split_files({"train": ["DS"]}, tmp_path, log=[].append)
    assert [f.path for f in files["train"]] == sorted(wanted)


def test_find_accepts_str_paths(tmp_path: Path) -> None:
    touch(tmp_path / "DS" / "s" / "a.npz")
    assert find_npz_files(str(tmp_path), "DS") == ["DS/s/a.npz"]


_DIR = st.tuples(st.booleans(), st.text(alphabet="abc_ -", min_size=1, max_size=4)).map(
    lambda hidden_name: ("." if hidden_name[0] else "") + hidden_name[1]
)
_FILE = st.tuples(
    st.text(alphabet="abcXYZ019_ -.", min_size=1, max_size=8),
    st.sampled_from([".npz", ".txt", ".NPZ", ".npz.bak"]),
).map("".join)


@settings(max_examples=40, deadline=None)
@given(
    entries=st.sets(st.tuples(st.lists(_DIR, max_size=3).map(tuple), _FILE), max_size=12),
    shuffle_seed=st.integers(0, 2**16),
)
def test_find_returns_every_visible_npz_sorted_whatever_the_order(
    tmp_path_factory: pytest.TempPathFactory,
    entries: set[tuple[tuple[str, ...], str]],
    shuffle_seed: int,
) -> None:
    paths = sorted(Path("DS", *dirs, name) for dirs, name in entries)
    random.Random(shuffle_seed).shuffle(paths)
    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as tmp:
        root = Path(tmp)
        (root / "DS").mkdir()
        for rel in paths:  # created in a random order
            touch(root / rel)
        expected = sorted(
            p.as_posix()
            for p in paths
            if p.name.endswith(".npz") and not any(part.startswith(".") for part in p.parts)
        )
        assert find_npz_files(root, "DS") == expected
