"""Stage I's fields written motion by motion are the files ``torch.save`` makes of the whole
split's fields (the concatenated rows, the per-motion values repeated, the clips canonicalised
in one batch), with canonicalisation in blocks of clips that give the same bits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from vposer_data.clips import canonicalize
from vposer_data.stages.split_writer import CANON_BLOCK_CLIPS, SplitWriter


def _saved(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(np.ascontiguousarray(array)), buffer)
    return buffer.getvalue()


def _motions(count: int, clip_frames: int | None, seed: int = 0) -> list[dict]:
    """Motions of random lengths: float32 fields, frame indices, betas and gender; for clips,
    float64 source rotations (some near the identity, some half-turns) and translations."""
    rng = np.random.default_rng(seed)
    motions = []
    for index in range(count):
        k = int(rng.integers(1, 700))
        row = (k,) if clip_frames is None else (k, clip_frames)
        root = rng.standard_normal((*row, 3)) * 1.5
        root[::5] *= 1e-6
        root[1::7] *= np.pi / np.linalg.norm(root[1::7], axis=-1, keepdims=True)
        motion = {
            "arrays": {
                "root_orient": root.astype(np.float32),
                "pose_body": rng.standard_normal((*row, 63)).astype(np.float32),
                "trans": (rng.standard_normal((*row, 3)) * 3).astype(np.float32),
            },
            "frames": np.sort(rng.integers(0, 5000, row), axis=0).astype(np.int64),
            "betas": rng.standard_normal(16).astype(np.float32),
            "gender": int(rng.integers(-1, 2)),
            "source_root": root,
            "source_trans": rng.standard_normal((*row, 3)) * 3,
        }
        if index % 3:  # an optional field most motions have
            motion["arrays"]["dmpls"] = rng.standard_normal((*row, 8)).astype(np.float32)
        motions.append(motion)
    return motions


def _in_memory(motions: list[dict], canonical: bool) -> dict[str, np.ndarray]:
    """The split's fields computed whole, as Stage I did before it wrote them as they came."""
    counts = [m["frames"].shape[0] for m in motions]
    fields = {
        name: np.concatenate([m["arrays"][name] for m in motions])
        for name in ("root_orient", "pose_body", "trans")
    }
    if canonical:
        root = torch.from_numpy(np.concatenate([m["source_root"] for m in motions]))
        trans = torch.from_numpy(np.concatenate([m["source_trans"] for m in motions]))
        names = ("root_orient", "trans", "canon_yaw", "canon_offset")
        for name, value in zip(names, canonicalize(root, trans), strict=True):
            fields[name] = value.numpy().astype(np.float32)
    fields["betas"] = np.repeat(np.stack([m["betas"] for m in motions]), counts, axis=0)
    fields["gender"] = np.repeat(np.array([m["gender"] for m in motions], np.int8), counts)
    fields["seq_id"] = np.repeat(np.arange(len(motions), dtype=np.int32), counts)
    fields["frame_id"] = np.concatenate([m["frames"] for m in motions]).astype(np.int32)
    return fields


@pytest.mark.parametrize("clip_frames", [None, 4], ids=["frames", "canonical-clips"])
def test_fields_written_as_motions_come_are_the_whole_splits(
    tmp_path: Path, clip_frames: int | None
) -> None:
    motions = _motions(60, clip_frames)
    canonical = clip_frames is not None
    assert sum(m["frames"].shape[0] for m in motions) > 2 * CANON_BLOCK_CLIPS  # several blocks
    writer = SplitWriter(tmp_path, Path("/final"))
    added = 0
    for m in motions:
        writer.add(
            m["arrays"],
            m["frames"],
            m["betas"],
            m["gender"],
            m["source_root"] if canonical else None,
            m["source_trans"] if canonical else None,
        )
        added += m["frames"].shape[0]
        written = writer.files["pose_body"].rows
        if canonical:  # clips wait for canonicalisation a block at a time, not to the end
            written = writer.files["canon_yaw"].rows if "canon_yaw" in writer.files else 0
        assert added - written < CANON_BLOCK_CLIPS
    expected = _in_memory(motions, canonical)
    order = list(expected)
    entries = writer.finish(order)
    assert list(entries) == order
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.pt" for n in order)
    for name, array in expected.items():
        assert (tmp_path / f"{name}.pt").read_bytes() == _saved(array), name
        assert entries[name].shape == list(array.shape)
        assert entries[name].dtype == str(array.dtype)


def test_betas_left_out_are_not_written(tmp_path: Path) -> None:
    """A motion whose betas the split cannot take (another width: the split is refused after
    the last file) adds none."""
    motions = _motions(3, None)
    writer = SplitWriter(tmp_path, Path("/final"))
    for index, m in enumerate(motions):
        writer.add(m["arrays"], m["frames"], None if index == 1 else m["betas"], m["gender"])
    assert (
        writer.files["betas"].rows == motions[0]["frames"].shape[0] + motions[2]["frames"].shape[0]
    )
    writer.close()
