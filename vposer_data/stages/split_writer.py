"""Stage I's tensors of one split, written as its motions arrive.

Each motion's kept rows are appended to each field's ``.pt`` file at once (see
:class:`vposer_data.tensorstream.TensorAppender`), with the per-motion fields repeated over its
samples and its provenance, so memory holds one motion (or one block of clips being
canonicalised), not the split. The files are byte for byte what ``torch.save`` of each whole
field writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vposer_data.clips import canonicalize
from vposer_data.fields import BETAS, FRAME_ID, GENDER, ROOT_ORIENT, SEQ_ID, TRANS, made_by
from vposer_data.interrupts import check
from vposer_data.records import TensorEntry
from vposer_data.tensorstream import TensorAppender

__all__ = ["CANON_BLOCK_CLIPS", "SplitWriter"]

#: Clips canonicalised together: enough to keep torch's per-call cost small, few enough that
#: their float64 source rotations and translations stay small (16-frame clips: 6 MB).
#: Canonicalisation is computed clip by clip, so the blocks do not change its bits.
CANON_BLOCK_CLIPS = 1 << 13


class SplitWriter:
    """The fields of one split, appended motion by motion into ``folder/<field>.pt``; errors
    name the files in ``final``, their place once the folder is renamed."""

    def __init__(self, folder: Path, final: Path) -> None:
        self.folder, self.final = folder, final
        self.files: dict[str, TensorAppender] = {}
        self.motions = 0
        self.canonical = False  # whether clips are canonicalised (their fields written)
        self._sources: list[tuple[np.ndarray, np.ndarray]] = []  # clips awaiting canonicalisation
        self._clips = 0

    def _append(self, name: str, rows: np.ndarray) -> None:
        appender = self.files.get(name)
        if appender is None:
            appender = TensorAppender(self.folder / f"{name}.pt", self.final / f"{name}.pt")
            self.files[name] = appender
        appender.append(rows)

    def add(
        self,
        arrays: dict[str, np.ndarray],
        frames: np.ndarray,
        betas: np.ndarray | None,
        gender: int,
        source_root: np.ndarray | None = None,
        source_trans: np.ndarray | None = None,
    ) -> None:
        """Append one motion's samples: ``arrays`` (field -> rows, float32), ``frames`` (its
        frame indices, ``(k,)`` or ``(k, T)``), its ``betas`` (None: left out, the split being
        refused anyway) and ``gender`` code; for clips to canonicalise, their float64 source
        ``root_orient`` and ``trans``, which replace those of ``arrays``."""
        count = int(frames.shape[0])
        canonical = source_root is not None and source_trans is not None
        for name, rows in arrays.items():
            if not (canonical and name in (ROOT_ORIENT, TRANS)):
                self._append(name, rows)
        if betas is not None:
            self._append(BETAS, np.repeat(betas[None, :], count, axis=0))
        self._append(GENDER, np.full(count, gender, np.int8))
        self._append(SEQ_ID, np.full(count, self.motions, np.int32))
        self._append(FRAME_ID, frames.astype(np.int32))
        self.motions += 1
        if canonical:
            assert source_root is not None and source_trans is not None
            self.canonical = True
            self._sources.append((np.array(source_root), np.array(source_trans)))  # copies
            self._clips += count
            if self._clips >= CANON_BLOCK_CLIPS:
                self._canonicalise()

    def _canonicalise(self) -> None:
        """Canonicalise the clips waiting (from the files' own float64 values) and append the
        results: ``root_orient``, ``trans``, ``canon_yaw``, ``canon_offset``, float32."""
        if not self._sources:
            return
        root = torch.from_numpy(np.concatenate([root for root, _ in self._sources]))
        trans = torch.from_numpy(np.concatenate([trans for _, trans in self._sources]))
        self._sources, self._clips = [], 0
        for name, values in zip(
            (ROOT_ORIENT, TRANS, *made_by("canonicalize")),
            canonicalize(root, trans),
            strict=True,
        ):
            self._append(name, values.numpy().astype(np.float32))

    def finish(self, order: Sequence[str]) -> dict[str, TensorEntry]:
        """Complete the files of the fields in ``order`` and remove the others (fields not
        every motion had); returns each field's manifest entry: shape, dtype, bytes, CRC-32."""
        self._canonicalise()
        entries: dict[str, TensorEntry] = {}
        for name in order:
            check("stage1.field")
            appender = self.files.pop(name)
            record = appender.finish()
            shape = list(appender.shape)
            entries[name] = TensorEntry(shape, str(appender.dtype), **record.as_dict())
        for appender in self.files.values():
            appender.close()
            appender.path.unlink(missing_ok=True)
        self.files.clear()
        return entries

    def close(self) -> None:
        """Close every file still open (after an error: the folder is dropped whole)."""
        for appender in self.files.values():
            appender.close()
