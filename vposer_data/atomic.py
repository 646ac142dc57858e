"""Writes that either complete or leave nothing that looks complete.

Every output is written under a temporary name beside its target (``.<name>.tmp-<pid>``),
flushed to disk, then renamed into place. A run killed half-way leaves only temp files, which
the next run (holding the lock) deletes.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from vposer_data.errors import PrepareError

__all__ = [
    "FileRecord",
    "atomic_dir",
    "atomic_path",
    "atomic_write_text",
    "file_sha256",
    "release_free_memory",
    "remove_temp_files",
    "save_field",
    "save_tensor",
]

TEMP_MARK = ".tmp-"


@dataclass(frozen=True)
class FileRecord:
    """Size and SHA-256 of a written file, as stored in the manifest."""

    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "sha256": self.sha256}


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``, on failure
    removed."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # a full disk, a file-size limit: say which file
        raise PrepareError(f"could not write {path}: {exc}") from exc


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
    """``torch.save`` one tensor atomically and return its size and checksum.

    The tensor is first made to own exactly its storage, so a view never drags its base
    array into the file. The file is written through a handle, so its bytes do not depend on
    the (temporary) file name. ``shown_as`` is the path an error names, when ``path`` lies in
    a temporary folder.
    """
    tensor = tensor.contiguous()
    storage_bytes = tensor.untyped_storage().nbytes()
    if tensor.storage_offset() != 0 or storage_bytes != tensor.numel() * tensor.element_size():
        tensor = tensor.clone()
    writer: _HashingWriter | None = None
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            writer = _HashingWriter(handle)
            torch.save(tensor, writer)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
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
        folder / f"{name}.pt", torch.from_numpy(array), shown_as=shown_in / f"{name}.pt"
    )
    return {"shape": list(array.shape), "dtype": str(array.dtype), **record.as_dict()}


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces ``path``, on failure it is
    removed. A folder of ``*.pt`` is thus either whole or absent, even for loaders that only
    glob it."""
    path = Path(path)
    tmp = _temp_name(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)  # an unrecorded earlier attempt
        os.rename(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_temp_files(root: str | Path) -> list[tuple[str, Path]]:
    """Delete temp files and folders left below ``root`` by killed runs (call only while
    holding the lock); returns ("file" or "folder", path) for each."""
    removed: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            if name.startswith(".") and TEMP_MARK in name:
                shutil.rmtree(Path(dirpath) / name, ignore_errors=True)
                dirnames.remove(name)
                removed.append(("folder", Path(dirpath) / name))
        for name in filenames:
            if name.startswith(".") and TEMP_MARK in name:
                path = Path(dirpath) / name
                path.unlink(missing_ok=True)
                removed.append(("file", path))
    return removed


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS. glibc keeps them after large frees (notably from
    reader threads' arenas), which would make each stage's peak the floor of the next."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)
