"""Temporal clips (vposer_data.clips): the clock and clip windows, canonical clips and their
inverse, rotation of whole clips about the vertical, and velocities, as properties over many
inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from helpers import exact_tick_count
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vposer_data.clips import (
    VERTICAL_THRESHOLD,
    canonical_yaw,
    canonicalize,
    clip_count,
    clip_frames,
    root_angular_velocity,
    rotate_clips_about_z,
    tick_count,
    tick_frames,
    trans_velocity,
    uncanonicalize,
)
from vposer_data.rotations import aa_to_matrot, matrot_to_aa, rotz
from vposer_data.sampling import clock_frames, trim_bounds

PROPS = settings(max_examples=60, deadline=None)

#: Rates met in AMASS (floats, not exact integers) and arbitrary ones.
REAL_RATES = [59.94, 59.9999885, 120.00004, 250.0]
frame_rates = st.sampled_from([*REAL_RATES, 60.0, 100.0, 120.0]) | st.floats(10.0, 400.0)
target_rates = st.sampled_from([12.5, 20.0, 30.0, 60.0]) | st.floats(1.0, 400.0)
frame_counts = st.integers(min_value=0, max_value=20_000)
trims = st.floats(min_value=0.0, max_value=0.49)
clip_lengths = st.integers(min_value=1, max_value=64)
strides = st.integers(min_value=1, max_value=64)
#: |tick time - frame time| may exceed half a source frame by float64 rounding only.
TIME_EPS = 1e-9


def expected_ticks(num_frames: int, trim: float, fps: float, target_fps: float) -> int:
    """The clock's tick count, in exact arithmetic (helpers.exact_tick_count)."""
    return exact_tick_count(*trim_bounds(num_frames, trim), fps, target_fps)


def assert_on_clock(
    frames: np.ndarray, ticks: np.ndarray, start: int, fps: float, target: float
) -> None:
    """Each frame is within half a source frame of its tick's time."""
    error = np.abs(frames / fps - (start / fps + ticks / target))
    assert np.all(error <= 0.5 / fps + TIME_EPS), error.max() * fps


# --------------------------------------------------------------------------- the clock


@PROPS
@given(frame_counts, trims, frame_rates, target_rates)
def test_tick_frames_follow_the_clock_formula_within_half_a_frame(
    num_frames: int, trim: float, fps: float, target: float
) -> None:
    start, stop = trim_bounds(num_frames, trim)
    frames = tick_frames(num_frames, trim, fps, target)
    assert frames.dtype == np.int64
    assert frames.size == tick_count(num_frames, trim, fps, target)
    assert frames.size == expected_ticks(num_frames, trim, fps, target)
    if frames.size == 0:
        return
    assert frames[0] == start
    assert np.all((frames >= start) & (frames < stop))
    assert np.all(np.diff(frames) >= 0)
    assert_on_clock(frames, np.arange(frames.size), start, fps, target)
    # no whole tick is left out after the last one
    assert (frames.size / target) > (stop - 1 - start) / fps - 1e-9


@PROPS
@given(st.integers(1, 20_000), trims, frame_rates, st.data())
def test_tick_frames_equal_clock_frames_and_increase_when_not_faster_than_the_file(
    num_frames: int, trim: float, fps: float, data: st.DataObject
) -> None:
    target = data.draw(st.floats(min_value=1.0, max_value=fps), label="target_fps")
    frames = clock_frames(num_frames, trim, fps, target)  # frame-rate sampling's clock
    start, _ = trim_bounds(num_frames, trim)
    assert frames.size == expected_ticks(num_frames, trim, fps, target)
    assert np.all(np.diff(frames) > 0)
    assert_on_clock(frames, np.arange(frames.size), start, fps, target)
    # clips follow the very same clock
    assert np.array_equal(tick_frames(num_frames, trim, fps, target), frames)


@pytest.mark.parametrize(
    ("fps", "ticks"),
    # frames [300, 2700): the last kept frame is 2399 / fps s after the first, and a 120 Hz
    # clock ticks floor(2399 * 120 / fps) + 1 times: 2399 * 4 = 9596 at 30 Hz;
    # 2399 * 2.002002... = 4802.80 at 59.94 Hz; 2399 * 2.00000038 = 4798.0009 at 59.9999885 Hz
    [(30.0, 9597), (59.94, 4803), (59.9999885, 4799)],
)
def test_tick_frames_repeat_source_frames_when_faster_than_the_file(fps: float, ticks: int) -> None:
    frames = tick_frames(3000, 0.1, fps, 120.0)
    steps = np.diff(frames)
    assert set(steps.tolist()) <= {0, 1}
    assert (steps == 0).sum() > 0  # repeated, not de-duplicated: every tick keeps its time
    assert frames.size == ticks
    assert frames[0] == 300 and frames[-1] == 2699
    assert_on_clock(frames, np.arange(frames.size), 300, fps, 120.0)


def test_twelve_and_a_half_hertz_from_120_hertz_is_twelve_and_a_half_hertz() -> None:
    """Worked by hand: a tick every 120 / 12.5 = 9.6 frames, so ticks fall on frames 0, 9.6,
    19.2, 28.8, 38.4, 48, ... and the nearest frames are 0, 10, 19, 29, 38, 48, ...: steps of
    10, 9, 10, 9, 10, repeating every 5 ticks (48 frames). Stepping by int(9.6) = 9 frames
    instead would make a 13.3 Hz clock, 134 ticks over these 10 s."""
    frames = tick_frames(1201, 0.0, 120.0, 12.5)  # exactly 10 s
    assert frames.size == 126
    first_period = [0, 10, 19, 29, 38]
    expected = [f + 48 * period for period in range(26) for f in first_period][:126]
    assert frames.tolist() == expected
    assert frames[-1] == 1200


@pytest.mark.parametrize(
    ("fps", "target", "step", "ticks"),
    # frames [6000, 54000), the last kept 47999 frames after the first; worked by hand:
    # 59.9999885 -> 30: 1.99999962 frames a tick, 47999 / 1.99999962 = 23999.50: 24000 ticks,
    #   tick j at frame 2j - 3.8e-7 j (at most 0.0092 off 2j): steps of 2, never 1 as
    #   int(59.9999885 / 30) = 1 would step;
    # 59.94 -> 29.97: exactly 2 frames a tick (both rates are one float scaled by 2): 24000;
    # 120.00004 -> 30: 4.0000013 frames a tick, 11999.75 - 0.004: 12000 ticks, at most
    #   0.016 off 4j;  250 -> 50: 5 frames a tick, 47999 / 5 = 9599.8: 9600 ticks
    [
        (59.9999885, 30.0, 2, 24000),
        (59.94, 29.97, 2, 24000),
        (120.00004, 30.0, 4, 12000),
        (250.0, 50.0, 5, 9600),
    ],
)
def test_float_rates_step_by_the_true_ratio_not_by_int_division(
    fps: float, target: float, step: int, ticks: int
) -> None:
    frames = tick_frames(60_000, 0.1, fps, target)
    assert frames.size == ticks
    assert np.array_equal(frames, 6000 + step * np.arange(ticks))


@pytest.mark.parametrize("clock", [tick_frames, clock_frames])
def test_a_tick_on_the_last_frame_is_kept_when_rounding_puts_it_a_hair_before(
    clock: Any,
) -> None:
    """59.94 Hz is exactly twice 29.97 Hz (one float scaled by 2): over frames 0..122 the
    29.97 Hz clock ticks every 2 frames, 62 times, the last on frame 122. In float64,
    122 / 59.94 * 29.97 = 60.99999999999999: the clock's rounding allowance keeps tick 61."""
    assert 122 / 59.94 * 29.97 < 61
    frames = clock(123, 0.0, 59.94, 29.97)
    assert frames.tolist() == list(range(0, 123, 2))


# --------------------------------------------------------------------------- clips


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), clip_lengths, strides)
def test_clip_count_formula(ticks: int, T: int, stride: int) -> None:
    n = clip_count(ticks, T, stride)
    if ticks < T:
        assert n == 0
        return
    assert n == math.floor((ticks - T) / stride) + 1
    last_end = (n - 1) * stride + T  # the last clip fits; one more would not
    assert last_end <= ticks < last_end + stride


@PROPS
@given(frame_counts, trims, frame_rates, target_rates, clip_lengths, strides)
def test_clip_frames_are_strided_windows_of_ticks_on_the_clock(
    num_frames: int, trim: float, fps: float, target: float, T: int, stride: int
) -> None:
    start, _ = trim_bounds(num_frames, trim)
    ticks = tick_frames(num_frames, trim, fps, target)
    clips = clip_frames(num_frames, trim, fps, target, T, stride)
    n = clip_count(ticks.size, T, stride)
    assert clips.dtype == np.int64
    assert clips.shape == (n, T)
    tick_index = np.arange(n)[:, None] * stride + np.arange(T)[None, :]
    assert np.array_equal(clips, ticks[tick_index].reshape(n, T))
    assert_on_clock(clips, tick_index, start, fps, target)


@pytest.mark.parametrize("fps", REAL_RATES)
@pytest.mark.parametrize(("target", "T", "stride"), [(30.0, 16, 8), (12.5, 5, 5), (20.0, 64, 1)])
def test_clip_frames_at_real_rates(fps: float, target: float, T: int, stride: int) -> None:
    num_frames, trim = 7919, 0.1
    start, _ = trim_bounds(num_frames, trim)
    clips = clip_frames(num_frames, trim, fps, target, T, stride)
    ticks = expected_ticks(num_frames, trim, fps, target)
    assert clips.shape == ((ticks - T) // stride + 1, T)
    tick_index = np.arange(clips.shape[0])[:, None] * stride + np.arange(T)[None, :]
    assert_on_clock(clips, tick_index, start, fps, target)
    assert np.all(np.diff(clips, axis=1) > 0)
    assert np.all(np.diff(clips[:, 0]) > 0)


def test_a_motion_too_short_for_one_clip_has_none() -> None:
    # 1 s at 120 Hz, trimmed to frames [12, 108): 95 / 120 s span 23.75 ticks at 30 Hz: 24
    assert tick_count(120, 0.1, 120.0, 30.0) == 24
    assert clip_frames(120, 0.1, 120.0, 30.0, 25, 1).shape == (0, 25)
    assert clip_frames(120, 0.1, 120.0, 30.0, 24, 7).shape == (1, 24)
    assert clip_frames(0, 0.1, 120.0, 30.0, 1, 1).shape == (0, 1)


@pytest.mark.parametrize(
    "args",
    [
        (100, 0.1, 0.0, 30.0, 4, 1),
        (100, 0.1, 60.0, -1.0, 4, 1),
        (100, 0.1, 60.0, math.nan, 4, 1),
        (100, 0.1, 60.0, 30.0, 0, 1),
        (100, 0.1, 60.0, 30.0, 4, 0),
        (100, 0.1, 60.0, 30.0, 2.5, 1),
    ],
)
def test_clip_frames_rejects_bad_rates_lengths_and_strides(args: tuple) -> None:
    with pytest.raises(ValueError):
        clip_frames(*args)


# --------------------------------------------------------------------------- rotation inputs


@st.composite
def rotvecs(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    """Rotation vectors ``shape + (3,)`` with angles in [0, pi - 1e-3], some exactly zero."""
    axes = draw(hnp.arrays(np.float64, (*shape, 3), elements=st.floats(-1, 1)))
    norms = np.linalg.norm(axes, axis=-1, keepdims=True)
    axes = np.where(norms < 1e-6, np.array([0.0, 0.0, 1.0]), axes / np.maximum(norms, 1e-6))
    angles = draw(hnp.arrays(np.float64, (*shape, 1), elements=st.floats(0, math.pi - 1e-3)))
    return axes * angles


@st.composite
def clips(draw: st.DrawFn, min_t: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(root_orient, trans), each ``(N, T, 3)`` float64."""
    n = draw(st.integers(1, 3))
    t = draw(st.integers(min_t, 6))
    root = draw(rotvecs((n, t)))
    trans = draw(hnp.arrays(np.float64, (n, t, 3), elements=st.floats(-10, 10)))
    return torch.from_numpy(root), torch.from_numpy(trans)


angles = st.floats(-4 * math.pi, 4 * math.pi)
shifts = st.floats(-20, 20)


def mat(aa: torch.Tensor) -> torch.Tensor:
    return aa_to_matrot(aa.to(torch.float64))


def move(
    root: torch.Tensor, trans: torch.Tensor, angle: float, dx: float, dy: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every clip rotated by ``angle`` about the world z axis and shifted by (dx, dy, 0)."""
    Rz = rotz(torch.tensor(angle, dtype=torch.float64))
    moved_root = matrot_to_aa(Rz @ mat(root))
    moved_trans = trans @ Rz.T + torch.tensor([dx, dy, 0.0], dtype=torch.float64)
    return moved_root, moved_trans


def heading_axes(root0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(forward_xy, left_xy, fallback mask) of first-frame orientations ``(N, 3)``."""
    R = mat(root0)
    forward, left = R[:, :2, 2], R[:, :2, 0]
    return forward, left, torch.linalg.vector_norm(forward, dim=-1) < VERTICAL_THRESHOLD


def assert_faces_plus_y(root0: torch.Tensor, atol: float = 1e-9) -> None:
    """The heading rule: forward axis projects on +y, or (lying flat) the left axis on -x."""
    forward, left, flat = heading_axes(root0)
    for i in range(root0.shape[0]):
        if flat[i]:
            assert abs(left[i, 1]) <= atol and left[i, 0] < 0
        else:
            assert abs(forward[i, 0]) <= atol and forward[i, 1] > 0


# --------------------------------------------------------------------------- canonical clips


@PROPS
@given(clips())
def test_canonical_first_frame_faces_plus_y_at_the_horizontal_origin(
    clip: tuple[torch.Tensor, torch.Tensor],
) -> None:
    root, trans = clip
    root_c, trans_c, yaw, offset = canonicalize(root, trans)
    assert root_c.shape == trans_c.shape == root.shape
    assert yaw.shape == (root.shape[0],) and offset.shape == (root.shape[0], 3)
    assert_faces_plus_y(root_c[:, 0])
    torch.testing.assert_close(trans_c[:, 0, :2], torch.zeros_like(trans_c[:, 0, :2]))
    # the stated formulas, frame by frame; z is kept
    Rz = rotz(yaw)[:, None]
    torch.testing.assert_close(mat(root_c), Rz @ mat(root), atol=1e-9, rtol=0)
    expected = (Rz @ (trans - offset[:, None]).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(trans_c, expected, atol=1e-9, rtol=0)
    torch.testing.assert_close(trans_c[..., 2], trans[..., 2], atol=0, rtol=0)
    assert torch.all(offset[:, 2] == 0) and torch.equal(offset[:, :2], trans[:, 0, :2])
    assert torch.all(yaw.abs() <= math.pi)


@PROPS
@given(clips(), angles, shifts, shifts)
def test_a_motion_turned_and_shifted_horizontally_gives_the_same_canonical_clips(
    clip: tuple[torch.Tensor, torch.Tensor], angle: float, dx: float, dy: float
) -> None:
    root, trans = clip
    root_a, trans_a, _, _ = canonicalize(root, trans)
    root_b, trans_b, _, _ = canonicalize(*move(root, trans, angle, dx, dy))
    torch.testing.assert_close(mat(root_b), mat(root_a), atol=1e-9, rtol=0)
    torch.testing.assert_close(trans_b, trans_a, atol=1e-9, rtol=0)


@PROPS
@given(clips())
def test_uncanonicalize_restores_the_source(clip: tuple[torch.Tensor, torch.Tensor]) -> None:
    root, trans = clip
    back_root, back_trans = uncanonicalize(*canonicalize(root, trans))
    torch.testing.assert_close(back_root, root, atol=1e-9, rtol=0)  # source angles < pi
    torch.testing.assert_close(back_trans, trans, atol=1e-9, rtol=0)


@PROPS
@given(clips())
def test_float32_clips_stay_float32_and_restore_to_float32_tolerance(
    clip: tuple[torch.Tensor, torch.Tensor],
) -> None:
    root, trans = clip[0].float(), clip[1].float()
    root_c, trans_c, yaw, offset = canonicalize(root, trans)
    assert {root_c.dtype, trans_c.dtype, yaw.dtype, offset.dtype} == {torch.float32}
    back_root, back_trans = uncanonicalize(root_c, trans_c, yaw, offset)
    assert back_root.dtype == back_trans.dtype == torch.float32
    torch.testing.assert_close(mat(back_root), mat(root), atol=1e-5, rtol=0)
    torch.testing.assert_close(back_trans, trans, atol=1e-5, rtol=0)


def lying(face_up: bool, heading: float, tilt: float = 0.0, spin: float = 0.0) -> torch.Tensor:
    """Root orientation ``(3,)`` of a body that stood facing ``heading`` (radians from +x) and
    was pitched onto its back or front (about its left axis), ``tilt`` radians further, then
    spun by ``spin`` about its own forward axis."""
    upright = rotz(torch.tensor(heading + math.pi / 2, dtype=torch.float64)) @ aa_to_matrot(
        torch.tensor([math.pi / 2, 0.0, 0.0], dtype=torch.float64)
    )  # SMPL is y-up: Rx(pi/2) stands the body up in the z-up world, facing -y
    pitch = (-1.0 if face_up else 1.0) * (math.pi / 2 + tilt)
    body = aa_to_matrot(torch.tensor([pitch, 0.0, 0.0], dtype=torch.float64))
    spun = aa_to_matrot(torch.tensor([0.0, 0.0, spin], dtype=torch.float64))
    return matrot_to_aa(upright @ body @ spun)


def test_identity_root_lies_face_up_and_uses_the_lateral_axis() -> None:
    root = torch.zeros(1, 3, 3)  # model +z (forward) is the world's +z: face up, head along +y
    trans = torch.tensor([[[1.0, 2.0, 0.1], [1.5, 2.0, 0.1], [2.0, 2.5, 0.2]]])
    root_c, trans_c, yaw, _ = canonicalize(root, trans)
    assert math.cos(yaw.item()) == pytest.approx(-1.0)  # left (+x) must turn to -x
    assert_faces_plus_y(root_c[:, 0].double(), atol=1e-6)
    torch.testing.assert_close(trans_c[0, :, :2], torch.tensor([[0.0, 0], [-0.5, 0], [-1, -0.5]]))


@pytest.mark.parametrize("face_up", [True, False])
@pytest.mark.parametrize("heading", [0.0, 0.7, -2.0, math.pi])
@pytest.mark.parametrize("tilt", [0.0, 1e-7, 0.03, -0.03])
@pytest.mark.parametrize("spin", [0.0, 0.05, -1.0])
def test_a_body_lying_flat_is_canonicalized_by_its_lateral_axis(
    face_up: bool, heading: float, tilt: float, spin: float
) -> None:
    root0 = lying(face_up, heading, tilt, spin)
    R = mat(root0)
    assert torch.linalg.vector_norm(R[:2, 2]) < VERTICAL_THRESHOLD  # the fallback case
    root = torch.stack([root0, torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)])[None]
    trans = torch.tensor([[[3.0, -4.0, 0.2], [3.5, -4.0, 0.25]]], dtype=torch.float64)
    root_c, trans_c, yaw, offset = canonicalize(root, trans)
    assert torch.isfinite(root_c).all() and torch.isfinite(trans_c).all()
    assert torch.isfinite(yaw).all()
    assert_faces_plus_y(root_c[:, 0])
    assert trans_c[0, 0, :2].abs().max() <= 1e-12
    if spin == 0.0:  # pitched straight from standing: the upright heading is kept
        turned = math.pi / 2 - heading
        assert math.cos(yaw.item() - turned) == pytest.approx(1.0)
    back_root, back_trans = uncanonicalize(root_c, trans_c, yaw, offset)
    torch.testing.assert_close(mat(back_root), mat(root), atol=1e-12, rtol=0)
    torch.testing.assert_close(back_trans, trans, atol=1e-12, rtol=0)
    # still invariant to turning and shifting the motion
    again, again_trans, _, _ = canonicalize(*move(root, trans, 1.234, -7.0, 2.0))
    torch.testing.assert_close(mat(again), mat(root_c), atol=1e-9, rtol=0)
    torch.testing.assert_close(again_trans, trans_c, atol=1e-9, rtol=0)


@pytest.mark.parametrize("face_up", [True, False])
def test_pitching_from_standing_to_lying_keeps_the_heading(face_up: bool) -> None:
    # from upright to flat and on to just short of the threshold past flat (forward within
    # ~5.7 degrees of vertical), the heading does not jump where the fallback takes over
    tilts = torch.linspace(-math.pi / 2 + 1e-3, 0.09, 301, dtype=torch.float64)
    roots = torch.stack([lying(face_up, 0.9, float(t)) for t in tilts])
    forward_xy = torch.linalg.vector_norm(mat(roots)[:, :2, 2], dim=-1)
    assert (forward_xy < VERTICAL_THRESHOLD).any() and (forward_xy >= VERTICAL_THRESHOLD).any()
    yaw = canonical_yaw(roots)
    torch.testing.assert_close(yaw, torch.full_like(yaw, math.pi / 2 - 0.9), atol=1e-9, rtol=0)


# --------------------------------------------------------------------------- rigid helpers


@PROPS
@given(clips(), st.lists(angles, min_size=3, max_size=3))
def test_rotate_clips_about_z_turns_every_frame_about_the_first_frame_position(
    clip: tuple[torch.Tensor, torch.Tensor], angle_list: list[float]
) -> None:
    root, trans = clip
    angle = torch.tensor(angle_list[: root.shape[0]], dtype=torch.float64)
    root_r, trans_r = rotate_clips_about_z(root, trans, angle)
    Rz = rotz(angle)[:, None]
    torch.testing.assert_close(mat(root_r), Rz @ mat(root), atol=1e-9, rtol=0)
    torch.testing.assert_close(trans_r[:, 0], trans[:, 0], atol=1e-9, rtol=0)
    relative = (Rz @ (trans - trans[:, :1]).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(trans_r - trans_r[:, :1], relative, atol=1e-9, rtol=0)
    # a rigid turn about the vertical changes nothing once canonical
    a_root, a_trans, _, _ = canonicalize(root, trans)
    b_root, b_trans, _, _ = canonicalize(root_r, trans_r)
    torch.testing.assert_close(mat(b_root), mat(a_root), atol=1e-9, rtol=0)
    torch.testing.assert_close(b_trans, a_trans, atol=1e-9, rtol=0)


def test_rotate_clips_about_z_keeps_float32() -> None:
    root, trans = torch.rand(2, 4, 3), torch.rand(2, 4, 3)
    root_r, trans_r = rotate_clips_about_z(root, trans, torch.tensor([0.0, 1.0]))
    assert root_r.dtype == trans_r.dtype == torch.float32
    torch.testing.assert_close(root_r[0], root[0])
    torch.testing.assert_close(trans_r[0], trans[0])


fps_values = st.sampled_from([12.5, 30.0, 59.94, 120.00004]) | st.floats(5.0, 300.0)
vectors = hnp.arrays(np.float64, 3, elements=st.floats(-5, 5))


@PROPS
@given(st.integers(2, 8), fps_values, vectors, vectors, st.floats(-3, 3))
def test_trans_velocity_is_exact_for_constant_velocity(
    T: int, fps: float, start: np.ndarray, velocity: np.ndarray, accel: float
) -> None:
    time = torch.arange(T, dtype=torch.float64)[:, None] / fps
    v = torch.from_numpy(velocity)
    trans = (torch.from_numpy(start) + time * v)[None]
    torch.testing.assert_close(trans_velocity(trans, fps)[0], v.expand(T, 3), atol=1e-9, rtol=0)
    # central differences are exact for constant acceleration inside the clip
    a = torch.tensor([0.0, 0.0, accel], dtype=torch.float64)
    falling = trans + (0.5 * time**2 * a)[None]
    inside = trans_velocity(falling, fps)[0, 1:-1]
    torch.testing.assert_close(inside, v + time[1:-1] * a, atol=1e-9, rtol=0)


@PROPS
@given(st.integers(2, 8), fps_values, st.data())
def test_root_angular_velocity_is_exact_for_a_constant_spin(
    T: int, fps: float, data: st.DataObject
) -> None:
    axis = data.draw(rotvecs(()), label="axis")
    norm = np.linalg.norm(axis)
    axis = np.array([0.0, 0.0, 1.0]) if norm < 1e-3 else axis / norm
    # the rotation over two ticks stays below pi (and below 2.5 rad to keep the log well away)
    speed = data.draw(st.floats(0.0, 1.25 * fps), label="speed")
    omega = torch.from_numpy(axis * speed)
    R0 = mat(torch.from_numpy(data.draw(rotvecs(()), label="R0")))
    time = torch.arange(T, dtype=torch.float64)[:, None] / fps
    root = matrot_to_aa(aa_to_matrot(time * omega) @ R0)[None]
    got = root_angular_velocity(root, fps)[0]
    torch.testing.assert_close(got, omega.expand(T, 3), atol=1e-9 * max(1.0, speed), rtol=0)


def test_velocities_of_two_frame_clips_and_dtypes() -> None:
    root = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.1]]])  # 0.1 rad about z in one tick
    trans = torch.tensor([[[0.0, 0.0, 1.0], [0.1, 0.0, 1.0]]])
    w = root_angular_velocity(root, 30.0)
    v = trans_velocity(trans, 30.0)
    assert w.dtype == v.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([[[0.0, 0.0, 3.0]] * 2]))
    torch.testing.assert_close(v, torch.tensor([[[3.0, 0.0, 0.0]] * 2]))


def test_velocities_reject_one_frame_clips_and_bad_rates() -> None:
    one = torch.zeros(2, 1, 3)
    with pytest.raises(ValueError):
        trans_velocity(one, 30.0)
    with pytest.raises(ValueError):
        root_angular_velocity(one, 30.0)
    with pytest.raises(ValueError):
        trans_velocity(torch.zeros(2, 3, 3), 0.0)


def test_canonicalize_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        canonicalize(torch.zeros(2, 3, 3), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError):
        canonicalize(torch.zeros(2, 3), torch.zeros(2, 3))  # frames, not clips
    with pytest.raises(ValueError):
        uncanonicalize(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError):
        rotate_clips_about_z(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), torch.zeros(3))
