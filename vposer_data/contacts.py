"""The floor height and foot contacts of a motion, from its posed joints, in SI units.

The rule (HuMoR's, with its 120 Hz thresholds restated in m/s and m so that they mean the same
at every frame rate), on the joints of a motion at its own rate, z up:

- speed ``s_t = |p_{t+1} - p_t| · fps`` (m/s) per joint; the last frame repeats the one before;
- static toe heights: the z of the toes (SMPL joints 10 and 11) at the frames where that toe's
  speed is below 0.6 m/s, left toe's frames in order, then the right toe's (the order cannot
  change the groups: with min_samples 3 no border point is within eps of two clusters, since
  it would then have 3 points within eps and be a core point);
- they are grouped as scikit-learn's ``DBSCAN(eps=0.005, min_samples=3)`` groups them (labels
  >= 0; when no cluster forms, all static heights are one group); ``m`` is the lowest group
  median; with no static height, ``m`` is the lowest toe height + 0.01;
- ``floor_z = m - 0.01`` (the toe joint sits about 1 cm inside the foot);
- contact: speed below 0.6 m/s and height above ``m`` below 0.08 m (ankles) or 0.04 m (toes).

Columns: ``left_ankle``, ``left_foot``, ``right_ankle``, ``right_foot`` (SMPL joints 7, 10, 8,
11). DBSCAN in one dimension is written out here (sorting makes it simple), so scikit-learn is
not a dependency; the tests compare it with scikit-learn's. The floor needs only the lowest
group, which the sorted values give without labelling every point; :func:`dbscan_1d` gives
every label.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from vposer_data.skeleton import CONTACT_COLUMNS, CONTACT_JOINTS

__all__ = [
    "ANKLE_HEIGHT",
    "CONTACT_COLUMNS",
    "CONTACT_JOINTS",
    "DBSCAN_EPS",
    "DBSCAN_MIN_SAMPLES",
    "SPEED_THRESHOLD",
    "TOE_HEIGHT",
    "TOE_JOINTS",
    "TOE_OFFSET",
    "dbscan_1d",
    "feet_contacts",
    "feet_contacts_of_motions",
    "floor_height",
    "foot_contacts",
    "joint_speeds",
    "mirror_contacts",
]

TOE_JOINTS = (10, 11)
SPEED_THRESHOLD = 0.6  # m/s
ANKLE_HEIGHT = 0.08  # m above m (the static toe height)
TOE_HEIGHT = 0.04  # m above m
TOE_OFFSET = 0.01  # m: floor_z = m - TOE_OFFSET
DBSCAN_EPS = 0.005  # m
DBSCAN_MIN_SAMPLES = 3
_HEIGHT_BY_COLUMN = (ANKLE_HEIGHT, TOE_HEIGHT, ANKLE_HEIGHT, TOE_HEIGHT)
_HEIGHTS = np.array(_HEIGHT_BY_COLUMN)[:, None]
#: Column order after mirroring: left and right swap.
_MIRRORED_COLUMNS = (2, 3, 0, 1)


def joint_speeds(positions: np.ndarray, fps: float) -> np.ndarray:
    """Speeds ``(T, K)`` in m/s of positions ``(T, K, 3)``: ``|p_{t+1} - p_t| · fps``, the last
    frame repeating the one before (a single frame has speed 0)."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[2] != 3:
        raise ValueError(f"positions must have shape (T, K, 3), got {positions.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    columns = np.ascontiguousarray(positions.transpose(1, 2, 0))
    frames = np.array([0, positions.shape[0]])
    return np.ascontiguousarray(_speeds(columns, frames, np.array([float(fps)])).T)


def _speeds(columns: np.ndarray, bounds: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Speeds ``(K, F)`` of positions given component-major, ``(K, 3, F)``, of motions one
    after another (motion ``i`` at frames ``bounds[i] : bounds[i + 1]``, at ``rates[i]``):
    ``|p_{t+1} - p_t|`` (summed x, y, z in that order, as ``np.linalg.norm`` sums them)
    times the rate, each motion's last frame repeating the one before, a single frame 0."""
    lengths = np.diff(bounds)
    frames = columns.shape[2]
    speeds = np.zeros((columns.shape[0], frames))
    if frames >= 2:  # a step across two motions is replaced below
        steps = columns[..., 1:] - columns[..., :-1]
        np.multiply(steps, steps, out=steps)
        squared = steps[:, 0] + steps[:, 1]
        squared += steps[:, 2]
        np.sqrt(squared, out=squared)
        np.multiply(squared, np.repeat(rates, lengths)[:-1], out=speeds[:, :-1])
    last = bounds[1:] - 1
    longer = lengths >= 2
    speeds[:, last[longer]] = speeds[:, last[longer] - 1]
    speeds[:, last[~longer]] = 0.0
    return speeds


def dbscan_1d(values: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Labels of 1-D points as ``sklearn.cluster.DBSCAN(eps, min_samples)`` gives them.

    A point is core when at least ``min_samples`` points (itself included) lie within ``eps``
    (``|x - y| <= eps``). Core points within eps of each other share a cluster; a non-core point
    within eps of a core point is a border point of that cluster, else noise (-1). In 1-D a
    border point can touch two clusters, one each side; scikit-learn gives it to the cluster it
    numbers first, and numbers clusters in the order of their first core point in the input.
    Both are reproduced, so the labels are the same numbers, not only the same grouping.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    count = values.size
    labels = np.full(count, -1, dtype=np.int64)
    if count == 0:
        return labels
    if not np.isfinite(values).all():
        raise ValueError("dbscan_1d: values must be finite")
    distinct, first_index, inverse, multiplicity = np.unique(
        values, return_index=True, return_inverse=True, return_counts=True
    )
    k = distinct.size
    lo, hi, _, core = _core_values(distinct, multiplicity, eps, min_samples)
    if not core.any():
        return labels
    # clusters: runs of core values whose neighbours (within eps) are core values
    core_index = np.flatnonzero(core)
    gaps = distinct[core_index[1:]] - distinct[core_index[:-1]] > eps
    run = np.concatenate([[0], np.cumsum(gaps)])  # cluster of each core value, by position
    clusters = int(run[-1]) + 1
    # scikit-learn numbers clusters by their earliest core point in the input
    earliest = np.full(clusters, count, dtype=np.int64)
    np.minimum.at(earliest, run, first_index[core_index])
    number = np.empty(clusters, dtype=np.int64)
    number[np.argsort(earliest, kind="stable")] = np.arange(clusters)
    label_of_distinct = np.full(k, -1, dtype=np.int64)
    label_of_distinct[core_index] = number[run]
    # border values: the nearest core value on each side, if within eps
    border = np.flatnonzero(~core)
    if border.size:
        position = np.searchsorted(core_index, border)  # core values left of each border value
        left = core_index[np.maximum(position - 1, 0)]
        right = core_index[np.minimum(position, core_index.size - 1)]
        has_left = (position > 0) & (left >= lo[border])
        has_right = (position < core_index.size) & (right <= hi[border])
        left_label = np.where(has_left, label_of_distinct[left], clusters)
        right_label = np.where(has_right, label_of_distinct[right], clusters)
        chosen = np.minimum(left_label, right_label)  # the cluster numbered first
        label_of_distinct[border] = np.where(chosen < clusters, chosen, -1)
    labels[:] = label_of_distinct[inverse.reshape(-1)]
    return labels


def _core_values(
    distinct: np.ndarray, multiplicity: np.ndarray, eps: float, min_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For sorted distinct values and how often each occurs: the first and last index within
    eps of each (inclusive), the running counts (from 0), and which values are core (at least
    ``min_samples`` points within eps, itself included)."""
    lo, hi = _neighbour_ranges(distinct, eps)
    cumulative = np.concatenate([[0], np.cumsum(multiplicity)])
    return lo, hi, cumulative, cumulative[hi + 1] - cumulative[lo] >= min_samples


def _neighbour_ranges(distinct: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """For sorted distinct values, the first and last index within ``eps`` of each, judged by
    the rounded difference ``|x - y| <= eps`` (as a distance is), not by ``x - eps``."""
    index = np.arange(distinct.size)
    lo = np.searchsorted(distinct, distinct - eps, side="left")
    hi = np.searchsorted(distinct, distinct + eps, side="right") - 1
    # x - eps is itself rounded: step each bound until the difference test holds exactly.
    # The difference is monotone in the other value, so the steps end within an ulp or two.
    while True:
        grow = (lo > 0) & (distinct - distinct[np.maximum(lo - 1, 0)] <= eps)
        shrink = (lo < index) & (distinct - distinct[lo] > eps)
        if not (grow.any() or shrink.any()):
            break
        lo = lo - grow + shrink
    last = distinct.size - 1
    while True:
        grow = (hi < last) & (distinct[np.minimum(hi + 1, last)] - distinct <= eps)
        shrink = (hi > index) & (distinct[hi] - distinct > eps)
        if not (grow.any() or shrink.any()):
            break
        hi = hi + grow - shrink
    return lo, hi


def floor_height(toe_z: np.ndarray, toe_speed: np.ndarray) -> float:
    """``m``, the static toe height, from the toes' heights and speeds ``(T, 2)`` (left, right).

    The lowest median of the DBSCAN groups of the static toe heights (left toe's frames, then
    the right toe's); all static heights are one group when no cluster forms; without a static
    height, the lowest toe height + 0.01.
    """
    toe_z = np.asarray(toe_z, dtype=np.float64)
    static = np.asarray(toe_speed) < SPEED_THRESHOLD
    heights = np.concatenate([toe_z[static[:, 0], 0], toe_z[static[:, 1], 1]])
    if heights.size == 0:
        return float(toe_z.min()) + TOE_OFFSET
    return _lowest_group_median(heights, DBSCAN_EPS, DBSCAN_MIN_SAMPLES)


def _lowest_group_median(values: np.ndarray, eps: float, min_samples: int) -> float:
    """The lowest median of the groups of ``values`` that :func:`dbscan_1d` makes (all values
    when no cluster forms), from the sorted values alone: a fifth of the time of labelling
    every point, on a motion's static heights, where the calls' fixed cost is most of it.

    In one dimension the points within eps of a value are a run of the sorted values (the
    rounded difference is monotone), so with ``min_samples`` 3 a value with a neighbour within
    eps on each side is core (:func:`_sorted_core` says why no other needs to be). The
    clusters are disjoint intervals, so the lowest cluster has the lowest median: its core
    values run from the first while each is within eps of the one before, and its border
    values are those within eps of its first or last core value. No border value is within
    eps of two clusters when ``min_samples`` <= 3 (it would have 3 points within eps and be a
    core point); a larger ``min_samples`` would let input order decide such a value's
    cluster, so it is refused.
    """
    if min_samples > 3:
        raise ValueError(f"min_samples <= 3 expected, got {min_samples}")
    ordered = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    count = ordered.size
    core = _sorted_core(ordered, eps, min_samples)
    first = int(core.argmax())
    if not core[first]:  # noise only: one group of every value
        return _sorted_median(ordered, 0, count - 1)
    core_index = np.flatnonzero(core[first:]) + first
    gaps = np.flatnonzero(ordered[core_index[1:]] - ordered[core_index[:-1]] > eps)
    last = int(core_index[gaps[0]] if gaps.size else core_index[-1])
    low, high = first, last
    while low > 0 and ordered[first] - ordered[low - 1] <= eps:  # border values: one at most
        low -= 1
    while high < count - 1 and ordered[high + 1] - ordered[last] <= eps:
        high += 1
    return _sorted_median(ordered, low, high)


def _sorted_core(ordered: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Which of the sorted values (``min_samples`` <= 3) are core values that can join others
    into a cluster, judged by the rounded difference ``|x - y| <= eps``. With 3, the values
    with a neighbour within eps on each side: a value core only through two neighbours on one
    side (``x_{i-2}, x_{i-1}`` within eps) has none within eps on the other, so it joins
    nothing its neighbour ``x_{i-1}`` (core) does not, and as a border value of that cluster
    it falls in the same group."""
    count = ordered.size
    core = np.zeros(count, dtype=bool)
    if min_samples <= 1:
        core[:] = True
        return core
    near = ordered[1:] - ordered[:-1] <= eps  # the next value is within eps
    if min_samples == 2:
        core[1:] |= near
        core[:-1] |= near
    else:
        np.logical_and(near[:-1], near[1:], out=core[1:-1])
    return core


def _sorted_median(ordered: np.ndarray, first: int, last: int) -> float:
    """The median (as ``np.median`` gives it) of ``ordered[first : last + 1]``, sorted."""
    count = last - first + 1
    low, high = ordered[first + (count - 1) // 2], ordered[first + count // 2]
    return float((low + high) / 2)  # an odd count: (x + x) / 2 is x exactly


def foot_contacts(joints: np.ndarray, fps: float) -> tuple[float, np.ndarray]:
    """``(floor_z, contacts)`` of a motion's joints ``(T, J, 3)`` (SMPL order, J >= 12, metres,
    z up) at ``fps``: the floor height and ``(T, 4)`` uint8 contacts, columns
    :data:`CONTACT_COLUMNS`."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1] < 12 or joints.shape[2] != 3 or joints.shape[0] < 1:
        raise ValueError(f"joints must have shape (T >= 1, J >= 12, 3), got {joints.shape}")
    return feet_contacts(joints[:, CONTACT_JOINTS], fps)


def feet_contacts(feet: np.ndarray, fps: float) -> tuple[float, np.ndarray]:
    """:func:`foot_contacts` of the four contact joints alone, ``(T, 4, 3)`` in the order of
    :data:`CONTACT_JOINTS`."""
    feet = np.asarray(feet, dtype=np.float64)
    if feet.ndim != 3 or feet.shape[1:] != (4, 3) or feet.shape[0] < 1:
        raise ValueError(f"feet must have shape (T >= 1, 4, 3), got {feet.shape}")
    columns = np.ascontiguousarray(feet.transpose(1, 2, 0))
    [(floor_z, contacts)] = feet_contacts_of_motions(columns, [0, feet.shape[0]], [fps])
    return floor_z, np.ascontiguousarray(contacts.T)


def feet_contacts_of_motions(
    columns: np.ndarray, starts: Sequence[int] | np.ndarray, fps: Sequence[float]
) -> list[tuple[float, np.ndarray]]:
    """``(floor_z, contacts)`` of several motions' contact joints given component-major and
    one after another: ``columns`` ``(4, 3, F)`` float64 (as
    :func:`vposer_data.chain_kinematics.contact_joint_columns_of_motions` gives them), motion
    ``i`` at frames ``starts[i] : starts[i + 1]`` and rate ``fps[i]``. Its contacts come
    back component-major, ``(4, T)`` uint8. Speeds and contacts are computed for all the
    frames at once (the fixed cost of each operation paid once, not per motion), the floor
    motion by motion: the same values as one motion at a time."""
    bounds = np.asarray(starts, dtype=np.int64)
    rates = np.asarray(fps, dtype=np.float64)
    if columns.ndim != 3 or columns.shape[:2] != (4, 3):
        raise ValueError(f"columns must have shape (4, 3, F), got {columns.shape}")
    lengths = np.diff(bounds)
    if bounds[0] != 0 or bounds[-1] != columns.shape[2] or (lengths < 1).any():
        raise ValueError(f"starts must cut {columns.shape[2]} frames into motions, got {bounds}")
    if rates.shape != lengths.shape or not (rates > 0).all():
        raise ValueError(f"one positive fps per motion expected, got {rates}")
    speeds = _speeds(columns, bounds, rates)
    floors = np.array(
        [
            floor_height(columns[1::2, 2, first:end].T, speeds[1::2, first:end].T)
            for first, end in itertools.pairwise(bounds.tolist())
        ]
    )
    above = columns[:, 2, :] - np.repeat(floors, lengths)
    contacts = speeds < SPEED_THRESHOLD
    contacts &= above < _HEIGHTS
    labels = contacts.view(np.uint8)
    return [
        (float(floor - TOE_OFFSET), labels[:, first:end])
        for floor, (first, end) in zip(
            floors.tolist(), itertools.pairwise(bounds.tolist()), strict=True
        )
    ]


def mirror_contacts(contacts: np.ndarray) -> np.ndarray:
    """Contacts ``(..., 4)`` of the mirrored motion: the left and right columns swap."""
    contacts = np.asarray(contacts)
    if contacts.shape[-1:] != (4,):
        raise ValueError(f"contacts must have 4 columns, got shape {contacts.shape}")
    return contacts[..., list(_MIRRORED_COLUMNS)]
