"""load_sequence on real .npz files: the three families, their quirks, and every way to be bad."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vposer_data.amass import AmassFormatError, AmassSequence, NotAMotionError, load_sequence
from vposer_data.synthetic import write_npz

N = 12  # frames in hand-made files


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def smpl_arrays(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = _rng(seed)
    return {
        "poses": rng.uniform(-1, 1, (n, 72)),
        "trans": rng.uniform(-1, 1, (n, 3)),
        "betas": rng.normal(0, 1, 10),
        "gender": np.array("male"),
        "mocap_framerate": np.array(120.0),
    }


def smplh_arrays(n: int = N, seed: int = 1) -> dict[str, np.ndarray]:
    rng = _rng(seed)
    return {
        "poses": rng.uniform(-1, 1, (n, 156)),
        "trans": rng.uniform(-1, 1, (n, 3)),
        "betas": rng.normal(0, 1, 16),
        "gender": np.array("female"),
        "mocap_framerate": np.array(59.99998),
        "dmpls": rng.normal(0, 1, (n, 8)),
    }


def smplx_arrays(n: int = N, seed: int = 2) -> dict[str, np.ndarray]:
    """Like an AMASS SMPL-X G file: poses and split keys, an object-array key, NaN markers."""
    rng = _rng(seed)
    poses = rng.uniform(-1, 1, (n, 165))
    markers = rng.normal(0, 1, (n, 4, 3))
    markers[1::5, 2] = np.nan  # occluded markers, as in real files
    labels = np.array(["A", "B", "C", "D"], dtype=object)
    return {
        "gender": np.array("neutral"),
        "surface_model_type": np.array("smplx"),
        "mocap_frame_rate": np.array(120.00004),
        "trans": rng.uniform(-1, 1, (n, 3)),
        "poses": poses,
        "betas": rng.normal(0, 1, 16),
        "num_betas": np.array(16),
        "root_orient": poses[:, 0:3].copy(),
        "pose_body": poses[:, 3:66].copy(),
        "pose_jaw": poses[:, 66:69].copy(),
        "pose_eye": poses[:, 69:75].copy(),
        "pose_hand": poses[:, 75:165].copy(),
        "markers": markers,
        "labels": labels,
        "markers_latent_vids": np.array([{"A": 1, "B": 2}]),
    }


def save(path: Path, arrays: dict[str, Any]) -> Path:
    np.savez(path, **arrays)
    assert path.exists(), "np.savez appends .npz only when it is missing"
    return path


def without(arrays: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in arrays.items() if k not in keys}


def assert_refused(path: Path, *words: str, **kwargs: Any) -> AmassFormatError:
    with pytest.raises(AmassFormatError) as info:
        load_sequence(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    assert info.value.path == str(path)
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    return info.value


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory hypothesis examples may write into (function-scoped tmp_path is not
    reset between examples)."""
    return tmp_path_factory.mktemp("amass_scratch")


# --- the three families -------------------------------------------------------------------


def test_smplx_loads_every_part_from_its_slice(tmp_path: Path) -> None:
    arrays = smplx_arrays()
    seq = load_sequence(save(tmp_path / "s001_stageii.npz", arrays))
    poses = arrays["poses"]
    assert isinstance(seq, AmassSequence)
    assert seq.family == "smplx"
    assert seq.path == str(tmp_path / "s001_stageii.npz")
    np.testing.assert_array_equal(seq.root_orient, poses[:, 0:3])
    np.testing.assert_array_equal(seq.pose_body, poses[:, 3:66])
    np.testing.assert_array_equal(seq.pose_jaw, poses[:, 66:69])
    np.testing.assert_array_equal(seq.pose_eye, poses[:, 69:75])
    np.testing.assert_array_equal(seq.pose_hand, poses[:, 75:165])
    np.testing.assert_array_equal(seq.trans, arrays["trans"])
    np.testing.assert_array_equal(seq.betas, arrays["betas"])
    assert seq.dmpls is None
    assert seq.num_frames == N
    assert seq.fps == 120.00004
    assert seq.gender == "neutral"
    # the file really holds what makes SMPL-X hard: an object array and NaN markers
    with np.load(tmp_path / "s001_stageii.npz", allow_pickle=False) as raw:
        with pytest.raises(ValueError):
            raw["markers_latent_vids"]
        assert np.isnan(raw["markers"]).any()


def test_smplh_loads_root_body_hands_and_dmpls(tmp_path: Path) -> None:
    arrays = smplh_arrays()
    seq = load_sequence(save(tmp_path / "01_01_poses.npz", arrays))
    poses = arrays["poses"]
    assert seq.family == "smplh"
    np.testing.assert_array_equal(seq.root_orient, poses[:, 0:3])
    np.testing.assert_array_equal(seq.pose_body, poses[:, 3:66])
    np.testing.assert_array_equal(seq.pose_hand, poses[:, 66:156])
    assert seq.pose_hand is not None and seq.pose_hand.shape == (N, 90)
    assert seq.pose_jaw is None and seq.pose_eye is None
    np.testing.assert_array_equal(seq.dmpls, arrays["dmpls"])
    np.testing.assert_array_equal(seq.trans, arrays["trans"])
    np.testing.assert_array_equal(seq.betas, arrays["betas"])
    assert seq.fps == 59.99998
    assert seq.gender == "female"


def test_smpl_loads_root_and_body_without_hands(tmp_path: Path) -> None:
    arrays = smpl_arrays()
    seq = load_sequence(save(tmp_path / "walk.npz", arrays))
    poses = arrays["poses"]
    assert seq.family == "smpl"
    np.testing.assert_array_equal(seq.root_orient, poses[:, 0:3])
    np.testing.assert_array_equal(seq.pose_body, poses[:, 3:66])
    assert seq.pose_body.shape == (N, 63)
    assert seq.pose_hand is None and seq.pose_jaw is None and seq.pose_eye is None
    assert seq.dmpls is None
    np.testing.assert_array_equal(seq.betas, arrays["betas"])
    assert seq.fps == 120.0
    assert seq.gender == "male"


def test_smplx_file_written_by_write_npz_loads(tmp_path: Path) -> None:
    arrays = smplx_arrays(seed=5)
    write_npz(tmp_path / "a_stageii.npz", arrays)
    seq = load_sequence(tmp_path / "a_stageii.npz")
    assert seq.family == "smplx"
    np.testing.assert_array_equal(seq.pose_hand, arrays["poses"][:, 75:165])


@pytest.mark.parametrize(
    ("name", "arrays", "family"),
    [
        ("foo_poses.npz", smplx_arrays(), "smplx"),
        ("foo_poses.npz", without(smplx_arrays(), "markers_latent_vids"), "smplx"),
        ("bar_stageii.npz", smplh_arrays(), "smplh"),
        ("baz_stageii.npz", smpl_arrays(), "smpl"),
        ("qux_poses.npz", smpl_arrays(), "smpl"),
    ],
)
def test_family_comes_from_keys_and_shapes_not_the_name(
    tmp_path: Path, name: str, arrays: dict[str, Any], family: str
) -> None:
    assert load_sequence(save(tmp_path / name, arrays)).family == family


def test_smplx_with_split_keys_only_loads(tmp_path: Path) -> None:
    arrays = without(smplx_arrays(), "poses")
    seq = load_sequence(save(tmp_path / "split_stageii.npz", arrays))
    assert seq.family == "smplx"
    for key in ("root_orient", "pose_body", "pose_jaw", "pose_eye", "pose_hand"):
        np.testing.assert_array_equal(getattr(seq, key), arrays[key])
    assert seq.num_frames == N


def test_split_keys_without_face_are_smplh(tmp_path: Path) -> None:
    arrays = without(smplx_arrays(), "poses", "pose_jaw", "pose_eye")
    seq = load_sequence(save(tmp_path / "x.npz", arrays))
    assert seq.family == "smplh"
    assert seq.pose_jaw is None
    np.testing.assert_array_equal(seq.pose_hand, arrays["pose_hand"])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mocap_framerate", np.array(59.99998), 59.99998),
        ("mocap_frame_rate", np.array(120.00004), 120.00004),
        ("mocap_framerate", np.array(250), 250.0),
        ("mocap_frame_rate", np.array([100.0]), 100.0),
        ("mocap_framerate", np.array(59.99998, dtype=np.float32), float(np.float32(59.99998))),
    ],
)
def test_frame_rate_from_either_key_kept_as_float(
    tmp_path: Path, key: str, value: np.ndarray, expected: float
) -> None:
    arrays = without(smplh_arrays(), "mocap_framerate") | {key: value}
    fps = load_sequence(save(tmp_path / "m.npz", arrays)).fps
    assert type(fps) is float
    assert fps == expected
    if expected == 59.99998:
        assert fps != 60.0


@pytest.mark.parametrize(
    ("gender", "expected"),
    [
        (np.array("female"), "female"),
        (np.array(b"female"), "female"),
        (np.array("  Female\n"), "female"),
        (np.array(b"MALE "), "male"),
        (np.array("Neutral"), "neutral"),
        (np.array(["male"]), "male"),
    ],
)
def test_gender_str_bytes_case_and_whitespace(
    tmp_path: Path, gender: np.ndarray, expected: str
) -> None:
    seq = load_sequence(save(tmp_path / "m.npz", smplh_arrays() | {"gender": gender}))
    assert seq.gender == expected
    assert type(seq.gender) is str


@pytest.mark.parametrize("width", [16, 10, 300])
@pytest.mark.parametrize("leading_one", [False, True])
def test_betas_width_is_kept(tmp_path: Path, width: int, leading_one: bool) -> None:
    betas = _rng(width).normal(0, 1, width)
    stored = betas[None, :] if leading_one else betas
    seq = load_sequence(save(tmp_path / "m.npz", smplh_arrays() | {"betas": stored}))
    assert seq.betas.shape == (width,)
    np.testing.assert_array_equal(seq.betas, betas)


# --- refusals -------------------------------------------------------------------------------


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    good = save(tmp_path / "good.npz", smplh_arrays())
    data = good.read_bytes()
    cut = tmp_path / "cut_poses.npz"
    cut.write_bytes(data[: len(data) // 2])
    assert load_sequence(good).num_frames == N  # the uncut file is fine
    assert_refused(cut, "not a readable .npz archive")


def test_truncated_member_with_intact_directory_is_refused(tmp_path: Path) -> None:
    """Zero the bytes of the stored `poses` member while the zip directory stays intact."""
    path = save(tmp_path / "bad_poses.npz", smplh_arrays())
    data = bytearray(path.read_bytes())
    marker = b"poses.npy"
    start = data.index(marker) + len(marker) + 200
    data[start : start + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    assert_refused(path, "poses")


def test_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes_poses.npz"
    path.write_text("these are not the poses you are looking for\n")
    error = assert_refused(path, "not a readable .npz archive")
    assert "pickle" not in error.problem  # it is text, not pickled data


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty_poses.npz"
    path.write_bytes(b"")
    assert_refused(path, "not a readable .npz archive")


def test_single_npy_array_named_npz_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((N, 156)))
    path = tmp_path / "array_poses.npz"
    path.write_bytes(buffer.getvalue())
    assert_refused(path, "single array")


class _Payload:
    """Unpickling this creates the marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_file_is_refused_and_never_unpickled(tmp_path: Path, protocol: int) -> None:
    # control: the payload does act when unpickled
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(_Payload(control), protocol=protocol)).close()
    assert control.exists()

    marker = tmp_path / "marker"
    path = tmp_path / "foo_stageii.npz"
    with path.open("wb") as f:
        pickle.dump({"poses": _Payload(marker), "trans": np.zeros((2, 3))}, f, protocol=protocol)
    assert_refused(path, "pickle")
    assert not marker.exists()


def test_poses_object_array_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    poses = np.empty((N,), dtype=object)
    for i in range(N):
        poses[i] = _Payload(marker)
    path = save(tmp_path / "obj_poses.npz", smplh_arrays() | {"poses": poses})
    assert_refused(path, "'poses'", "object array")
    assert not marker.exists()


@pytest.mark.parametrize("key", ["trans", "betas", "gender"])
def test_missing_key_is_refused(tmp_path: Path, key: str) -> None:
    path = save(tmp_path / "m_poses.npz", without(smplh_arrays(), key))
    assert_refused(path, f"missing key '{key}'")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(min_value=0, max_value=400).filter(lambda w: w not in (72, 156, 165)))
def test_any_unknown_pose_width_is_refused(scratch: Path, width: int) -> None:
    arrays = smplh_arrays(n=3) | {"poses": np.zeros((3, width))}
    path = save(scratch / "width_poses.npz", arrays)
    assert_refused(path, f"width {width}")


@settings(max_examples=20, deadline=None)
@given(width=st.sampled_from([72, 156, 165]), n=st.integers(min_value=1, max_value=40))
def test_every_known_pose_width_loads(scratch: Path, width: int, n: int) -> None:
    rng = _rng(width + n)
    arrays = smplh_arrays(n=n) | {"poses": rng.uniform(-1, 1, (n, width))}
    if width != 156:
        arrays = without(arrays, "dmpls")
    seq = load_sequence(save(scratch / "known_poses.npz", arrays))
    assert seq.family == {72: "smpl", 156: "smplh", 165: "smplx"}[width]
    assert seq.num_frames == n
    np.testing.assert_array_equal(seq.pose_body, arrays["poses"][:, 3:66])


def test_trans_frame_count_disagreeing_is_refused(tmp_path: Path) -> None:
    arrays = smplh_arrays() | {"trans": np.zeros((N - 1, 3))}
    assert_refused(save(tmp_path / "m.npz", arrays), "disagree", "frames", "trans")


def test_dmpls_frame_count_disagreeing_is_refused(tmp_path: Path) -> None:
    arrays = smplh_arrays() | {"dmpls": np.zeros((N + 3, 8))}
    assert_refused(save(tmp_path / "m.npz", arrays), "disagree", "dmpls")


def test_split_keys_frame_count_disagreeing_is_refused(tmp_path: Path) -> None:
    arrays = without(smplx_arrays(), "poses")
    arrays["pose_hand"] = arrays["pose_hand"][:-2]
    assert_refused(save(tmp_path / "m.npz", arrays), "disagree", "pose_hand")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("key", ["poses", "trans", "betas", "dmpls"])
def test_non_finite_values_are_refused(tmp_path: Path, key: str, bad: float) -> None:
    arrays = smplh_arrays()
    value = arrays[key].copy()
    index = (N // 2, 10) if key == "poses" else (N // 2, 1) if value.ndim == 2 else 5
    value[index] = bad
    arrays[key] = value
    name = "pose_body" if key == "poses" else key  # column 10 of poses is body
    assert_refused(save(tmp_path / "m.npz", arrays), "non-finite", f"'{name}'")


def test_non_finite_in_poses_hand_slice_is_refused(tmp_path: Path) -> None:
    arrays = smplx_arrays()
    arrays["poses"] = arrays["poses"].copy()
    arrays["poses"][3, 100] = np.nan
    assert_refused(save(tmp_path / "m_stageii.npz", arrays), "non-finite", "'pose_hand'")


def test_nan_in_markers_is_fine(tmp_path: Path) -> None:
    arrays = smplx_arrays()
    arrays["markers"] = np.full((N, 4, 3), np.nan)
    assert load_sequence(save(tmp_path / "m_stageii.npz", arrays)).family == "smplx"


@pytest.mark.parametrize("word", ["robot", "", "m", "males", "fe male", "unknown"])
def test_unknown_gender_word_is_refused(tmp_path: Path, word: str) -> None:
    path = save(tmp_path / "m.npz", smplh_arrays() | {"gender": np.array(word)})
    assert_refused(path, "gender", "expected one of")


@pytest.mark.parametrize(
    "gender", [np.array(["male", "female"]), np.array(1), np.array(["male"], dtype=object)]
)
def test_gender_that_is_not_one_string_is_refused(tmp_path: Path, gender: np.ndarray) -> None:
    assert_refused(save(tmp_path / "m.npz", smplh_arrays() | {"gender": gender}), "'gender'")


def _normalized(text: str) -> str:
    """What numpy keeps of a string (trailing NULs dropped), then what the reader compares."""
    return text.rstrip("\x00").strip().lower()


@settings(max_examples=60, deadline=None)
@given(
    word=st.text(max_size=12).filter(lambda s: _normalized(s) not in ("male", "female", "neutral"))
)
def test_any_gender_outside_the_three_is_refused(scratch: Path, word: str) -> None:
    path = save(scratch / "g.npz", smplh_arrays(n=2) | {"gender": np.array(word)})
    assert_refused(path, "gender")


def _outcome(path: Path) -> str:
    try:
        return "ok:" + load_sequence(path).gender
    except AmassFormatError as exc:
        return "refused:" + type(exc).__name__


@settings(max_examples=60, deadline=None)
@given(
    word=st.one_of(
        st.sampled_from(["male", "female", "neutral"]).flatmap(
            lambda g: st.tuples(st.sampled_from(["", " ", "\t", "\n"]), st.booleans()).map(
                lambda p: p[0] + (g.upper() if p[1] else g) + p[0]
            )
        ),
        st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=10),
        st.text(max_size=8),
    )
)
def test_gender_as_str_or_bytes_gives_the_same_result(scratch: Path, word: str) -> None:
    as_str = save(scratch / "str.npz", smplh_arrays(n=2) | {"gender": np.array(word)})
    as_bytes = save(
        scratch / "bytes.npz", smplh_arrays(n=2) | {"gender": np.array(word.encode("utf-8"))}
    )
    assert _outcome(as_str) == _outcome(as_bytes)


def test_missing_frame_rate_is_refused_unless_a_default_is_given(tmp_path: Path) -> None:
    path = save(tmp_path / "m.npz", without(smplh_arrays(), "mocap_framerate"))
    assert_refused(path, "no frame rate", "mocap_framerate", "mocap_frame_rate", "default_fps")
    seq = load_sequence(path, default_fps=30)
    assert seq.fps == 30.0 and type(seq.fps) is float


def test_default_fps_does_not_override_the_files_rate(tmp_path: Path) -> None:
    path = save(tmp_path / "m.npz", smplh_arrays())
    assert load_sequence(path, default_fps=30).fps == 59.99998


@pytest.mark.parametrize("value", [0.0, -60.0, np.nan, np.inf])
@pytest.mark.parametrize("key", ["mocap_framerate", "mocap_frame_rate"])
def test_non_positive_or_non_finite_frame_rate_is_refused(
    tmp_path: Path, key: str, value: float
) -> None:
    arrays = without(smplh_arrays(), "mocap_framerate") | {key: np.array(value)}
    assert_refused(save(tmp_path / "m.npz", arrays), key, "positive frame rate")


@pytest.mark.parametrize(
    "value", [np.array("60"), np.array(True), np.array([60.0, 60.0]), np.array(60 + 0j)]
)
def test_frame_rate_that_is_not_one_real_number_is_refused(
    tmp_path: Path, value: np.ndarray
) -> None:
    arrays = smplh_arrays() | {"mocap_framerate": value}
    assert_refused(save(tmp_path / "m.npz", arrays), "mocap_framerate", "positive number")


@pytest.mark.parametrize("family_arrays", [smpl_arrays, smplh_arrays, smplx_arrays])
def test_zero_frames_is_refused(tmp_path: Path, family_arrays: Any) -> None:
    arrays = family_arrays(n=0)
    assert_refused(save(tmp_path / "m.npz", arrays), "0 frames")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("poses", np.zeros(156), ["'poses'", "shape"]),
        ("poses", np.zeros((N, 52, 3)), ["'poses'", "shape"]),
        ("poses", np.zeros((N, 156), dtype=bool), ["'poses'", "dtype"]),
        ("trans", np.zeros((N, 2)), ["'trans'", "(N, 3)"]),
        ("betas", np.zeros((N, 16)), ["'betas'", "(B,)"]),
        ("betas", np.zeros(0), ["'betas'", "empty"]),
        ("betas", np.array(["a", "b"]), ["'betas'", "dtype"]),
    ],
)
def test_wrong_shapes_and_dtypes_are_refused(
    tmp_path: Path, key: str, value: np.ndarray, words: list[str]
) -> None:
    assert_refused(save(tmp_path / "m.npz", smplh_arrays() | {key: value}), *words)


# --- files that are not motions ---------------------------------------------------------


def test_not_a_motion_is_a_format_error() -> None:
    assert issubclass(NotAMotionError, AmassFormatError)
    assert issubclass(AmassFormatError, ValueError)


def test_shape_npz_is_not_a_motion(tmp_path: Path) -> None:
    path = save(tmp_path / "shape.npz", {"betas": np.zeros(16), "gender": np.array("male")})
    with pytest.raises(NotAMotionError, match="shape"):
        load_sequence(path)


@pytest.mark.parametrize("gender", ["female", "male", "neutral"])
def test_stagei_file_is_not_a_motion(tmp_path: Path, gender: str) -> None:
    arrays = {
        "betas": np.zeros(16),
        "gender": np.array(gender),
        "markers_latent_vids": np.array([{"A": 1}]),
    }
    path = save(tmp_path / f"{gender}_stagei.npz", arrays)
    with pytest.raises(NotAMotionError) as info:
        load_sequence(path)
    assert str(path) in str(info.value)


WITHOUT_POSE_KEY = [
    {"betas": np.zeros(16), "gender": np.array("male")},
    without(smplh_arrays(), "poses"),
    {"trans": np.zeros((N, 3))},
]


@pytest.mark.parametrize("arrays", WITHOUT_POSE_KEY)
def test_npz_without_a_pose_key_is_not_a_motion(tmp_path: Path, arrays: dict[str, Any]) -> None:
    path = save(tmp_path / "calibration.npz", arrays)
    with pytest.raises(NotAMotionError) as info:
        load_sequence(path)
    message = str(info.value)
    assert str(path) in message
    assert "no pose key" in message


@pytest.mark.parametrize("name", ["walk_poses.npz", "walk_stageii.npz"])
@pytest.mark.parametrize("arrays", WITHOUT_POSE_KEY)
def test_motion_named_npz_without_a_pose_key_is_damaged_not_a_non_motion(
    tmp_path: Path, name: str, arrays: dict[str, Any]
) -> None:
    """A file named as a motion but without poses is a damaged motion: a reported skip, never
    passed over quietly as a non-motion."""
    error = assert_refused(save(tmp_path / name, arrays), "missing key 'poses'")
    assert not isinstance(error, NotAMotionError)


def _smplh_arrays(frames: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "poses": rng.normal(size=(frames, 156)),
        "trans": rng.normal(size=(frames, 3)),
        "betas": rng.normal(size=16),
        "gender": np.array("male"),
        "mocap_framerate": np.array(120.0),
    }


@pytest.mark.parametrize("compress", [False, True])
def test_stored_and_deflated_archives_read_the_same_values(tmp_path: Path, compress: bool) -> None:
    arrays = _smplh_arrays(600)  # poses is 750 kB: large enough to be memory-mapped when stored
    path = tmp_path / "a_poses.npz"
    write_npz(path, arrays, compress=compress)
    seq = load_sequence(path)
    np.testing.assert_array_equal(seq.pose_body, arrays["poses"][:, 3:66])
    np.testing.assert_array_equal(seq.pose_hand, arrays["poses"][:, 66:156])
    np.testing.assert_array_equal(seq.trans, arrays["trans"])


def test_a_stored_member_shorter_than_its_header_says_is_refused(tmp_path: Path) -> None:
    import zipfile

    arrays = _smplh_arrays(600)
    path = tmp_path / "short_poses.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value)
            data = buffer.getvalue()
            if key == "poses":
                data = data[: len(data) // 2]  # the header still promises 600 frames
            archive.writestr(f"{key}.npy", data)
    with pytest.raises(AmassFormatError, match=r"short_poses\.npz.*'poses'"):
        load_sequence(path)
