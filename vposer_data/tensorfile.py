"""Saving tensors: ``torch.save`` into a stage's temporary split folder (renamed whole by
:func:`vposer_data.atomic.atomic_dir`), with the size and SHA-256 the manifest records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from vposer_data.errors import PrepareError

__all__ = ["FileRecord", "save_field", "save_tensor"]


@dataclass(frozen=True)
class FileRecord:
    """Size and SHA-256 of a written file, as stored in the manifest."""

    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "sha256": self.sha256}


class _HashingWriter:
    """A write-only file wrapper that hashes what passes through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        # torch.save turns an exception raised here into a RuntimeError without its cause
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            view = memoryview(data)
            self.digest.update(view)
            self.size += view.nbytes
            return self.handle.write(view)
        except BaseException as exc:  # OSError, or Ctrl-C arriving during the write
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_tensor(
    path: str | Path, tensor: torch.Tensor, shown_as: str | Path | None = None
) -> FileRecord:
    """``torch.save`` one tensor to ``path``, in a temporary folder that is renamed whole
    (:func:`vposer_data.atomic.atomic_dir`), and return its size and checksum. Not flushed to
    disk: the driver makes a stage's final outputs durable with one barrier per split
    (:func:`vposer_data.atomic.make_durable`), and intermediates are verified when reused.
    The tensor is first made to own exactly its storage, so a view never drags its base array
    into the file. The file is written through a handle, so its bytes do not depend on the
    (temporary) file name. ``shown_as`` is the path an error names.
    """
    tensor = tensor.contiguous()
    storage_bytes = tensor.untyped_storage().nbytes()
    if tensor.storage_offset() != 0 or storage_bytes != tensor.numel() * tensor.element_size():
        tensor = tensor.clone()
    writer: _HashingWriter | None = None
    try:
        with open(path, "wb") as handle:
            writer = _HashingWriter(handle)
            torch.save(tensor, writer)  # type: ignore[arg-type]
            handle.flush()
    except (OSError, RuntimeError) as exc:  # a full disk, a file-size limit: say which file
        cause = writer.error if writer is not None and writer.error is not None else exc
        if not isinstance(cause, Exception):  # Ctrl-C: an interruption, not a failed write
            raise cause from None
        raise PrepareError(f"could not write {shown_as or path}: {cause}") from exc
    assert writer is not None
    return FileRecord(bytes=writer.size, sha256=writer.digest.hexdigest())


def save_field(folder: Path, name: str, array: np.ndarray, shown_in: Path) -> dict[str, Any]:
    """Save one field of a split as ``folder/<name>.pt`` (``folder`` being the temp folder of
    :func:`atomic_dir`, errors naming the file in ``shown_in``, its final place); returns the
    field's manifest entry: shape, dtype, bytes, sha256."""
    record = save_tensor(
        folder / f"{name}.pt",
        torch.from_numpy(array),
        shown_as=shown_in / f"{name}.pt",
    )
    return {"shape": list(array.shape), "dtype": str(array.dtype), **record.as_dict()}
