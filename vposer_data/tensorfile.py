"""Saving tensors: ``torch.save`` into a stage's temporary split folder (renamed whole by
:func:`vposer_data.atomic.atomic_dir`), with the size and checksum the manifest records:
SHA-256 for final outputs (what users verify), CRC-32 for intermediates (verified only by a
later run that reuses them, at 14 GB/s instead of 1)."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch

from vposer_data.checksums import crc32
from vposer_data.errors import PrepareError

__all__ = ["Checksum", "FileRecord", "save_field", "save_tensor"]

Checksum = Literal["sha256", "crc32"]


@dataclass(frozen=True)
class FileRecord:
    """Size and checksum (``sha256`` or ``crc32``, hex) of a written file, as the manifest
    stores them."""

    bytes: int
    checksum: Checksum
    value: str

    def as_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, self.checksum: self.value}


class _Crc32:
    """The running CRC-32 of what passes through, with hashlib's ``update``/``hexdigest``."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: memoryview) -> None:
        self.value = crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


class _ChecksummingWriter:
    """A write-only file wrapper that checksums what passes through it. SHA-256 (about 1 GB/s)
    runs on a helper thread, beside the write (both release the GIL); the bytes torch hands
    over are views of its own buffers, so a view outside the tensor being saved is copied
    before ``write`` returns, and the tensor itself outlives the save."""

    def __init__(self, handle: IO[bytes], checksum: Checksum, tensor: torch.Tensor) -> None:
        self.handle = handle
        self.digest: Any = hashlib.sha256() if checksum == "sha256" else _Crc32()
        self.size = 0
        start = tensor.data_ptr()
        self._owned = (start, start + tensor.numel() * tensor.element_size())
        self._hasher = ThreadPoolExecutor(1) if checksum == "sha256" else None
        self._pending: list[Future[None]] = []
        # torch.save turns an exception raised here into a RuntimeError without its cause
        self.error: BaseException | None = None

    def _is_owned(self, view: memoryview) -> bool:
        if view.nbytes == 0:
            return False
        address = np.frombuffer(view, dtype=np.uint8).ctypes.data
        return self._owned[0] <= address and address + view.nbytes <= self._owned[1]

    def write(self, data: bytes) -> int:
        try:
            view = memoryview(data).cast("B")
            self.size += view.nbytes
            if self._hasher is None:
                self.digest.update(view)
            else:
                kept = view if self._is_owned(view) else memoryview(bytes(view))
                self._pending.append(self._hasher.submit(self.digest.update, kept))
            return self.handle.write(view)
        except BaseException as exc:  # OSError, or Ctrl-C arriving during the write
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.handle.flush()

    def hexdigest(self) -> str:
        """The checksum of everything written; waits for the helper thread."""
        for future in self._pending:
            future.result()
        return str(self.digest.hexdigest())

    def close(self) -> None:
        if self._hasher is not None:
            self._hasher.shutdown(wait=True, cancel_futures=True)


def save_tensor(
    path: str | Path,
    tensor: torch.Tensor,
    shown_as: str | Path | None = None,
    checksum: Checksum = "sha256",
) -> FileRecord:
    """``torch.save`` one tensor to ``path``, in a temporary folder that is renamed whole
    (:func:`vposer_data.atomic.atomic_dir`), and return its size and checksum. Not flushed to
    disk: the driver makes a stage's final outputs durable with one barrier per split
    (:func:`vposer_data.atomic.make_durable`), and intermediates are verified when reused.
    The tensor is first made to own exactly its storage, so a view never drags its base array
    into the file. The file is written through a handle, so its bytes do not depend on the
    (temporary) file name. ``shown_as`` is the path an error names; ``checksum`` the one
    the record carries.
    """
    tensor = tensor.contiguous()
    storage_bytes = tensor.untyped_storage().nbytes()
    if tensor.storage_offset() != 0 or storage_bytes != tensor.numel() * tensor.element_size():
        tensor = tensor.clone()
    writer: _ChecksummingWriter | None = None
    try:
        with open(path, "wb") as handle:
            writer = _ChecksummingWriter(handle, checksum, tensor)
            torch.save(tensor, writer)  # type: ignore[arg-type]
            handle.flush()
            value = writer.hexdigest()
    except (OSError, RuntimeError) as exc:  # a full disk, a file-size limit: say which file
        cause = writer.error if writer is not None and writer.error is not None else exc
        if not isinstance(cause, Exception):  # Ctrl-C: an interruption, not a failed write
            raise cause from None
        raise PrepareError(f"could not write {shown_as or path}: {cause}") from exc
    finally:
        if writer is not None:
            writer.close()
    return FileRecord(bytes=writer.size, checksum=checksum, value=value)


def save_field(
    folder: Path, name: str, array: np.ndarray, shown_in: Path, checksum: Checksum = "sha256"
) -> dict[str, Any]:
    """Save one field of a split as ``folder/<name>.pt`` (``folder`` being the temp folder of
    :func:`atomic_dir`, errors naming the file in ``shown_in``, its final place); returns the
    field's manifest entry: shape, dtype, bytes and the checksum."""
    record = save_tensor(
        folder / f"{name}.pt",
        torch.from_numpy(array),
        shown_as=shown_in / f"{name}.pt",
        checksum=checksum,
    )
    return {"shape": list(array.shape), "dtype": str(array.dtype), **record.as_dict()}
