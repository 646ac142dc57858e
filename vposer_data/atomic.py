"""Writes that either complete or leave nothing that looks complete.

Every output is written under a temporary name beside its target (``.<name>.tmp-<pid>``),
flushed to disk, then renamed into place. A run killed half-way leaves only temp files, which
the next run (holding the lock) deletes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from vposer_data.errors import PrepareError
from vposer_data.interrupts import check

__all__ = [
    "TEMP_MARK",
    "EarlyFlush",
    "atomic_dir",
    "atomic_path",
    "atomic_write_text",
    "make_durable",
    "remove_temp_files",
]

TEMP_MARK = ".tmp-"


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def _fsync_quietly(path: Path) -> None:
    """Flush a folder (its entries) or a file to disk, where the system allows it; a failure
    is not reported here (a folder that cannot be flushed on some file systems, or a file
    whose failure the barrier, :func:`make_durable`, reports when it flushes it again)."""
    try:
        fd = os.open(path, os.O_RDONLY)
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
        _fsync_quietly(path.parent)
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
        _fsync_quietly(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def make_durable(path: str | Path, shown_as: str | Path | None = None) -> None:
    """The barrier before a split is recorded: flush a file, or every file of a folder and
    then the folder, to disk. Writes are left to the page cache until then, so the disk works
    through earlier files while later ones are computed. ``shown_as``: the final place of
    ``path``, which errors name."""
    path = Path(path)
    shown = Path(shown_as) if shown_as is not None else path
    is_dir = path.is_dir()
    files = sorted(p for p in path.iterdir() if p.is_file()) if is_dir else [path]
    for file in files:
        check("durable.file")
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError as exc:  # a full disk can surface only now
            named = shown / file.name if is_dir else shown
            raise PrepareError(f"could not write {named}: {exc}") from exc
        finally:
            os.close(fd)
    if is_dir:
        _fsync_quietly(path)


class EarlyFlush:
    """Starts flushing finished files to disk on a helper thread while later ones are still
    being computed, so that the barrier (:func:`make_durable`), which flushes every file
    again and reports any failure, finds little left to wait for. Failures here are left to
    the barrier to find and report."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1)

    def submit(self, path: str | Path) -> None:
        self._thread.submit(_fsync_quietly, Path(path))

    def __enter__(self) -> EarlyFlush:
        return self

    def __exit__(self, *exc: object) -> None:
        # on an error or Ctrl-C, files not yet started are not worth flushing
        self._thread.shutdown(wait=True, cancel_futures=exc[0] is not None)


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
