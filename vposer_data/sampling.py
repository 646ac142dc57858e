"""Which frames of a motion Stage I keeps: trim both ends, then a random fraction or a clock.

Frames are chosen by index arithmetic only, never by ``int(fps / target)`` steps: AMASS frame
rates are floats (59.99998, 120.00004), and a clock must follow each file's own rate.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["clock_frames", "random_frames", "sequence_rng", "trim_bounds"]


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


def clock_frames(num_frames: int, trim: float, fps: float, target_fps: float) -> np.ndarray:
    """The frames nearest to a regular clock at ``target_fps`` starting at the first frame kept
    by trimming, using the file's own ``fps``; strictly increasing (a clock faster than the
    file cannot repeat frames)."""
    start, stop = trim_bounds(num_frames, trim)
    if stop <= start:
        return np.empty(0, dtype=np.int64)
    duration = (stop - 1 - start) / fps
    ticks = int(np.floor(duration * target_fps + 1e-9)) + 1
    frames = start + np.rint(np.arange(ticks) * (fps / target_fps)).astype(np.int64)
    frames = np.minimum(frames, stop - 1)
    return np.unique(frames)


def sequence_rng(seed: int, rel_path: str) -> np.random.Generator:
    """A generator for one file, from the global seed and the file's relative path, so a
    file's draw does not depend on which other files exist or in which order they are read."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
