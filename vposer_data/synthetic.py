"""A synthetic AMASS-like tree, deterministic by seed, for the demo, the tests and the benchmarks.

It reproduces what real AMASS downloads contain: the folder names of either release, SMPL+H
(``*_poses.npz``) or SMPL-X (``*_stageii.npz``, with object-array marker metadata and NaN in the
markers) files, float frame rates (59.99998, 120.00004, ...), genders stored as str or bytes,
``shape.npz`` / ``*_stagei.npz`` / ``LICENSE.txt`` beside the motions, names with spaces, and
deeper nesting. The motion is smooth, per joint a sum of slow sinusoids within joint limits.
Files are written with fixed zip timestamps, so the same seed gives identical bytes.

A finished tree is marked by :data:`SYNTHETIC_MARKER`, which records the options it was written
with: :func:`ensure_synthetic_tree` (the demo command, the notebook) writes a tree once and
reuses it afterwards, and :func:`synthetic_tree_options` (also the example training) tells such
a tree from real AMASS.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vposer_data.errors import ConfigError, PrepareError
from vposer_data.synthetic_models import ensure_body_models, write_body_models

__all__ = [
    "RELEASES",
    "SYNTHETIC_MARKER",
    "SyntheticSummary",
    "ensure_body_models",
    "ensure_synthetic_tree",
    "minimum_frames",
    "synthetic_tree_options",
    "write_amass_tree",
    "write_body_models",
    "write_errata_examples",
    "write_motion_npz",
    "write_npz",
]

#: Files real AMASS has that :mod:`vposer_data.errata` is about, per release: the relative
#: path (SMPL+H era names; SMPL-X era below), the frame rate the file states, frames.
_ERRATA_EXAMPLES: tuple[tuple[str, float, int], ...] = (
    # BMLhandball: stated 120 Hz (SMPL+H) / 60 Hz, really 240 Hz
    ("BMLhandball/S01_Expert/Trial_upper_left_033", 120.0, 900),
    ("BMLhandball/S02_Novice/Trial_lower_right_129", 120.0, 700),
    # SSM subjects whose stated 120 Hz is really 59 Hz
    ("SSM_synced/20160930_50032/punch_kick_sync", 120.0, 600),
    ("SSM_synced/20161014_50033/jumping_jack_sync", 120.0, 500),
    ("SSM_synced/20161014_50031/walk_sync", 120.0, 500),  # a subject without erratum
    # BMLrub: treadmill and normal walking (the treadmill preset) beside other motions
    ("BioMotionLab_NTroje/rub101/0001_treadmill_norm", 120.0, 600),
    ("BioMotionLab_NTroje/rub101/0005_normal_walk1", 120.0, 500),
    ("BioMotionLab_NTroje/rub101/0011_circle_walk", 120.0, 500),
    ("BioMotionLab_NTroje/rub101/0019_throwing_hard1", 120.0, 400),
    # HDM05: inline skating (the inline_skating preset) and another scene of the subject
    ("MPI_HDM05/dg/HDM_dg_07-01_01_120", 120.0, 600),
    ("MPI_HDM05/dg/HDM_dg_03-02_01_120", 120.0, 500),
)
_SMPLX_NAMES = {
    "SSM_synced": "SSM",
    "BioMotionLab_NTroje": "BMLrub",
    "MPI_HDM05": "HDM05",
}

#: Dataset folder names per release: "smplh" is the SMPL+H G era, "smplx" the SMPL-X G era.
RELEASES: dict[str, dict[str, str]] = {
    "smplh": {
        "HumanEva": "HumanEva",
        "MPI_HDM05": "MPI_HDM05",
        "SFU": "SFU",
        "MPI_mosh": "MPI_mosh",
        "Transitions_mocap": "Transitions_mocap",
        "SSM_synced": "SSM_synced",
        "CMU": "CMU",
        "MPI_Limits": "MPI_Limits",
        "TotalCapture": "TotalCapture",
        "Eyes_Japan_Dataset": "Eyes_Japan_Dataset",
        "KIT": "KIT",
        "BML": "BioMotionLab_NTroje",
        "EKUT": "EKUT",
        "TCD_handMocap": "TCD_handMocap",
        "ACCAD": "ACCAD",
        "DFaust_67": "DFaust_67",
    },
    "smplx": {
        "HumanEva": "HumanEva",
        "MPI_HDM05": "HDM05",
        "SFU": "SFU",
        "MPI_mosh": "MoSh",
        "Transitions_mocap": "Transitions",
        "SSM_synced": "SSM",
        "CMU": "CMU",
        "MPI_Limits": "PosePrior",
        "TotalCapture": "TotalCapture",
        "Eyes_Japan_Dataset": "EyesJapanDataset",
        "KIT": "KIT",
        "BML": "BMLrub",
        "EKUT": "EKUT",
        "TCD_handMocap": "TCDHands",
        "ACCAD": "ACCAD",
        "DFaust_67": "DFaust",
    },
}
#: Relative share of the frame budget per dataset (roughly AMASS's proportions).
_WEIGHTS = {"CMU": 6, "BML": 5, "KIT": 5}
#: Frame rates cycled over datasets: the real ones, integer and not.
_FRAME_RATES = (120.0, 59.99998, 100.0, 250.0, 120.00004, 60.0)
_SUBJECT_PREFIX = {"BML": "rub", "CMU": "", "KIT": ""}
#: Datasets whose sequences sit one folder deeper (subject/session/file).
_NESTED = ("EKUT", "TotalCapture")
_MIN_LEN, _MAX_LEN = 120, 1800
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`write_amass_tree` wrote."""

    root: str
    release: str
    motion_files: int
    total_frames: int
    datasets: dict[str, int]  # folder -> motion files


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray], compress: bool = False) -> None:
    """Write an ``.npz`` like ``np.savez`` would, but with fixed timestamps (identical bytes
    for identical arrays), atomically (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(tmp, "w", compression=method) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=True)
    os.replace(tmp, path)


def _smooth(rng: np.random.Generator, t: np.ndarray, dims: int, amplitude: float) -> np.ndarray:
    """(len(t), dims): per dimension an offset plus two slow sinusoids, bounded by amplitude."""
    offset = rng.uniform(-0.3, 0.3, dims) * amplitude
    amp = rng.uniform(0.1, 0.35, (2, dims)) * amplitude
    freq = rng.uniform(0.05, 1.2, (2, dims))
    phase = rng.uniform(0, 2 * np.pi, (2, dims))
    wave = amp[:, None, :] * np.sin(
        2 * np.pi * freq[:, None, :] * t[None, :, None] + phase[:, None]
    )
    return offset + wave.sum(axis=0)


def _root_orient(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Axis-angle of Rz(yaw(t)) @ Rx(pi/2 + tilt(t)): upright in AMASS's z-up world, turning."""
    yaw = rng.uniform(-np.pi, np.pi) + rng.uniform(-0.4, 0.4) * t
    tilt = 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    half_x, half_z = (np.pi / 2 + tilt) / 2, yaw / 2
    # quaternion product qz * qx, with qz = (cos, 0, 0, sin) and qx = (cos, sin, 0, 0)
    w = np.cos(half_z) * np.cos(half_x)
    x = np.cos(half_z) * np.sin(half_x)
    y = np.sin(half_z) * np.sin(half_x)
    z = np.sin(half_z) * np.cos(half_x)
    angle = 2 * np.arctan2(np.sqrt(x * x + y * y + z * z), w)
    scale = angle / np.maximum(np.sin(angle / 2), 1e-12)
    return np.stack([x * scale, y * scale, z * scale], axis=1)


def write_motion_npz(
    path: str | Path,
    family: str,
    num_frames: int,
    fps: float,
    gender: str | bytes,
    betas: np.ndarray,
    rng: np.random.Generator,
    compress: bool = False,
) -> None:
    """Write one motion of the given family ("smpl", "smplh" or "smplx") with real AMASS keys."""
    t = np.arange(num_frames) / fps
    root = _root_orient(rng, t)
    body = _smooth(rng, t, 63, 1.2)
    trans = np.stack(
        [
            np.cumsum(np.full(num_frames, rng.uniform(-1, 1) / fps)),
            np.cumsum(np.full(num_frames, rng.uniform(-1, 1) / fps)),
            0.9 + 0.03 * np.sin(2 * np.pi * 1.5 * t),
        ],
        axis=1,
    )
    gender_array = np.array(gender)
    if family == "smpl":
        poses = np.concatenate([root, body, _smooth(rng, t, 6, 0.3)], axis=1)
        write_npz(
            path,
            {
                "poses": poses,
                "trans": trans,
                "betas": betas[:10],
                "gender": gender_array,
                "mocap_framerate": np.array(fps),
            },
            compress,
        )
        return
    hands = _smooth(rng, t, 90, 0.8)
    if family == "smplh":
        arrays = {
            "trans": trans,
            "gender": gender_array,
            "mocap_framerate": np.array(fps),
            "betas": betas,
            "dmpls": _smooth(rng, t, 8, 1.0),
            "poses": np.concatenate([root, body, hands], axis=1),
        }
        write_npz(path, arrays, compress)
        return
    if family != "smplx":
        raise ValueError(f"family {family!r}: expected 'smpl', 'smplh' or 'smplx'")
    jaw, eyes = _smooth(rng, t, 3, 0.2), _smooth(rng, t, 6, 0.2)
    num_markers = 6
    markers = trans[:, None, :] + rng.normal(0, 0.2, (1, num_markers, 3))
    markers[rng.random((num_frames, num_markers)) < 0.05] = np.nan  # occlusions, as in real data
    labels = np.array([f"M{i:02d}" for i in range(num_markers)], dtype=object)
    arrays = {
        "gender": gender_array,
        "surface_model_type": np.array("smplx"),
        "mocap_frame_rate": np.array(fps),
        "mocap_time_length": np.array(num_frames / fps),
        "markers_latent": rng.normal(0, 0.2, (num_markers, 3)),
        "latent_labels": labels,
        "markers_latent_vids": np.array([{str(k): int(i) for i, k in enumerate(labels)}]),
        "trans": trans,
        "poses": np.concatenate([root, body, jaw, eyes, hands], axis=1),
        "betas": betas,
        "num_betas": np.array(len(betas)),
        "root_orient": root,
        "pose_body": body,
        "pose_hand": hands,
        "pose_jaw": jaw,
        "pose_eye": eyes,
        "markers": markers,
        "labels": labels,
    }
    write_npz(path, arrays, compress)


def _seeded(seed: int, *parts: object) -> np.random.Generator:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _allocate(total: int, weights: list[int]) -> list[int]:
    raw = np.array(weights, dtype=float) / sum(weights) * total
    counts = np.floor(raw).astype(int)
    counts[np.argmax(raw)] += total - counts.sum()
    return [int(c) for c in counts]


def _sequence_lengths(rng: np.random.Generator, budget: int) -> list[int]:
    lengths: list[int] = []
    while budget > 0:
        length = int(rng.integers(_MIN_LEN, _MAX_LEN))
        if budget - length < _MIN_LEN:
            length = budget
        lengths.append(length)
        budget -= length
    return lengths


def minimum_frames(release: str = "smplh") -> int:
    """The fewest frames a tree of ``release`` can have: two short motions per dataset."""
    if release not in RELEASES:
        raise ConfigError(f"release {release!r}: expected one of {', '.join(RELEASES)}")
    return 2 * _MIN_LEN * len(RELEASES[release])


def write_amass_tree(
    root: str | Path,
    total_frames: int = 200_000,
    release: str = "smplh",
    seed: int = 0,
    compress: bool = False,
    errata_examples: bool = False,
) -> SyntheticSummary:
    """Write an AMASS-like tree of about ``total_frames`` motion frames (exactly, when each
    dataset's share is at least a few hundred frames) under ``root``.

    Args:
        root: output folder (created).
        total_frames: total frames over all motion files.
        release: "smplh" (older folder names, ``*_poses.npz``) or "smplx" (newer names,
            ``*_stageii.npz``).
        seed: everything written follows from it.
        compress: deflate the archives (``np.savez_compressed``) instead of storing them.
        errata_examples: also write the files real AMASS has that the errata and exclusion
            presets are about (:func:`write_errata_examples`). Off by default, so that the
            default tree, and the data prepared from it, stay as they were.
    """
    if total_frames < minimum_frames(release):
        raise ConfigError(
            f"total_frames={total_frames}: expected at least {minimum_frames(release)} "
            "(two short motions per dataset)"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = list(RELEASES[release])
    budgets = _allocate(total_frames, [_WEIGHTS.get(n, 1) for n in names])
    suffix = "_poses.npz" if release == "smplh" else "_stageii.npz"
    written: dict[str, int] = {}
    frames_written = 0
    for index, (name, budget) in enumerate(zip(names, budgets, strict=True)):
        folder = RELEASES[release][name]
        rng = _seeded(seed, release, name)
        fps = _FRAME_RATES[index % len(_FRAME_RATES)]
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "LICENSE.txt").write_text(
            f"Synthetic stand-in for {folder}; no license.\n"
        )
        lengths = _sequence_lengths(rng, budget)
        num_subjects = max(2, min(8, len(lengths) // 3))
        subjects = [f"{_SUBJECT_PREFIX.get(name, 's')}{i + 1:03d}" for i in range(num_subjects)]
        # alternate male / female; a fifth subject, where there is one, is neutral
        subject_genders = {
            s: "neutral" if i == 4 else ("male", "female")[i % 2] for i, s in enumerate(subjects)
        }
        subject_betas = {s: rng.normal(0, 1, 16) for s in subjects}
        for s in subjects:
            gender = subject_genders[s]
            subject_dir = root / folder / s
            subject_dir.mkdir(exist_ok=True)
            shape = {"betas": subject_betas[s], "gender": np.array(gender)}
            if release == "smplh":
                write_npz(subject_dir / "shape.npz", shape, compress)
            else:
                shape["markers_latent_vids"] = np.array([{"M00": 0}])
                write_npz(subject_dir / f"{gender}_stagei.npz", shape, compress)
        for k, length in enumerate(lengths):
            subject = subjects[k % num_subjects]
            folder_path = root / folder / subject
            if name in _NESTED:
                folder_path = folder_path / f"session{k % 2 + 1}"
                folder_path.mkdir(exist_ok=True)
            stem = f"{subject} - trial {k:03d}" if name == "ACCAD" else f"{subject}_{k:03d}"
            gender_value: str | bytes = subject_genders[subject]
            if k % 2:
                gender_value = subject_genders[subject].encode()
            write_motion_npz(
                folder_path / f"{stem}{suffix}",
                family=release,
                num_frames=length,
                fps=fps,
                gender=gender_value,
                betas=subject_betas[subject],
                rng=_seeded(seed, release, name, k),
                compress=compress,
            )
            frames_written += length
        written[folder] = len(lengths)
    if errata_examples:
        for path, length in write_errata_examples(root, release, seed, compress).items():
            folder = path.split("/", 1)[0]
            written[folder] = written.get(folder, 0) + 1
            frames_written += length
    return SyntheticSummary(
        root=str(root),
        release=release,
        motion_files=sum(written.values()),
        total_frames=frames_written,
        datasets=written,
    )


def write_errata_examples(
    root: str | Path, release: str = "smplh", seed: int = 0, compress: bool = False
) -> dict[str, int]:
    """Write the files real AMASS has that the errata and exclusion presets are about: every
    ``BMLhandball`` motion (stated 120 Hz, really 240), the two SSM subjects stated at 120 Hz
    that are really 59 Hz (and one that is right), BMLrub treadmill and ``normal_*`` walking
    beside other motions, HDM05's inline skating beside another scene. Folder and file names
    follow ``release``. Returns relative path -> frames written."""
    if release not in RELEASES:
        raise ValueError(f"release {release!r}: expected one of {', '.join(RELEASES)}")
    root = Path(root)
    suffix = "_poses.npz" if release == "smplh" else "_stageii.npz"
    written: dict[str, int] = {}
    for k, (stem, fps, length) in enumerate(_ERRATA_EXAMPLES):
        folder, rest = stem.split("/", 1)
        if release == "smplx":
            folder = _SMPLX_NAMES.get(folder, folder)
        rel = f"{folder}/{rest}{suffix}"
        rng = _seeded(seed, release, "errata", k)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_motion_npz(
            path,
            family=release,
            num_frames=length,
            fps=fps,
            gender=("male", "female")[k % 2],
            betas=rng.normal(0, 1, 16),
            rng=rng,
            compress=compress,
        )
        written[rel] = length
    return written


#: The file that marks a finished synthetic tree, holding the options it was written with
#: (``{"frames": ..., "release": ..., "seed": ...}``); written last, so a tree whose writing was
#: cut short has none.
SYNTHETIC_MARKER = ".synthetic.json"


def synthetic_tree_options(amass_dir: str | Path) -> dict[str, Any] | None:
    """The options a finished synthetic tree at ``amass_dir`` was written with, or None where
    there is none (real AMASS, a tree whose writing was cut short, nothing at all)."""
    marker = Path(amass_dir) / SYNTHETIC_MARKER
    try:
        options = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return options if isinstance(options, dict) else None


def ensure_synthetic_tree(
    amass_dir: str | Path, total_frames: int = 200_000, release: str = "smplh", seed: int = 0
) -> SyntheticSummary | None:
    """Write a synthetic tree at ``amass_dir`` (:func:`write_amass_tree`), or reuse the one
    written there with the same options: returns what was written, or None when it was reused.

    The demo command and the notebook share one tree this way and never write it twice: a
    rewritten tree has new modification times, which would make every folder prepared from it
    stale.

    Raises:
        PrepareError: ``amass_dir`` holds a synthetic tree written with other options, or is a
            folder with other contents (real AMASS, or a tree cut short), which is never
            written into.
    """
    amass_dir = Path(amass_dir)
    wanted = {"frames": total_frames, "release": release, "seed": seed}
    made = synthetic_tree_options(amass_dir)
    if made is not None:
        if made != wanted:
            raise PrepareError(
                f"{amass_dir} holds a synthetic tree written with {made}, not {wanted}; "
                "choose another folder or repeat those options"
            )
        return None
    if amass_dir.is_dir() and any(amass_dir.iterdir()):
        raise PrepareError(
            f"{amass_dir} is not empty and holds no {SYNTHETIC_MARKER}: it is not a finished "
            "synthetic tree (real AMASS, or a tree whose writing was cut short), and it is "
            "never written into; choose another folder, or delete this one to write the tree"
        )
    summary = write_amass_tree(amass_dir, total_frames=total_frames, release=release, seed=seed)
    marker = amass_dir / SYNTHETIC_MARKER
    temporary = marker.with_name(marker.name + ".tmp")
    temporary.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
    os.replace(temporary, marker)  # written last, whole or not at all
    return summary
