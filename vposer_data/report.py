"""A one-page picture of a prepared folder (``vposer-data report``), and the numbers behind it.

Samples per split and per source dataset are counted from the final ``seq_id`` tensors and the
manifest's file list (what training reads, not what was planned); joint rotation angles are the
norms of the ``pose_body`` axis-angle vectors, in degrees. matplotlib (the ``report`` extra) is
imported only when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vposer_data.dataset import VPoserDataset
from vposer_data.fields import POSE_BODY
from vposer_data.manifest import STAGE_III, Manifest, split_dir
from vposer_data.stick_figure import draw_stick_figures, motion_strip
from vposer_data.summary import clip_seconds_per_dataset, load_prepared
from vposer_data.summary import samples_per_dataset as per_split

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "BODY_JOINTS",
    "joint_angles",
    "report_figure",
    "samples_per_dataset",
    "write_report",
]

#: The 21 SMPL body joints of ``pose_body``, in order.
BODY_JOINTS = (
    "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
    "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder",
    "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip
_SPLIT_COLORS = {"train": "#1f77b4", "vald": "#ff7f0e", "test": "#2ca02c"}
_OTHER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _samples(manifest: Manifest, split: str) -> int:
    final = manifest.stage3(split)
    return 0 if final is None else final.samples


def _prepared_splits(manifest: Manifest) -> list[str]:
    """The finished splits: train, vald, test first, then any others in manifest order."""
    done = [s for s in manifest.splits if manifest.has_record(STAGE_III, s)]
    first = [s for s in _SPLIT_COLORS if s in done]
    return first + [s for s in done if s not in first]


def samples_per_dataset(data_dir: str | Path) -> dict[str, dict[str, int]]:
    """split -> source dataset -> samples in the final tensors (augmentation passes included)."""
    manifest = load_prepared(data_dir, complete=True)
    return {split: per_split(manifest, split) for split in _prepared_splits(manifest)}


def joint_angles(
    folder: str | Path, max_samples: int | None = 100_000, seed: int = 0
) -> np.ndarray:
    """(n, 21) rotation angle of each body joint, in degrees, for up to ``max_samples`` rows of
    a split (a seeded random subset, in file order, when the split is larger); for clips, one
    row per clip frame."""
    pose_body = VPoserDataset(folder, [POSE_BODY]).tensors[POSE_BODY]
    rows = pose_body.shape[0]
    if max_samples is not None and rows > max_samples:
        pick = np.sort(np.random.default_rng(seed).choice(rows, max_samples, replace=False))
        array = pose_body.numpy()[pick]
    else:
        array = pose_body.numpy()
    aa = array.reshape(-1, array.shape[-1] // 3, 3).astype(np.float64)
    return np.degrees(np.linalg.norm(aa, axis=-1))


def _color(split: str, index: int) -> str:
    return _SPLIT_COLORS.get(split, _OTHER_COLORS[index % len(_OTHER_COLORS)])


def report_figure(data_dir: str | Path, max_samples: int | None = 100_000) -> Figure:
    """The report as a matplotlib ``Figure`` (no pyplot, no backend change): samples per
    source dataset by split; the distribution of body joint rotation angles per split; and
    each joint's median angle with its interquartile range, per split; and, when the folder
    has ``joints``, a stick figure of a few frames of one motion, feet coloured by contact."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the report needs matplotlib: pip install 'vposer-data[report]'") from exc

    manifest = load_prepared(data_dir, complete=True)
    splits = _prepared_splits(manifest)
    counts = samples_per_dataset(data_dir)
    angles = {
        s: joint_angles(split_dir(data_dir, s), max_samples=max_samples, seed=i)
        for i, s in enumerate(splits)
    }
    totals = {s: _samples(manifest, s) for s in splits}
    config = manifest.settings.get("config", {})
    clips = config.get("sampling") == "clips"
    unit = "clips" if clips else "samples"
    seconds = {s: sum((clip_seconds_per_dataset(manifest, s) or {}).values()) for s in splits}

    strip = motion_strip(data_dir)
    rows = 2 if strip is None else 3
    fig = Figure(figsize=(15, 9 if strip is None else 13), dpi=100, layout="constrained")
    heights = (1, 1) if strip is None else (1, 1, 0.9)
    grid = fig.add_gridspec(rows, 2, width_ratios=(1, 1.35), height_ratios=heights)
    ax_counts = fig.add_subplot(grid[:2, 0])
    ax_hist = fig.add_subplot(grid[0, 1])
    ax_joint = fig.add_subplot(grid[1, 1])
    if strip is not None:
        draw_stick_figures(fig.add_subplot(grid[2, :]), strip)
    what = (
        f"clips of {config['clip_frames']} frames at {config['target_fps']:g} Hz"
        if clips
        else "samples"
    )
    fig.suptitle(
        f"{'Motion clips' if clips else 'VPoser data'} in {Path(data_dir).resolve()}\n"
        + ",  ".join(
            f"{s}: {totals[s]:,} {unit}" + (f" ({seconds[s]:,.0f} s of motion)" if clips else "")
            for s in splits
        )
        + (f"\n{what}" if clips else ""),
        fontsize=13,
    )

    # samples per source dataset, grouped by split (largest first within a split)
    labels, values, colors = [], [], []
    for i, split in enumerate(splits):
        for name, n in sorted(counts.get(split, {}).items(), key=lambda kv: -kv[1]):
            labels.append(f"{name}  [{split}]")
            values.append(n)
            colors.append(_color(split, i))
    y = np.arange(len(labels))
    ax_counts.barh(y, values, color=colors)
    ax_counts.set_yticks(y, labels, fontsize=9)
    ax_counts.invert_yaxis()
    ax_counts.set_xlabel(unit)
    ax_counts.set_title(f"{unit.capitalize()} per source dataset")
    ax_counts.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    top = max(values, default=1)
    for yi, v in zip(y, values, strict=True):
        ax_counts.text(v + top * 0.01, float(yi), f"{v:,}", va="center", fontsize=8)
    ax_counts.set_xlim(0, top * 1.18)
    handles = [
        Patch(color=_color(s, i), label=f"{s} ({totals[s]:,})") for i, s in enumerate(splits)
    ]
    ax_counts.legend(handles=handles, title=f"split ({unit})", loc="lower right")

    # distribution of all body joint angles per split
    high = max((float(np.percentile(a, 99.9)) for a in angles.values() if a.size), default=180)
    high = min(180.0, 10.0 * np.ceil(high / 10.0 + 0.5))
    bins = np.linspace(0, high, 73)
    for i, split in enumerate(splits):
        ax_hist.hist(
            angles[split].ravel(),
            bins=bins.tolist(),
            density=True,
            histtype="step",
            linewidth=1.8,
            color=_color(split, i),
            label=split,
        )
    ax_hist.set_xlim(0, high)
    ax_hist.set_xlabel("body joint rotation angle (degrees, |axis-angle|)")
    ax_hist.set_ylabel("density")
    ax_hist.set_title("Joint rotation angles per split (all 21 body joints)")
    ax_hist.legend()

    # per joint: median and interquartile range per split
    x = np.arange(len(BODY_JOINTS))
    width = 0.8 / max(len(splits), 1)
    for i, split in enumerate(splits):
        q25, q50, q75 = np.percentile(angles[split], [25, 50, 75], axis=0)
        offset = (i - (len(splits) - 1) / 2) * width
        ax_joint.errorbar(
            x + offset,
            q50,
            yerr=np.stack([q50 - q25, q75 - q50]),
            fmt="o",
            markersize=4,
            capsize=2,
            color=_color(split, i),
            label=split,
        )
    ax_joint.set_xticks(x, list(BODY_JOINTS[: len(x)]), rotation=45, ha="right", fontsize=9)
    ax_joint.set_ylabel("angle (degrees)")
    ax_joint.set_title("Per joint: median and interquartile range")
    ax_joint.grid(axis="y", alpha=0.3)
    low, high = ax_joint.get_ylim()
    ax_joint.set_ylim(low, high + 0.15 * (high - low))  # room for the legend above the bars
    ax_joint.legend(ncols=len(splits), loc="upper center")
    if max_samples is not None and any(n > max_samples for n in totals.values()):
        ax_hist.text(
            0.01, 0.97, f"from up to {max_samples:,} random\nsamples per split",
            transform=ax_hist.transAxes, ha="left", va="top", fontsize=8, color="gray",
        )  # fmt: skip
    return fig


def write_report(
    data_dir: str | Path, out: str | Path | None = None, max_samples: int | None = 100_000
) -> Path:
    """Draw :func:`report_figure` into a PNG (default ``<data_dir>/report.png``); returns its
    path."""
    path = Path(out) if out is not None else Path(data_dir) / "report.png"
    figure = report_figure(data_dir, max_samples=max_samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
