"""A readable summary of a prepared folder (``vposer-data info``), and checksum verification."""

from __future__ import annotations

from pathlib import Path

from vposer_data.augment.registry import AUGMENTATIONS
from vposer_data.errors import PrepareError
from vposer_data.manifest import Manifest
from vposer_data.records import PathReason, ShortMotion, Stage1Record

__all__ = [
    "augmented_splits",
    "clip_seconds_per_dataset",
    "load_prepared",
    "samples_per_dataset",
    "summarize",
    "verify",
]


def load_prepared(data_dir: str | Path, complete: bool = False) -> Manifest:
    """The manifest of a prepared folder (with ``complete``: of a finished one), or a
    PrepareError that says how to make one."""
    manifest = Manifest.load(data_dir)
    if not manifest.exists or (complete and not manifest.complete):
        state = "holds no manifest.json" if not manifest.exists else "is not finished"
        raise PrepareError(
            f"{data_dir} {state}: not a prepared folder "
            "(run vposer-data prepare --amass-dir ... --out ...)"
        )
    return manifest


def augmented_splits(manifest: Manifest) -> list[str]:
    """The splits that got the pose-changing augmentations (and the passes): the
    ``augment_splits``, or every split of a folder prepared before that setting existed."""
    config = manifest.settings.get("config", {})
    if "augment_splits" not in config:  # no pose-changing augmentation, or an older folder
        older = any(
            AUGMENTATIONS[spec["name"]].changes_poses for spec in config.get("augmentations", [])
        )
        return list(manifest.splits) if older else []
    return [split for split in manifest.splits if split in config["augment_splits"]]


def samples_per_dataset(manifest: Manifest, split: str) -> dict[str, int]:
    """Source dataset -> samples of ``split`` in the final tensors: the frames Stage I kept
    per dataset, times the augmentation passes of the split (Stage II writes each in full)."""
    passes = int(manifest.settings.get("config", {}).get("augment_passes", 1))
    if split not in augmented_splits(manifest):
        passes = 1
    stage1 = manifest.stage1(split)
    datasets = {} if stage1 is None else stage1.datasets
    return {name: int(count) * passes for name, count in datasets.items()}


def clip_seconds_per_dataset(manifest: Manifest, split: str) -> dict[str, float] | None:
    """Clip folders: source dataset -> seconds of motion the clips of ``split`` cover (each
    motion's span from its first clip's start to its last clip's end, counted once however
    the clips overlap); None for frame folders."""
    config = manifest.settings.get("config", {})
    if config.get("sampling") != "clips":
        return None
    T, rate = int(config["clip_frames"]), float(config["target_fps"])
    stride = int(config.get("clip_stride") or T)
    seconds: dict[str, float] = {}
    for item in _stage1(manifest, split).files:
        clips = item.kept
        covered = ((clips - 1) * stride + T) / rate if clips else 0.0
        seconds[item.dataset] = seconds.get(item.dataset, 0.0) + covered
    return seconds


def _stage1(manifest: Manifest, split: str) -> Stage1Record:
    """Stage I's record of ``split``; an empty one when it has none."""
    return manifest.stage1(split) or Stage1Record(samples=0, fields={}, datasets={})


def _augmentation_line(manifest: Manifest) -> str:
    """Which augmentations each split got."""
    specs = manifest.settings.get("config", {}).get("augmentations", [])
    changing = [s["name"] for s in specs if AUGMENTATIONS[s["name"]].changes_poses]
    derived = [s["name"] for s in specs if not AUGMENTATIONS[s["name"]].changes_poses]
    every = f"derived fields in every split: {', '.join(derived) or 'none'}"
    if not changing:
        return f"augmentations: no pose-changing one (every pose is a source frame); {every}"
    augmented = augmented_splits(manifest)
    others = [split for split in manifest.splits if split not in augmented]
    return (
        f"augmentations: {', '.join(changing)} applied to {', '.join(augmented)} only"
        + (f" ({', '.join(others)}: source poses)" if others else "")
        + f"; {every}"
    )


def summarize(data_dir: str | Path) -> str:
    """Per split: samples, samples per source dataset, fields with shapes and dtypes; then the
    configuration and the skipped files with their reasons."""
    manifest = load_prepared(data_dir)
    config = manifest.settings.get("config", {})
    lines = [
        f"Prepared data in {Path(data_dir)}"
        + ("" if manifest.complete else "  (INCOMPLETE: preparation has not finished)")
    ]
    versions = manifest.data.get("versions", {})
    if versions:
        lines.append(
            f"  made by vposer_data {versions.get('vposer_data')} "
            f"(torch {versions.get('torch')}, numpy {versions.get('numpy')}) "
            f"from {manifest.data.get('amass_dir')}"
        )
    skipped_all: list[tuple[str, PathReason]] = []
    short_all: list[tuple[str, ShortMotion]] = []
    for split in manifest.splits:
        final = manifest.stage3(split)
        stage1 = _stage1(manifest, split)
        skipped_all += [(split, s) for s in stage1.skipped]
        short_all += [(split, s) for s in stage1.too_short]
        if final is None:
            lines.append(f"\n[{split}] not finished")
            continue
        seconds = clip_seconds_per_dataset(manifest, split)
        if seconds is None:
            lines.append(
                f"\n[{split}] {final.samples:,} samples from {len(stage1.files)} motion files"
            )
            for dataset, count in samples_per_dataset(manifest, split).items():
                lines.append(f"    {dataset:<22s} {count:>10,}")
        else:
            lines.append(
                f"\n[{split}] {final.samples:,} clips of {config['clip_frames']} frames at "
                f"{config['target_fps']:g} Hz from {len(stage1.files)} motion files, "
                f"{sum(seconds.values()):,.1f} seconds of motion"
            )
            lines.append(f"    {'dataset':<22s} {'clips':>10s} {'seconds':>10s}")
            for dataset, count in samples_per_dataset(manifest, split).items():
                lines.append(f"    {dataset:<22s} {count:>10,} {seconds.get(dataset, 0):>10,.1f}")
        files = len(stage1.files)
        for name, lacking in stage1.dropped_fields.items():
            lines.append(
                f"  WARNING: field {name} left out: {lacking} of {files} motion files lack it"
            )
        lines.append("  fields:")
        for name, meta in final.fields.items():
            shape = "x".join(str(d) for d in meta.shape)
            lines.append(f"    {name:<18s} {shape:<14s} {meta.dtype:<8s} {meta.bytes:>12,} B")
    lines.append("\n" + _augmentation_line(manifest))
    lines.append("\nconfiguration:")
    for key, value in config.items():
        lines.append(f"  {key} = {value}")
    models = manifest.data.get("body_models")
    if models:
        lines.append("\nbody models used (joints, contacts; known by SHA-256):")
        for key, entry in models.items():
            family, gender = key.split("/")
            lines.append(f"  {family:<6s} {gender:<8s} {entry['file']}  sha256 {entry['sha256']}")
    excluded = [
        (split, item) for split in manifest.splits for item in _stage1(manifest, split).excluded
    ]
    lines.append(f"\nexcluded by name (exclude): {len(excluded)}")
    for split, item in excluded[:50]:
        lines.append(f"  [{split}] {item.path}: {item.reason}")
    if len(excluded) > 50:
        lines.append(f"  ... and {len(excluded) - 50} more (see manifest.json)")
    fixed = [
        (split, item)
        for split in manifest.splits
        for item in _stage1(manifest, split).fps_overrides
    ]
    lines.append(f"\nframe rates overridden (fps_overrides): {len(fixed)}")
    for split, fix in fixed[:50]:
        lines.append(f"  [{split}] {fix.path}: {fix.file_fps:g} -> {fix.fps:g} Hz ({fix.pattern})")
    if len(fixed) > 50:
        lines.append(f"  ... and {len(fixed) - 50} more (see manifest.json)")
    lines.append(f"\nmotions too short to yield a sample: {len(short_all)}")
    for split, short in short_all[:50]:
        frames = f"{short.frames} frames" if short.frames is not None else short.reason
        lines.append(f"  [{split}] {short.path}: {frames}")
    if len(short_all) > 50:
        lines.append(f"  ... and {len(short_all) - 50} more (see manifest.json)")
    lines.append(f"\nskipped motion files: {len(skipped_all)}")
    for split, item in skipped_all[:50]:
        lines.append(f"  [{split}] {item.path}: {item.reason}")
    if len(skipped_all) > 50:
        lines.append(f"  ... and {len(skipped_all) - 50} more (see manifest.json)")
    return "\n".join(lines)


def verify(data_dir: str | Path) -> list[str]:
    """Every recorded final file rechecked: size and SHA-256. Empty when all match."""
    manifest = load_prepared(data_dir)
    if not manifest.complete:
        return [f"{data_dir}: preparation has not finished"]
    return manifest.verify(checksums=True)
