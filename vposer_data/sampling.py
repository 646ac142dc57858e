"""Which frames of a motion Stage I keeps: trim both ends, then a random fraction or a clock.

Frames are chosen by index arithmetic only, never by ``int(fps / target)`` steps: AMASS frame
rates are floats (59.99998, 120.00004), and a clock must follow each file's own rate.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

__all__ = [
    "check_rates",
    "clock_frames",
    "random_frames",
    "sequence_rng",
    "tick_count",
    "tick_frames",
    "trim_bounds",
]


def trim_bounds(num_frames: int, trim: float) -> tuple[int, int]:
    """``[start, stop)`` after dropping ``floor(trim * num_frames)`` frames at each end."""
    cut = int(np.floor(trim * num_frames))
    return cut, num_frames - cut


def random_frames(
    num_frames: int, trim: float, keep_rate: float, rng: np.random.Generator
) -> np.ndarray:
    """A sorted random ``keep_rate`` fraction (rounded) of the frames left after trimming."""
    start, stop = trim_bounds(num_frames, trim)
    count = round(keep_rate * (stop - start))
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    chosen = rng.choice(stop - start, size=count, replace=False)
    return np.sort(chosen).astype(np.int64) + start


def check_rates(fps: float, target_fps: float) -> None:
    """A ValueError unless both rates are positive finite numbers."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if not (math.isfinite(target_fps) and target_fps > 0):
        raise ValueError(f"target_fps must be a positive finite number, got {target_fps!r}")


def tick_count(num_frames: int, trim: float, fps: float, target_fps: float) -> int:
    """Number of ``target_fps`` clock ticks in the trimmed motion (0 if trimming leaves nothing):
    ``floor((stop - 1 - start) / fps * target_fps + 1e-9) + 1``, the last tick at or before the
    last kept frame's time (the ``1e-9`` absorbs rounding when it falls exactly on it)."""
    check_rates(fps, target_fps)
    start, stop = trim_bounds(num_frames, trim)
    if stop <= start:
        return 0
    duration = (stop - 1 - start) / fps
    return int(np.floor(duration * target_fps + 1e-9)) + 1


def tick_frames(num_frames: int, trim: float, fps: float, target_fps: float) -> np.ndarray:
    """The source frame of every clock tick, ``(tick_count,)`` int64: tick ``j`` is the frame
    nearest to ``j / target_fps`` seconds after the first kept frame, i.e.
    ``start + rint(j * fps / target_fps)``, within half a source frame of the tick's time.

    Not de-duplicated, so that every tick (every clip frame) keeps its place on the clock: when
    ``target_fps > fps`` neighbouring ticks may name the same source frame (a clip then holds
    repeated frames, as a sample-and-hold upsampling). When ``target_fps <= fps`` the frames are
    strictly increasing and equal :func:`clock_frames`.
    """
    ticks = tick_count(num_frames, trim, fps, target_fps)
    start, stop = trim_bounds(num_frames, trim)
    frames = start + np.rint(np.arange(ticks) * (fps / target_fps)).astype(np.int64)
    # A guard only: the last tick is at most 1e-9 ticks past the last frame's time.
    return np.minimum(frames, stop - 1)


def clock_frames(num_frames: int, trim: float, fps: float, target_fps: float) -> np.ndarray:
    """The frames nearest to a regular clock at ``target_fps`` starting at the first frame kept
    by trimming, using the file's own ``fps``: the clock's ticks (:func:`tick_frames`), each
    frame once (a clock faster than the file cannot repeat frames)."""
    return np.unique(tick_frames(num_frames, trim, fps, target_fps))


def sequence_rng(seed: int, rel_path: str) -> np.random.Generator:
    """A generator for one file, from the global seed and the file's relative path, so a
    file's draw does not depend on which other files exist or in which order they are read."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
