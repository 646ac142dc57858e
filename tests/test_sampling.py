"""Which frames Stage I keeps: trimming, the random keep-rate draw, the frame-rate clock, and
the per-file generator (vposer_data.sampling), as properties over many inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vposer_data.sampling import clock_frames, random_frames, sequence_rng, trim_bounds

PROPS = settings(max_examples=150, deadline=None)

frame_counts = st.integers(min_value=0, max_value=20_000)
trims = st.floats(min_value=0.0, max_value=0.49, allow_nan=False)
keep_rates = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
paths = st.text(min_size=1, max_size=40).map(lambda s: f"CMU/{s}_poses.npz")
#: Real AMASS rates are floats near these; the clock must follow each file's own rate.
frame_rates = st.sampled_from([59.99998, 60.0, 100.0, 119.99996, 120.0, 120.00004, 250.0]) | (
    st.floats(min_value=10.0, max_value=400.0, allow_nan=False)
)


@PROPS
@given(frame_counts, trims)
def test_trim_bounds_drop_the_same_floor_at_each_end(num_frames: int, trim: float) -> None:
    start, stop = trim_bounds(num_frames, trim)
    assert start == math.floor(trim * num_frames)
    assert num_frames - stop == start
    assert 0 <= start <= stop <= num_frames


@PROPS
@given(frame_counts, trims, keep_rates, seeds, paths)
def test_random_frames_sorted_unique_in_bounds_with_rounded_count(
    num_frames: int, trim: float, keep_rate: float, seed: int, path: str
) -> None:
    start, stop = trim_bounds(num_frames, trim)
    frames = random_frames(num_frames, trim, keep_rate, sequence_rng(seed, path))
    assert frames.dtype == np.int64
    assert frames.size == round(keep_rate * (stop - start))
    assert np.all(np.diff(frames) > 0)  # sorted and unique
    if frames.size:
        assert frames[0] >= start
        assert frames[-1] < stop


@PROPS
@given(frame_counts, trims, keep_rates, seeds, paths)
def test_random_frames_same_seed_and_path_same_frames(
    num_frames: int, trim: float, keep_rate: float, seed: int, path: str
) -> None:
    first = random_frames(num_frames, trim, keep_rate, sequence_rng(seed, path))
    np.random.default_rng(seed + 1).random(1000)  # unrelated draws in between change nothing
    np.random.seed(seed % 2**32)
    second = random_frames(num_frames, trim, keep_rate, sequence_rng(seed, path))
    assert np.array_equal(first, second)


def test_random_frames_differ_between_seeds() -> None:
    a = random_frames(5000, 0.1, 0.3, sequence_rng(0, "CMU/01/01_01_poses.npz"))
    b = random_frames(5000, 0.1, 0.3, sequence_rng(1, "CMU/01/01_01_poses.npz"))
    assert a.size == b.size == 1200
    assert not np.array_equal(a, b)


def test_random_frames_keep_rate_one_keeps_the_whole_trimmed_range() -> None:
    frames = random_frames(1000, 0.1, 1.0, sequence_rng(3, "x.npz"))
    assert np.array_equal(frames, np.arange(100, 900))


@PROPS
@given(
    st.integers(min_value=1, max_value=20_000),
    trims,
    frame_rates,
    st.floats(min_value=1.0, max_value=400.0, allow_nan=False),
)
def test_clock_frames_increasing_in_bounds_starting_at_start(
    num_frames: int, trim: float, fps: float, target_fps: float
) -> None:
    start, stop = trim_bounds(num_frames, trim)
    frames = clock_frames(num_frames, trim, fps, target_fps)
    assert frames.dtype == np.int64
    if stop <= start:
        assert frames.size == 0
        return
    assert frames[0] == start
    assert frames[-1] < stop
    assert np.all(np.diff(frames) > 0)


@PROPS
@given(st.integers(min_value=1, max_value=20_000), trims, frame_rates, st.data())
def test_clock_frames_are_the_nearest_frames_to_a_regular_clock(
    num_frames: int, trim: float, fps: float, data: st.DataObject
) -> None:
    target_fps = data.draw(st.floats(min_value=1.0, max_value=fps, allow_nan=False))
    start, stop = trim_bounds(num_frames, trim)
    frames = clock_frames(num_frames, trim, fps, target_fps)
    if stop <= start:
        return
    step = fps / target_fps  # source frames per clock tick, >= 1
    # spacing within one frame of the ideal step (never int(fps / target) throughout)
    assert np.all(np.abs(np.diff(frames) - step) < 1.0 + 1e-9)
    # each kept frame is the one nearest to its tick's timestamp
    ticks = start + np.arange(frames.size) * step
    assert np.all(np.abs(frames - ticks) <= 0.5 + 1e-6)
    # the clock runs to the end of the kept range: no whole tick is left out after the last
    assert (stop - 1) - frames[-1] < step + 0.5


@pytest.mark.parametrize(
    ("fps", "target", "step"),
    [(120.00004, 30.0, 4), (119.99996, 30.0, 4), (59.99998, 30.0, 2), (250.0, 50.0, 5)],
)
def test_clock_on_float_rates_gives_exact_steps_on_long_sequences(
    fps: float, target: float, step: int
) -> None:
    frames = clock_frames(100_000, 0.1, fps, target)
    assert frames[0] == 10_000
    assert set(np.diff(frames).tolist()) == {step}
    # the whole kept range [10000, 90000) is covered at the target rate
    assert frames[-1] > 90_000 - step - 1
    assert frames.size == pytest.approx(80_000 / fps * target, abs=1.5)


def test_clock_does_not_fall_into_the_integer_division_pitfall() -> None:
    # int(59.99998 / 30) == 1 would keep every frame (60 Hz instead of 30 Hz)
    assert int(59.99998 / 30) == 1
    frames = clock_frames(6000, 0.0, 59.99998, 30.0)
    assert frames.size == pytest.approx(3000, abs=1)
    assert np.all(np.diff(frames) == 2)


def test_clock_on_non_integer_ratio_alternates_to_keep_time() -> None:
    frames = clock_frames(10_000, 0.1, 100.0, 30.0)  # 3.33 source frames per tick
    assert set(np.diff(frames).tolist()) == {3, 4}
    seconds = (frames - frames[0]) / 100.0
    assert np.allclose(seconds, np.arange(frames.size) / 30.0, atol=0.5 / 100.0 + 1e-9)


@pytest.mark.parametrize("fps", [60.0, 59.99998, 100.0, 120.00004, 250.0])
def test_clock_keeps_the_same_timestamps_whatever_the_source_rate(fps: float) -> None:
    seconds = 40.0
    frames = clock_frames(int(seconds * fps), 0.0, fps, 30.0)
    assert frames.size == pytest.approx(seconds * 30, abs=1)
    assert np.allclose(frames / fps, np.arange(frames.size) / 30.0, atol=0.5 / fps + 1e-9)


def test_clock_faster_than_the_file_never_repeats_frames() -> None:
    frames = clock_frames(1000, 0.1, 30.0, 120.0)
    assert np.all(np.diff(frames) == 1)
    assert frames[0] == 100


@PROPS
@given(seeds, paths)
def test_sequence_rng_depends_on_seed_and_path_only(seed: int, path: str) -> None:
    first = sequence_rng(seed, path).integers(0, 2**62, size=8)
    np.random.seed(seed % 2**32)  # global state and other generators play no part
    sequence_rng(seed + 1, path + "x").random(100)
    second = sequence_rng(seed, path).integers(0, 2**62, size=8)
    assert np.array_equal(first, second)
    other_seed = sequence_rng(seed + 1, path).integers(0, 2**62, size=8)
    other_path = sequence_rng(seed, path + "x").integers(0, 2**62, size=8)
    assert not np.array_equal(first, other_seed)
    assert not np.array_equal(first, other_path)
