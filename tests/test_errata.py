"""Frame-rate errata, exclusion presets and their pattern language (vposer_data.errata)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.config import PrepareConfig
from vposer_data.errata import (
    AMASS_FPS_ERRATA,
    EXCLUDE_INLINE_SKATING,
    EXCLUDE_TREADMILL,
    EXCLUSION_PRESETS,
    FPS_ERRATA,
    FPS_OVERRIDE_TOLERANCE,
    UNRESOLVED_FPS_DISCREPANCIES,
    Exclusion,
    check_pattern,
    exclusion_reason,
    find_exclusion,
    find_fps_override,
    fps_override,
    override_applies,
    parse_exclusions,
    parse_fps_overrides,
    pattern_matches,
)
from vposer_data.splits import DATASET_ALIASES

PROPERTY = settings(deadline=None, max_examples=60)

# Real AMASS names (SMPL+H release: *_poses.npz, SMPL-X release: *_stageii.npz), plus a few
# made-up near misses marked "made up".
TREADMILL = [
    "BioMotionLab_NTroje/rub001/0000_treadmill_norm_poses.npz",
    "BioMotionLab_NTroje/rub110/0001_treadmill_fast_poses.npz",
    "BioMotionLab_NTroje/rub006/0002_treadmill_slow_poses.npz",
    "BioMotionLab_NTroje/rub068/0003_treadmill_jog_poses.npz",
    "BioMotionLab_NTroje/rub102/0005_normal_walk1_poses.npz",
    "BioMotionLab_NTroje/rub001/0011_normal_walk1_poses.npz",
    "BMLrub/rub081/0008_normal_walk4_stageii.npz",
    "BMLrub/rub093/0010_normal_jog2_stageii.npz",
    "BMLrub/rub009/0012_normal_jog4_stageii.npz",
    "BMLrub/rub054/0000_treadmill_norm_stageii.npz",
    "BML/rub001/0003_treadmill_jog_poses.npz",
    "BMLrub/BioMotionLab_NTroje/rub001/0000_treadmill_norm_poses.npz",  # nested download
]
SKATING = [
    "MPI_HDM05/dg/HDM_dg_07-01_01_120_poses.npz",
    "MPI_HDM05/dg/HDM_dg_07-01_02_120_poses.npz",
    "HDM05/dg/HDM_dg_07-01_01_120_stageii.npz",
    "MPI_HDM05/MPI_HDM05/dg/HDM_dg_07-01_01_120_poses.npz",  # nested download
]
NEITHER = [
    "BioMotionLab_NTroje/rub001/0009_sitting1_poses.npz",
    "BioMotionLab_NTroje/rub001/0011_lifting_light1_poses.npz",
    "BioMotionLab_NTroje/rub001/0018_jumping1_poses.npz",
    "BioMotionLab_NTroje/rub001/0016_circle_walk_poses.npz",
    "BioMotionLab_NTroje/rub001/0014_scamper_poses.npz",
    "BioMotionLab_NTroje/rub001/0020_catching_and_throwing_poses.npz",
    "BioMotionLab_NTroje/rub001/0022_rom_poses.npz",
    "BioMotionLab_NTroje/rub001/0021_motorcycle_poses.npz",
    "BioMotionLab_NTroje/rub001/shape.npz",
    "BMLrub/rub001/female_stagei.npz",
    "BMLrub/rub001/0021_sitting_treadmill_poses.npz",  # made up: third token is treadmill
    "BMLrub/rub001/0007_abnormal_walk_poses.npz",  # made up: contains "normal_"
    "BMLrub/rub001/0000_treadmills_poses.npz",  # made up
    "BMLrub/rub001/00000_treadmill_norm_poses.npz",  # made up: five digits
    "BMLrub/treadmill/0009_sitting1_poses.npz",  # made up: folder, not file, says treadmill
    "CMU/01/0000_treadmill_norm_poses.npz",  # made up: another dataset
    "BMLmovi/Subject_11_F_MoSh/Subject_11_F_1_poses.npz",
    "BMLhandball/S01_Expert/Trial_upper_left_006_poses.npz",
    "Eyes_Japan_Dataset/kudo/walk-01-normal-kudo_poses.npz",
    "KIT/3/walking_slow08_poses.npz",
    "MPI_HDM05/dg/HDM_dg_06-01_01_120_poses.npz",
    "MPI_HDM05/dg/HDM_dg_08-01_01_120_poses.npz",
    "MPI_HDM05/dg/HDM_dg_07-02_01_120_poses.npz",  # made up
    "MPI_HDM05/bk/HDM_bk_07-01_01_120_poses.npz",  # made up: another subject
    "MPI_HDM05/bk/HDM_bk_01-01_01_120_poses.npz",
    "CMU/dg/HDM_dg_07-01_01_120_poses.npz",  # made up: another dataset
    "SSM_synced/20160930_50032/punch_kick_sync_poses.npz",
]
ALL_NAMES = TREADMILL + SKATING + NEITHER


# --- pattern language ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", sorted({g for g in DATASET_ALIASES.values()}))
def test_dataset_aliases_match_both_ways(group: tuple[str, ...]) -> None:
    for in_pattern in group:
        for in_path in group:
            assert pattern_matches(f"{in_pattern}/s1", f"{in_path}/s1/a_poses.npz")
            assert pattern_matches(in_pattern, f"{in_path}/s1/a_poses.npz")
        assert not pattern_matches(f"{in_pattern}/s1", "CMU/s1/a_poses.npz")
        assert not pattern_matches("CMU", f"{in_pattern}/s1/a_poses.npz")


def test_examples_from_the_brief() -> None:
    assert pattern_matches(
        "SSM/20160930_50032/*", "SSM_synced/20160930_50032/punch_kick_sync_poses.npz"
    )
    assert pattern_matches("SSM_synced/20160930_50032/*", "SSM/20160930_50032/x_stageii.npz")
    assert pattern_matches(
        "BMLrub/rub001", "BioMotionLab_NTroje/rub001/0000_treadmill_norm_poses.npz"
    )
    assert pattern_matches("BioMotionLab_NTroje/rub001/*", "BMLrub/rub001/x_stageii.npz")


def test_aliases_only_for_the_dataset_component() -> None:
    assert not pattern_matches("CMU/SSM/x", "CMU/SSM_synced/x")
    assert pattern_matches("CMU/SSM_synced/x", "CMU/SSM_synced/x")
    # A glob in the dataset component sees every release name of the folder.
    assert pattern_matches("BML*", "BioMotionLab_NTroje/rub001/a.npz")
    assert pattern_matches("**/rub001", "BioMotionLab_NTroje/rub001/a.npz")


def test_a_pattern_names_a_file_or_any_folder_above_it() -> None:
    path = "BMLhandball/S01_Expert/Trial_upper_left_006_poses.npz"
    for pattern in (
        "BMLhandball",
        "BMLhandball/*",
        "BMLhandball/*/*",
        "BMLhandball/S01_Expert",
        "BMLhandball/S01_*/Trial_*",
        path,
        "BMLhandball/**",
        "**",
    ):
        assert pattern_matches(pattern, path), pattern
    for pattern in (
        "BMLhandball/*/*/*",  # longer than the path
        path + "/more",
        "BMLhandball/S01",  # a component matches whole, not as a prefix of a name
        "BMLhand",
        "bmlhandball",  # case-sensitive
        "BMLhandball/s01_expert",
    ):
        assert not pattern_matches(pattern, path), pattern
    # Nested subject folders are below the dataset folder like any other.
    assert pattern_matches("BMLhandball/*", "BMLhandball/BMLhandball/S01_Expert/x_poses.npz")


def test_star_does_not_cross_slash_but_double_star_does() -> None:
    assert not pattern_matches("A/*c", "A/b/c")
    assert not pattern_matches("A/*/c", "A/b1/b2/c")
    assert pattern_matches("A/**/c", "A/b1/b2/c")
    assert pattern_matches("A/**/c", "A/c")  # zero components
    assert pattern_matches("A/*/c", "A/b/c")
    assert not pattern_matches("A/?", "A/bc")
    assert pattern_matches("A/[0-9]x", "A/7x")
    assert not pattern_matches("A/[!0-9]x", "A/7x")


_NAME = st.text(alphabet="abcXYZ019_-. ", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)


@PROPERTY
@given(st.lists(_NAME, min_size=1, max_size=6), st.integers(0, 6))
def test_every_leading_part_of_a_path_matches_it(parts: list[str], k: int) -> None:
    path = "/".join(["CMU", *parts])
    k = min(k, len(parts))
    assert pattern_matches("/".join(["CMU", *parts[:k]]), path)
    assert pattern_matches("/".join(["CMU", *["*"] * k]), path)
    assert not pattern_matches("/".join(["CMU", *parts, "x"]), path)
    assert not pattern_matches("/".join(["CMU", *["*"] * (len(parts) + 1)]), path)


@PROPERTY
@given(st.lists(_NAME, min_size=0, max_size=5), _NAME)
def test_double_star_finds_a_name_at_any_depth(middle: list[str], leaf: str) -> None:
    path = "/".join(["KIT", *middle, "Q" + leaf])
    assert pattern_matches("KIT/**/Q" + leaf, path)
    assert pattern_matches("KIT/**/Q*", path)
    assert not pattern_matches("ACCAD/**/Q*", path)


@pytest.mark.parametrize(
    "pattern",
    ["", "/BMLhandball", "a//b", "a/", "a/../b", "./a", "a\\b", "a/x**", "**x/b", 5, None],
)
def test_invalid_patterns_are_named(pattern: object) -> None:
    with pytest.raises(ValueError, match="pattern"):
        check_pattern(pattern)
    if isinstance(pattern, str):
        with pytest.raises(ValueError) as info:
            check_pattern(pattern)
        assert repr(pattern) in str(info.value)


def test_errata_module_does_not_import_torch() -> None:
    code = "import sys, vposer_data.errata; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- frame-rate errata --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("BMLhandball/S01_Expert/Trial_upper_left_006_poses.npz", 240.0),
        ("BMLhandball/S02_Novice/Trial_upper_right_001_stageii.npz", 240.0),
        ("BMLhandball/BMLhandball/S01_Expert/Trial_upper_left_006_poses.npz", 240.0),
        ("SSM_synced/20160930_50032/punch_kick_sync_poses.npz", 59.0),
        ("SSM/20160930_50032/punch_kick_sync_stageii.npz", 59.0),
        ("SSM_synced/20161014_50033/hop_on_one_leg_sync_poses.npz", 59.0),
        ("SSM/20161014_50033/jumping_jacks_sync_stageii.npz", 59.0),
        ("SSM/SSM_synced/20161014_50033/jumping_jacks_sync_poses.npz", 59.0),
        ("SSM_synced/20160330_03333/ankles_poses.npz", None),
        ("TotalCapture/s1/walking1_poses.npz", None),
        ("BMLmovi/Subject_11_F_MoSh/Subject_11_F_1_poses.npz", None),
        ("CMU/20160930_50032/x_poses.npz", None),
        ("XBMLhandball/S01/x_poses.npz", None),
    ],
)
def test_default_errata(path: str, expected: float | None) -> None:
    assert fps_override(path, AMASS_FPS_ERRATA) == expected


DEFAULT_ERRATA = {  # the three errata of the module's docstring, written out
    "BMLhandball": 240.0,
    "SSM_synced/**/20160930_50032": 59.0,
    "SSM_synced/**/20161014_50033": 59.0,
}


def test_default_errata_are_read_only_data_with_sources() -> None:
    assert dict(AMASS_FPS_ERRATA) == DEFAULT_ERRATA
    with pytest.raises(TypeError):
        AMASS_FPS_ERRATA["CMU"] = 1.0  # type: ignore[index]
    # a mapping a caller starts from the defaults and edits is its own, and a configuration
    # keeps the mapping it was given as it was then: the defaults never change
    mine = parse_fps_overrides(AMASS_FPS_ERRATA)
    assert mine == DEFAULT_ERRATA
    mine["CMU"] = 1.0
    config = PrepareConfig(sampling="fps", target_fps=30, fps_overrides=mine)
    mine["KIT"] = 2.0
    assert dict(config.fps_overrides) == {**DEFAULT_ERRATA, "CMU": 1.0}
    assert dict(AMASS_FPS_ERRATA) == DEFAULT_ERRATA
    assert dict(PrepareConfig(sampling="fps", target_fps=30).fps_overrides) == DEFAULT_ERRATA
    for erratum in (*FPS_ERRATA, *UNRESOLVED_FPS_DISCREPANCIES):
        assert "https://github.com/" in erratum.source
        check_pattern(erratum.pattern)
    # TotalCapture is documented but not applied.
    assert [e.pattern for e in UNRESOLVED_FPS_DISCREPANCIES] == ["TotalCapture"]
    assert all(e.fps is None for e in UNRESOLVED_FPS_DISCREPANCIES)
    assert not any(pattern_matches(p, "TotalCapture/s1/walking1_poses.npz") for p in mine)


def test_most_specific_override_wins_whatever_the_order() -> None:
    s01 = "BMLhandball/S01_Expert/Trial_upper_left_006_poses.npz"
    s02 = "BMLhandball/S02_Novice/Trial_upper_right_001_poses.npz"
    for overrides in (
        {"BMLhandball": 240.0, "BMLhandball/S01_Expert": 120.0},
        {"BMLhandball/S01_Expert": 120.0, "BMLhandball": 240.0},
    ):
        assert fps_override(s01, overrides) == 120.0
        assert fps_override(s02, overrides) == 240.0
    # Same depth: more literal characters wins.
    assert fps_override(s01, {"BMLhandball/S0*": 100.0, "BMLhandball/S01_Expert": 120.0}) == 120
    assert fps_override(s01, {"BMLhandball/S01_*": 100.0, "BMLhandball/S0?_Expert": 90.0}) == 90
    # '**' is not a component: depth 2 (with **) loses to depth 3.
    two = "BMLhandball/**/Trial_upper_left_006_poses.npz"
    three = "BMLhandball/*/Trial_*"
    assert fps_override(s01, {two: 50.0, three: 60.0}) == 60.0
    # The dataset name's spelling does not count; a full tie goes to the first in sorted order.
    tie = {"SSM_synced/20160930_50032": 2.0, "SSM/20160930_50032": 1.0}
    assert find_fps_override("SSM/20160930_50032/a.npz", tie) == ("SSM/20160930_50032", 1.0)
    assert find_fps_override("CMU/01/01_01_poses.npz", tie) is None


@PROPERTY
@given(
    st.permutations(
        [
            "BMLhandball",
            "BMLhandball/S01_Expert",
            "BMLhandball/*/Trial_*",
            "BMLhandball/**/Trial_upper_*",
            "BML*/S0?_Expert",
            "**",
        ]
    )
)
def test_override_choice_does_not_depend_on_order(patterns: list[str]) -> None:
    rates = {
        "BMLhandball": 1.0,
        "BMLhandball/S01_Expert": 2.0,
        "BMLhandball/*/Trial_*": 3.0,
        "BMLhandball/**/Trial_upper_*": 4.0,
        "BML*/S0?_Expert": 5.0,
        "**": 6.0,
    }
    overrides = {p: rates[p] for p in patterns}
    assert fps_override("BMLhandball/S01_Expert/Trial_upper_left_006_poses.npz", overrides) == 3.0
    assert fps_override("BMLhandball/S01_Expert/shape.npz", overrides) == 2.0
    assert fps_override("BMLhandball/S11_Expert/shape.npz", overrides) == 1.0
    assert fps_override("CMU/01/01_01_poses.npz", overrides) == 6.0


@pytest.mark.parametrize(
    ("file_fps", "override", "applies"),
    [
        (120.0, 240.0, True),
        (60.0, 59.0, True),  # 1.7%
        (120.0, 59.0, True),
        (59.9999885559082, 60.0, False),
        (120.00004577636719, 120.0, False),
        (120.5, 120.0, False),  # 0.42%
        (200.0 + 1.0, 200.0, False),  # exactly 0.5% is not more than 0.5%
        (200.0 + 1.001, 200.0, True),
        (200.0 - 1.001, 200.0, True),
        (None, 59.0, True),
        (0.0, 59.0, True),
        (math.nan, 59.0, True),
    ],
)
def test_override_applies(file_fps: float | None, override: float, applies: bool) -> None:
    assert override_applies(file_fps, override) is applies


@PROPERTY
@given(st.floats(1.0, 1000.0), st.floats(-1.0, 1.0))
def test_override_threshold_is_half_a_percent(override: float, u: float) -> None:
    near = override * (1 + 0.0049 * u)
    far = override * (1 + math.copysign(0.0051 + 0.5 * abs(u), u))
    assert FPS_OVERRIDE_TOLERANCE == 0.005
    assert not override_applies(near, override)
    assert override_applies(far, override)


@pytest.mark.parametrize("bad", [0.0, -59.0, math.inf, math.nan])
def test_override_applies_rejects_bad_override(bad: float) -> None:
    with pytest.raises(ValueError, match="override rate"):
        override_applies(60.0, bad)


def test_parse_fps_overrides() -> None:
    given_ = {"BMLhandball": 240, "SSM/2016*": 59.5}
    parsed = parse_fps_overrides(given_)
    assert parsed == {"BMLhandball": 240.0, "SSM/2016*": 59.5}
    assert all(type(v) is float for v in parsed.values())
    assert parsed is not given_
    assert parse_fps_overrides({}) == {}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"/abs/x": 60}, "'/abs/x'"),
        ({"a//b": 60}, "'a//b'"),
        ({"a/../b": 60}, "'a/../b'"),
        ({"": 60}, "''"),
        ({"a/x**": 60}, "'a/x**'"),
        ({5: 60}, "5"),
        ({"BMLhandball": 0}, "'BMLhandball'"),
        ({"BMLhandball": -240}, "'BMLhandball'"),
        ({"BMLhandball": math.nan}, "'BMLhandball'"),
        ({"BMLhandball": math.inf}, "'BMLhandball'"),
        ({"BMLhandball": "240"}, "'BMLhandball'"),
        ({"BMLhandball": True}, "'BMLhandball'"),
        ({"BMLhandball": None}, "'BMLhandball'"),
        ({"CMU": 120, "SSM": -1}, "'SSM'"),
    ],
)
def test_parse_fps_overrides_names_the_bad_entry(value: dict[object, object], named: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_fps_overrides(value)
    assert named in str(info.value)


@pytest.mark.parametrize("value", [[("BMLhandball", 240)], "BMLhandball", None, 240])
def test_parse_fps_overrides_wants_a_mapping(value: object) -> None:
    with pytest.raises(ValueError, match="mapping"):
        parse_fps_overrides(value)


# --- exclusions ---------------------------------------------------------------------------------


def _excluded(excludes: tuple[Exclusion, ...]) -> list[str]:
    return [p for p in ALL_NAMES if exclusion_reason(p, excludes) is not None]


def test_treadmill_preset_excludes_exactly_the_treadmill_files() -> None:
    assert _excluded(EXCLUDE_TREADMILL) == TREADMILL


def test_inline_skating_preset_excludes_exactly_the_skating_files() -> None:
    assert _excluded(EXCLUDE_INLINE_SKATING) == SKATING


def test_presets_together_and_by_name() -> None:
    both = parse_exclusions(EXCLUDE_TREADMILL + EXCLUDE_INLINE_SKATING)
    assert _excluded(both) == TREADMILL + SKATING
    assert dict(EXCLUSION_PRESETS) == {
        "treadmill": EXCLUDE_TREADMILL,
        "inline_skating": EXCLUDE_INLINE_SKATING,
    }
    for entry in both:
        assert "humor" in entry.reason


def test_exclusion_reason_is_the_first_match() -> None:
    excludes = parse_exclusions(
        [
            {"pattern": "CMU/01", "reason": "subject 01"},
            ("CMU", "all of CMU"),
            Exclusion("CMU/01/01_01_poses.npz", "never reached"),
        ]
    )
    assert exclusion_reason("CMU/01/01_01_poses.npz", excludes) == "subject 01"
    assert exclusion_reason("CMU/02/02_01_poses.npz", excludes) == "all of CMU"
    assert exclusion_reason("KIT/3/x_poses.npz", excludes) is None
    assert find_exclusion("CMU/02/x.npz", excludes) == Exclusion("CMU", "all of CMU")
    assert exclusion_reason("CMU/01/x.npz", ()) is None


def test_parse_exclusions_forms_and_round_trip() -> None:
    plain = [e.as_dict() for e in EXCLUDE_TREADMILL]
    assert plain[0] == {
        "pattern": EXCLUDE_TREADMILL[0].pattern,
        "reason": EXCLUDE_TREADMILL[0].reason,
    }
    assert parse_exclusions(plain) == EXCLUDE_TREADMILL
    pairs = [[e.pattern, e.reason] for e in EXCLUDE_INLINE_SKATING]
    assert parse_exclusions(pairs) == EXCLUDE_INLINE_SKATING
    assert parse_exclusions(iter(EXCLUDE_TREADMILL)) == EXCLUDE_TREADMILL
    assert parse_exclusions([]) == ()


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"pattern": "CMU/01"}, "missing reason"),
        ({"reason": "why"}, "missing pattern"),
        ({"pattern": "CMU", "reason": "why", "why": 1}, "unknown why"),
        ({"pattern": "CMU", "reason": ""}, "reason"),
        ({"pattern": "CMU", "reason": 3}, "reason"),
        ({"pattern": "/CMU", "reason": "why"}, "absolute"),
        ({"pattern": "CMU//01", "reason": "why"}, "empty component"),
        (("CMU", "why", "extra"), "pair"),
        (("CMU",), "pair"),
        ("CMU", "pair"),
        (None, "pair"),
    ],
)
def test_parse_exclusions_names_the_bad_entry(entry: object, says: str) -> None:
    good = {"pattern": "KIT", "reason": "ok"}
    with pytest.raises(ValueError) as info:
        parse_exclusions([good, entry])
    message = str(info.value)
    assert "#1" in message and repr(entry) in message and says in message, message


@pytest.mark.parametrize("value", ["BMLrub", {"pattern": "CMU", "reason": "x"}, None, 3])
def test_parse_exclusions_wants_a_list(value: object) -> None:
    with pytest.raises(ValueError, match="list"):
        parse_exclusions(value)
