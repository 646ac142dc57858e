"""Stage I: AMASS ``.npz`` files of one split -> ``stage_I/<split>/<field>.pt``.

Per motion file, in sorted order: read, trim both ends, subsample, and keep the frames as
float32, with provenance (``seq_id``: index into the split's file list; ``frame_id``: frame in
the source file). Files are read in parallel worker processes (or threads, see
:mod:`vposer_data.stages.file_readers`); the result does not depend on how many. Each motion's
samples are written to the split's files as soon as it arrives
(:mod:`vposer_data.stages.split_writer`), so memory does not grow with the split.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vposer_data.amass import AmassFormatError, AmassSequence, NotAMotionError, load_sequence
from vposer_data.clips import clip_frames, tick_count
from vposer_data.config import PrepareConfig
from vposer_data.errata import find_exclusion, find_fps_override, override_applies
from vposer_data.errors import PrepareError
from vposer_data.fields import FIELDS, frame_fields, stage1_fields
from vposer_data.inputs import fingerprint
from vposer_data.models_used import BodyModels
from vposer_data.progress import progress
from vposer_data.records import (
    MotionEntry,
    PathReason,
    RateOverride,
    ShortMotion,
    Stage1Record,
    TensorEntry,
)
from vposer_data.sampling import clock_frames, random_frames, sequence_rng, trim_bounds
from vposer_data.splits import SourceFile
from vposer_data.stages.file_readers import read_items_in_order
from vposer_data.stages.job import SplitJob
from vposer_data.stages.source_labels import LABEL_FIELDS, LabelInput, source_labels_of_motions
from vposer_data.stages.split_writer import SplitWriter

__all__ = ["GENDER_CODES", "run_stage1"]

GENDER_CODES = {"male": -1, "neutral": 0, "female": 1}
#: Per-frame source fields, in output order; the optional ones are kept when every file has them.
FRAME_FIELDS = frame_fields()
#: The arrays of a file's kept samples, which come back from reader processes through shared
#: memory (see :mod:`vposer_data.stages.file_readers`).
SHARED_ARRAYS = (
    *(f"arrays.{name}" for name in (*FRAME_FIELDS, *LABEL_FIELDS)),
    "frames",
    "source_root",
    "source_trans",
)


@dataclass
class _Motion:
    """The kept samples of one file: frames, or clips of T frames."""

    source: SourceFile
    family: str
    fps: float  # the rate used: the file's own, or an override's
    num_frames: int
    frames: np.ndarray  # int64 indices into the file: (k,) frames or (k, T) clips
    arrays: dict[str, np.ndarray]  # field -> (k, width) or (k, T, width) float32
    betas: np.ndarray  # (B,) float32
    gender: int
    override: RateOverride | None = None  # where an fps_overrides pattern fixed the rate
    source_root: np.ndarray | None = None  # clips to canonicalise: (k, T, 3) float64
    source_trans: np.ndarray | None = None

    @property
    def samples(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class _Unusable:
    source: SourceFile
    reason: str
    not_a_motion: bool
    # a usable motion that yields no sample (too short for trimming, for one clip, or for
    # the clock): listed with its frame count, never skipped as damaged
    too_short: bool = False
    # not "frames": that name travels from reader processes through shared memory as an array
    num_frames: int | None = None


@dataclass(frozen=True)
class _Kept:
    """What the split's record keeps of a motion once its samples are written."""

    source: SourceFile
    family: str
    fps: float
    num_frames: int
    samples: int
    betas_width: int
    fields: frozenset[str]  # the per-frame fields the file has
    override: RateOverride | None


def _select(sequence: AmassSequence, source: SourceFile, config: PrepareConfig) -> np.ndarray:
    """The kept frames: ``(k,)`` indices, or ``(k, T)`` for clips."""
    if config.sampling == "clips" and config.target_fps and config.clip_frames:
        return clip_frames(
            sequence.num_frames,
            config.trim,
            sequence.fps,
            config.target_fps,
            config.clip_frames,
            config.stride,
        )
    if config.sampling == "fps" and config.target_fps is not None:
        return clock_frames(sequence.num_frames, config.trim, sequence.fps, config.target_fps)
    rng = sequence_rng(config.seed, source.path)
    return random_frames(sequence.num_frames, config.trim, config.keep_rate, rng)


def _rate_override(source: SourceFile, config: PrepareConfig) -> tuple[str, float] | None:
    """The frame-rate override covering this file, where rates are used."""
    if not config.uses_frame_rates or not config.fps_overrides:
        return None
    return find_fps_override(source.path, config.fps_overrides)


def _read_files(
    amass_dir: Path,
    sources: Sequence[SourceFile],
    *,
    config: PrepareConfig,
    body: BodyModels | None = None,
) -> list[_Motion | _Unusable]:
    """The kept samples of each file (a Stage I item's files); with ``body``, the contacts and
    floor of its motions, computed together (:func:`source_labels_of_motions`)."""
    read = [_read_one(amass_dir, source, config=config) for source in sources]
    if body is not None:  # the contacts augmentation: labels of the source motions
        motions = [
            (result, sequence)
            for result, sequence in read
            if isinstance(result, _Motion) and sequence is not None
        ]
        inputs = [
            LabelInput(
                sequence, config.trim, result.frames, body.load(result.family, sequence.gender)
            )
            for result, sequence in motions
        ]
        for (result, _), arrays in zip(motions, source_labels_of_motions(inputs), strict=True):
            result.arrays.update(arrays)
    return [result for result, _ in read]


def _read_one(
    amass_dir: Path, source: SourceFile, *, config: PrepareConfig
) -> tuple[_Motion | _Unusable, AmassSequence | None]:
    """One file's kept samples, and the motion read (for its labels)."""
    path = amass_dir / source.path
    found = _rate_override(source, config)
    try:
        # a file without a rate that an override covers takes the override's
        sequence = load_sequence(path, default_fps=found[1] if found else config.default_fps)
    except NotAMotionError as exc:
        return _Unusable(source, exc.problem, not_a_motion=True), None
    except AmassFormatError as exc:
        return _Unusable(source, exc.problem, not_a_motion=False), None
    except OSError as exc:  # permissions, vanished files, I/O errors
        return _Unusable(source, f"unreadable ({exc})", not_a_motion=False), None
    override = None
    if found is not None and override_applies(sequence.fps, found[1]):
        override = RateOverride(source.path, found[0], sequence.fps, found[1])
        sequence = dataclasses.replace(sequence, fps=found[1])
    if config.trim > 0 and trim_bounds(sequence.num_frames, config.trim)[0] == 0:
        # trimming would drop nothing, so the initial T-pose it is meant to remove would stay
        return _Unusable(
            source,
            f"too short: {sequence.num_frames} frames, too few for trimming {config.trim:g} "
            "at each end to drop a frame",
            not_a_motion=False,
            too_short=True,
            num_frames=sequence.num_frames,
        ), None
    frames = _select(sequence, source, config)
    if frames.size == 0 and config.sampling == "clips":
        ticks = tick_count(sequence.num_frames, config.trim, sequence.fps, config.target_fps or 1)
        return _Unusable(
            source,
            f"too short for one clip: {sequence.num_frames} frames at {sequence.fps:g} Hz give "
            f"{ticks} ticks at {config.target_fps:g} Hz after trimming, a clip needs "
            f"{config.clip_frames}",
            not_a_motion=False,
            too_short=True,
            num_frames=sequence.num_frames,
        ), None
    if frames.size == 0:
        return _Unusable(
            source,
            f"too short: {sequence.num_frames} frames leave none after trimming {config.trim:g} "
            "at each end and subsampling",
            not_a_motion=False,
            too_short=True,
            num_frames=sequence.num_frames,
        ), None
    arrays = {
        name: np.ascontiguousarray(value[frames], dtype=np.float32)
        for name in FRAME_FIELDS
        if (value := getattr(sequence, name)) is not None
    }
    canonical = config.sampling == "clips" and config.canonicalize
    motion = _Motion(
        source=source,
        family=sequence.family,
        fps=sequence.fps,
        num_frames=sequence.num_frames,
        frames=frames,
        arrays=arrays,
        betas=sequence.betas.astype(np.float32),
        gender=GENDER_CODES[sequence.gender],
        override=override,
        source_root=np.asarray(sequence.root_orient[frames], np.float64) if canonical else None,
        source_trans=np.asarray(sequence.trans[frames], np.float64) if canonical else None,
    )
    return motion, sequence


def _check_consistency(split: str, motions: Sequence[_Kept]) -> None:
    """One family per dataset and one betas width per split, or an error naming files."""
    families: dict[str, dict[str, str]] = {}
    for motion in motions:
        families.setdefault(motion.source.dataset, {}).setdefault(motion.family, motion.source.path)
    for dataset, examples in families.items():
        if len(examples) > 1:
            listed = "; ".join(f"{family}: {path}" for family, path in examples.items())
            raise PrepareError(
                f"split {split!r}, dataset {dataset!r} mixes body-model families ({listed}); "
                "a dataset must come from one AMASS release"
            )
    widths: dict[int, str] = {}
    for motion in motions:
        widths.setdefault(motion.betas_width, motion.source.path)
    if len(widths) > 1:
        listed = "; ".join(f"{width} betas: {path}" for width, path in widths.items())
        raise PrepareError(
            f"split {split!r} mixes betas of different widths ({listed}); "
            "prepare those datasets in separate splits"
        )


def _by_dataset(motions: Sequence[_Kept]) -> dict[str, list[_Kept]]:
    groups: dict[str, list[_Kept]] = {}
    for motion in motions:
        groups.setdefault(motion.source.dataset, []).append(motion)
    return groups


def _keep(motion: _Motion, writer: SplitWriter, betas_width: int | None) -> _Kept:
    """Write one motion's samples (its betas only if they have the split's width: the split
    is refused otherwise) and return what the record keeps of it."""
    width = int(motion.betas.shape[0])
    writer.add(
        motion.arrays,
        motion.frames,
        motion.betas if betas_width in (None, width) else None,
        motion.gender,
        motion.source_root,
        motion.source_trans,
    )
    return _Kept(
        source=motion.source,
        family=motion.family,
        fps=motion.fps,
        num_frames=motion.num_frames,
        samples=motion.samples,
        betas_width=width,
        fields=frozenset(motion.arrays),
        override=motion.override,
    )


def _complete(
    job: SplitJob, motions: list[_Kept], unusable: list[_Unusable], writer: SplitWriter
) -> tuple[dict[str, TensorEntry], dict[str, int], list[RateOverride]]:
    """After the last file: check the split, say what was left out or overridden, and
    complete the fields' files; returns their manifest entries, the fields dropped (with how
    many motions lack each) and the frame-rate overrides applied."""
    split = job.split
    skipped = [u for u in unusable if not u.not_a_motion and not u.too_short]
    too_short = [u for u in unusable if u.too_short]
    if too_short:
        job.log.info(
            f"split {split!r}: {len(too_short)} motions too short to yield a sample "
            f"(listed in the manifest as too_short, with their frame counts)"
        )
    if not motions:
        reasons = "; ".join(f"{u.source.path}: {u.reason}" for u in skipped[:3])
        raise PrepareError(
            f"split {split!r} has no usable motion among {len(job.sources or ())} .npz files"
            + (f" ({len(skipped)} unusable, e.g. {reasons})" if skipped else "")
            + (f" ({len(too_short)} too short to yield a sample)" if too_short else "")
        )
    _check_consistency(split, motions)
    overrides = [m.override for m in motions if m.override]
    for dataset, group in _by_dataset(motions).items():
        fixed = [m.override for m in group if m.override]
        if fixed:
            rates = sorted({f"{o.file_fps:g} -> {o.fps:g} Hz" for o in fixed})
            patterns = sorted({o.pattern for o in fixed})
            job.log.warning(
                f"split {split!r}, dataset {dataset!r}: frame rate overridden for {len(fixed)} "
                f"of {len(group)} files ({', '.join(rates)}; fps_overrides {patterns})"
            )
    present = [name for name in FRAME_FIELDS if all(name in m.fields for m in motions)]
    dropped = {
        name: sum(name not in m.fields for m in motions)
        for name in FRAME_FIELDS
        if FIELDS[name].optional and name not in present and any(name in m.fields for m in motions)
    }
    for name, lacking in dropped.items():
        job.log.warning(
            f"split {split!r}: field {name!r} left out of the split: {lacking} of "
            f"{len(motions)} motion files lack it (a field is kept only when every file has it)"
        )
    present += [name for name in LABEL_FIELDS if all(name in m.fields for m in motions)]
    fields = writer.finish(stage1_fields(present, writer.canonical))
    return fields, dropped, overrides


def run_stage1(job: SplitJob) -> Stage1Record:
    """Read, subsample and save one split into ``job.out``; returns its manifest record.

    Raises:
        AmassFormatError: in strict mode, the first unusable motion file.
        PrepareError: no usable motion in the split, or families/betas that cannot be mixed.
    """
    split, config = job.split, job.config
    if job.amass_dir is None or job.sources is None:
        raise PrepareError(f"split {split!r}: Stage I needs amass_dir and the split's files")
    amass_dir, sources = job.amass_dir, job.sources
    inputs = fingerprint(amass_dir, sources)  # before reading: a file replaced meanwhile is seen
    excluded: list[PathReason] = []
    per_dataset_excluded: Counter[str] = Counter()
    to_read: list[SourceFile] = []
    for source in sources:
        rule = find_exclusion(source.path, config.exclude) if config.exclude else None
        if rule is None:
            to_read.append(source)
        else:
            excluded.append(PathReason(source.path, rule.reason))
            per_dataset_excluded[source.dataset] += 1
    if excluded:
        job.log.info(
            f"split {split!r}: {len(excluded)} files excluded by name "
            f"({dict(per_dataset_excluded)}; listed in the manifest with their reasons)"
        )
    motions: list[_Kept] = []
    unusable: list[_Unusable] = []
    contacts = any(spec.augmentation.from_source for spec in config.augmentations)
    body = job.body_models if contacts else None
    if contacts and body is None:
        raise PrepareError(f"split {split!r}: contacts need the body models; pass body_model_dir")
    results = read_items_in_order(
        functools.partial(_read_files, amass_dir, config=config, body=body),
        to_read,
        config.num_workers,
        shared=SHARED_ARRAYS,
        warn=job.log.warning,
    )
    # each motion's samples are written as it arrives, and its arrays let go
    writer = SplitWriter(job.out, job.final)
    try:
        for result in progress(
            results, config.progress, total=len(to_read), desc=f"Stage I  {split}", unit="file"
        ):
            if isinstance(result, _Motion):
                width = motions[0].betas_width if motions else None
                motions.append(_keep(result, writer, width))
                del result  # the readers' memory of its arrays can go
                continue
            if not result.not_a_motion and not result.too_short:
                if config.strict:
                    results.close()  # stops the readers
                    raise AmassFormatError(amass_dir / result.source.path, result.reason)
                job.log.warning(f"skipped {result.source.path}: {result.reason}")
            unusable.append(result)
        fields, dropped, overrides = _complete(job, motions, unusable, writer)
    finally:
        writer.close()
    skipped = [u for u in unusable if not u.not_a_motion and not u.too_short]
    too_short = [u for u in unusable if u.too_short]
    counts = np.array([m.samples for m in motions])
    per_dataset: Counter[str] = Counter()
    for motion in motions:
        per_dataset[motion.source.dataset] += motion.samples
    job.log.info(
        f"stage I {split}: {int(counts.sum())} samples from {len(motions)} motions "
        f"({len(skipped)} skipped, {len(too_short)} too short, "
        f"{len(unusable) - len(skipped) - len(too_short)} non-motion files)"
    )
    return Stage1Record(
        samples=int(counts.sum()),
        fields=fields,
        datasets=dict(per_dataset),
        dropped_fields=dropped,
        files=[
            MotionEntry(m.source.path, m.source.dataset, m.family, m.fps, m.num_frames, m.samples)
            for m in motions
        ],
        skipped=[PathReason(u.source.path, u.reason) for u in skipped],
        not_motions=[u.source.path for u in unusable if u.not_a_motion],
        too_short=[ShortMotion(u.source.path, u.num_frames, u.reason) for u in too_short],
        excluded=excluded,
        fps_overrides=overrides,
        inputs=inputs,
    )
