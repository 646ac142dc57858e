"""Stage II: ``stage_I/<split>/*.pt`` -> augmented ``stage_II/<split>.h5``.

The split's rows are cut into batches; a torch ``DataLoader`` with ``num_workers`` processes
augments them in parallel (each batch's random draws seeded from the seed, the pass and the
batch index, so the result does not depend on the worker count).

Uncompressed (the default), each field is one contiguous HDF5 dataset whose space is
allocated when the file is made; the file is then closed and each worker writes its batch's
rows straight to their place in it (``os.pwrite`` into disjoint byte ranges, which HDF5 never
touches again), so the rows never travel back through the DataLoader's pipes. Compressed,
the fields are chunked: with gzip the workers also encode whole chunks (see ``h5chunks``),
and this process puts each piece at its place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vposer_data._version import __version__
from vposer_data.augment.joints import SplitModels
from vposer_data.augment.ops import apply_augmentations
from vposer_data.augment.registry import AugmentSpec, output_fields
from vposer_data.checksums import file_crc32
from vposer_data.config import PrepareConfig
from vposer_data.errors import PrepareError
from vposer_data.fields import BETAS
from vposer_data.fields import field as declared_field
from vposer_data.h5chunks import chunk_rows_for, encode_chunk, plan_rows
from vposer_data.interrupts import check, start_workers
from vposer_data.manifest import STAGE_I
from vposer_data.memory import release_mapped_pages
from vposer_data.progress import progress
from vposer_data.records import Stage2Record, TensorEntry
from vposer_data.rotations import load_rotation_logs
from vposer_data.stages.job import SplitJob
from vposer_data.stages.worker_start import worker_context

__all__ = ["AugmentedBatches", "batch_seed", "run_stage2"]

_CHUNK_CACHE_BYTES = 16 << 20


def batch_seed(seed: int, augment_pass: int, batch: int) -> int:
    """The generator seed of one batch of one pass."""
    digest = hashlib.sha256(f"{seed}:{augment_pass}:{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class FieldLayout:
    """Shape of one row, dtype, and rows per chunk of an output dataset; ``offset`` is where
    a contiguous dataset's data starts in the file, when workers write it directly."""

    row_shape: tuple[int, ...]
    dtype: str
    chunk_rows: int
    offset: int | None = None

    @property
    def row_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize * int(np.prod(self.row_shape, dtype=np.int64))


@dataclass
class Pieces:
    """What one batch contributes: encoded whole chunks and loose rows, per field. Rows are
    numpy arrays, pickled from a DataLoader worker to this process: tensors would travel in
    shared memory, but through torch's file-descriptor server, whose thread prints a
    traceback when Ctrl-C stops the workers."""

    chunks: list[tuple[str, int, bytes]] = field(default_factory=list)
    rows: list[tuple[str, int, np.ndarray]] = field(default_factory=list)
    error: str | None = None  # a direct write that failed: the system's reason


def _pass_through(item: Any) -> Any:
    """The DataLoader's collate: each item already is a whole batch's pieces."""
    return item


class AugmentedBatches(Dataset[Pieces]):
    """Item ``i`` is batch ``i % num_batches`` of pass ``i // num_batches``, augmented (and,
    when ``gzip_level`` is set, encoded into whole HDF5 chunks).

    Holds only paths until first used, so it pickles cheaply into worker processes, where the
    Stage I tensors are memory-mapped (the pages are shared, not copied).
    """

    def __init__(
        self,
        stage1_dir: Path,
        fields: list[str],
        num_rows: int,
        batch_size: int,
        passes: int,
        specs: tuple[AugmentSpec, ...],
        seed: int,
        layouts: dict[str, FieldLayout] | None = None,
        gzip_level: int | None = None,
        fps: float | None = None,
        direct_file: Path | None = None,
        body: SplitModels | None = None,
    ) -> None:
        self.stage1_dir = stage1_dir
        self.fields = fields
        self.num_rows = num_rows
        self.batch_size = batch_size
        self.num_batches = -(-num_rows // batch_size)
        self.passes = passes
        self.specs = specs
        self.seed = seed
        self.layouts = layouts or {}
        self.gzip_level = gzip_level
        self.fps = fps  # the clips' rate (clips only)
        self.body = body  # the split's body models (joints), read by each process when used
        # the HDF5 file workers write rows into (layouts carry the offsets), or None
        self.direct_file = direct_file
        self._tensors: dict[str, torch.Tensor] | None = None
        self._fd: tuple[int, int] | None = None  # (pid, descriptor) of direct_file
        # (pid, field -> address) in the Stage I mappings up to which this process unmapped
        self._released: tuple[int, dict[str, int]] = (0, {})

    def __len__(self) -> int:
        return self.passes * self.num_batches

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tensors"] = None  # each process maps the files itself
        state["_fd"] = None  # and opens the output itself
        state["_released"] = (0, {})
        return state

    def _descriptor(self) -> int:
        """This process's descriptor of ``direct_file`` (a forked worker opens its own)."""
        assert self.direct_file is not None
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.direct_file, os.O_WRONLY))
        return self._fd[1]

    def close(self) -> None:
        """Close this process's descriptor of ``direct_file``, if it opened one (the writer
        does when it augments batches itself, ``num_workers=0``)."""
        if self._fd is not None and self._fd[0] == os.getpid():
            os.close(self._fd[1])
        self._fd = None

    def _write_direct(self, name: str, first_row: int, array: np.ndarray) -> None:
        """Write rows of one field at their place in the contiguous dataset."""
        layout = self.layouts[name]
        assert layout.offset is not None
        position = layout.offset + first_row * layout.row_bytes
        with array.data.cast("B") as data:
            written = 0
            while written < data.nbytes:
                written += os.pwrite(self._descriptor(), data[written:], position + written)

    def _load(self) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            self._tensors = {
                name: torch.load(self.stage1_dir / f"{name}.pt", mmap=True, weights_only=True)
                for name in self.fields
            }
        return self._tensors

    def _release_source(self, rows: slice) -> None:
        """Unmap from this process the Stage I rows up to the end of a batch it has used (the
        page cache keeps them; rows read again, in a later pass, are mapped again): a
        worker's RSS then holds about its batch, not every page of the split it has read (at
        16M raw frames, about 1 GB per worker). Everything before the batch goes, not just its
        own rows: a page straddling two batches would otherwise stay, and the batches between
        this process's are other processes' (unmapping them here is harmless)."""
        pid, released = self._released
        if pid != os.getpid():
            released = {}
            self._released = (os.getpid(), released)
        for name, tensor in self._load().items():
            base = tensor.data_ptr()
            end = base + rows.stop * tensor.stride(0) * tensor.element_size()
            start = released.get(name, base)
            if start > end:  # a new pass starts over
                start = base
            release_mapped_pages(start, end - start)
            released[name] = end

    def augmented(self, augment_pass: int, batch: int, rows: slice) -> dict[str, torch.Tensor]:
        """The augmented rows of one batch (``rows`` within the split)."""
        source = {name: tensor[rows] for name, tensor in self._load().items()}
        generator = torch.Generator().manual_seed(batch_seed(self.seed, augment_pass, batch))
        return apply_augmentations(source, self.specs, generator, fps=self.fps, body=self.body)

    def __getitem__(self, index: int) -> Pieces:
        augment_pass, batch = divmod(index, self.num_batches)
        start = batch * self.batch_size
        stop = min(start + self.batch_size, self.num_rows)
        out = self.augmented(augment_pass, batch, slice(start, stop))
        offset = augment_pass * self.num_rows + start  # first output row of this batch
        total = self.passes * self.num_rows
        pieces = Pieces()
        for name, tensor in out.items():
            array = np.ascontiguousarray(tensor.numpy())
            _check_rows(name, array, self.layouts[name])
            if self.direct_file is not None:
                try:
                    self._write_direct(name, offset, array)
                except OSError as exc:  # a full disk: reported by the writer, naming the file
                    pieces.error = exc.strerror or str(exc)
                    return pieces
                continue
            if self.gzip_level is None:
                pieces.rows.append((name, offset, array))
                continue
            chunk_rows = self.layouts[name].chunk_rows
            chunks, loose = plan_rows(offset, offset + array.shape[0], chunk_rows, total)
            for chunk in chunks:
                lo = chunk * chunk_rows - offset
                block = array[lo : lo + chunk_rows]
                pieces.chunks.append(
                    (name, chunk, encode_chunk(block, chunk_rows, self.gzip_level))
                )
            for lo, hi in loose:
                pieces.rows.append((name, lo, array[lo - offset : hi - offset]))
        self._release_source(slice(start, stop))  # what is still in use is mapped again
        return pieces


def _check_rows(name: str, array: np.ndarray, layout: FieldLayout) -> None:
    """Rows as the vocabulary declares them, or an error: their bytes go to a place sized
    from the declaration."""
    if array.shape[1:] != layout.row_shape or array.dtype != np.dtype(layout.dtype):
        raise PrepareError(
            f"field {name!r}: augmented rows are {array.dtype} {tuple(array.shape[1:])}, the "
            f"vocabulary (vposer_data.fields) declares {layout.dtype} {layout.row_shape}"
        )


def _layouts(
    stage1_fields: dict[str, TensorEntry],
    specs: tuple[AugmentSpec, ...],
    clip_frames: int | None,
    total: int,
    batch_size: int,
    families: tuple[str, ...] = (),
) -> dict[str, FieldLayout]:
    """Output fields, in order, with the shape of a row and the dtype the vocabulary
    (:mod:`vposer_data.fields`) declares; the width of ``betas`` is the Stage I file's, those
    an augmentation decides (``joints``) its own, given the split's ``families``."""
    widths: dict[str, int | None] = {}
    if BETAS in stage1_fields:
        widths[BETAS] = stage1_fields[BETAS].shape[-1]
    for spec in specs:
        if spec.augmentation.widths is not None:
            widths.update(spec.augmentation.widths(dict(spec.params), families))
    layouts = {}
    for name in output_fields(list(stage1_fields), specs):
        declared = declared_field(name)
        row_shape = declared.row_shape(clip_frames, widths.get(name))
        row_bytes = np.dtype(declared.dtype).itemsize * int(np.prod(row_shape, dtype=np.int64))
        layouts[name] = FieldLayout(
            row_shape=row_shape,
            dtype=declared.dtype,
            chunk_rows=chunk_rows_for(row_bytes, batch_size, total),
        )
    return layouts


def _create_datasets(
    h5: h5py.File, layouts: dict[str, FieldLayout], total: int, config: PrepareConfig
) -> dict[str, h5py.Dataset]:
    """One dataset per field: contiguous with its space allocated now (and never filled, as
    every row is written) when uncompressed, so workers can write rows at known offsets;
    chunked with the configured filters otherwise."""
    filters: dict[str, Any] = {}
    if config.hdf5_compression == "gzip":
        level = config.hdf5_compression_level
        filters = {"compression": "gzip", "compression_opts": level, "shuffle": True}
    elif config.hdf5_compression == "lzf":
        filters = {"compression": "lzf", "shuffle": True}
    targets = {}
    for name, layout in layouts.items():
        if config.hdf5_compression == "none":
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            options: dict[str, Any] = {"dcpl": dcpl}
        else:
            options = {"chunks": (layout.chunk_rows, *layout.row_shape), **filters}
        targets[name] = h5.create_dataset(
            name, shape=(total, *layout.row_shape), dtype=layout.dtype, **options
        )
    return targets


def _errno_in(text: str) -> int | None:
    """The error number HDF5 quotes as ``[Errno N]`` in its message, if any."""
    found = re.search(r"\[Errno (\d+)\]", text)
    return int(found.group(1)) if found else None


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed HDF5 write (a full disk, a file-size limit) into an error naming the file:
    h5py reports it as an OSError or RuntimeError without the path."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        reason = str(exc)
        code = getattr(exc, "errno", None) or _errno_in(reason)
        if code and os.strerror(code) not in reason.split("\n", 1)[0]:  # say it up front
            reason = f"{os.strerror(code)}: {reason}"
        raise PrepareError(f"could not write {path}: {reason}") from exc


def run_stage2(job: SplitJob) -> Stage2Record:
    """Augment one split into one HDF5 file, ``job.out``; returns its manifest record."""
    split, config, out_path = job.split, job.config, job.final
    stage1_record = job.stage1_record()
    stage1_dir = job.input_path(STAGE_I)
    num_rows = stage1_record.samples
    # batch_size counts frames: a batch of clips holds batch_size // clip_frames of them, so
    # a batch is about as large in memory for clips as for frames
    batch_rows = config.batch_size
    if config.sampling == "clips" and config.clip_frames:
        batch_rows = max(1, config.batch_size // config.clip_frames)
    # the pose-changing augmentations and the passes apply to the augment_splits only
    passes, specs = config.split_passes(split), config.split_augmentations(split)
    total = num_rows * passes
    gzip = config.hdf5_compression == "gzip"
    body = None
    families = tuple(entry.family for entry in stage1_record.files)
    if any(spec.augmentation.needs_body_model for spec in specs):
        if job.body_models is None:
            raise PrepareError(
                f"split {split!r}: joints need the body models; pass body_model_dir (the folder "
                "this output was prepared with, or a copy of it)"
            )
        body = SplitModels(job.body_models, families)
    dataset = AugmentedBatches(
        stage1_dir,
        list(stage1_record.fields),
        num_rows,
        batch_rows,
        passes,
        specs,
        config.seed,
        gzip_level=config.hdf5_compression_level if gzip else None,
        fps=config.target_fps if config.sampling == "clips" else None,
        body=body,
    )
    clip_frames = config.clip_frames if config.sampling == "clips" else None
    dataset.layouts = _layouts(
        stage1_record.fields, specs, clip_frames, total, batch_rows, families
    )
    # written in place by the workers, where the platform has positioned writes
    direct = config.hdf5_compression == "none" and hasattr(os, "pwrite")
    if config.num_workers and any(s.augmentation.takes_rotation_logs for s in specs):
        load_rotation_logs()  # once here, not once per forked worker
    loader = DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=config.num_workers,
        collate_fn=_pass_through,
        prefetch_factor=2 if config.num_workers else None,
        multiprocessing_context=worker_context() if config.num_workers else None,
    )
    tmp = job.out
    # HDF5 writes only are wrapped (not the loader, whose errors are not about the file)
    with _writing(out_path):
        h5 = h5py.File(tmp, "w", rdcc_nbytes=_CHUNK_CACHE_BYTES)
    try:
        with _writing(out_path):
            h5.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
            h5.attrs["package_version"] = __version__
            h5.attrs["split"] = split
            h5.attrs["augment_passes"] = passes
            h5.attrs["augmentations"] = json.dumps([spec.as_dict() for spec in specs])
            h5.attrs["source_rows"] = num_rows
            targets = _create_datasets(h5, dataset.layouts, total, config)
            if direct:
                # the space is allocated and HDF5 is done with the file: workers fill it
                dataset.layouts = {
                    name: dataclasses.replace(layout, offset=targets[name].id.get_offset())
                    for name, layout in dataset.layouts.items()
                }
                h5.close()
                dataset.direct_file = tmp
        for pieces in progress(
            start_workers(loader),
            config.progress,
            total=len(dataset),
            desc=f"Stage II {split}",
            unit="batch",
        ):
            if pieces.error is not None:
                raise PrepareError(f"could not write {out_path}: {pieces.error}")
            check("stage2.batch")
            with _writing(out_path):
                for name, chunk, payload in pieces.chunks:
                    origin = (chunk * dataset.layouts[name].chunk_rows,) + (0,) * len(
                        dataset.layouts[name].row_shape
                    )
                    targets[name].id.write_direct_chunk(origin, payload)
                for name, start, rows in pieces.rows:
                    targets[name][start : start + rows.shape[0]] = rows
    finally:
        dataset.close()
        with _writing(out_path):
            h5.close()  # flushes the chunk cache: a full disk may show only here
    shapes = {
        name: TensorEntry([total, *layout.row_shape], layout.dtype)
        for name, layout in dataset.layouts.items()
    }
    job.log.info(
        f"stage II {split}: {total} rows ({passes} pass(es)), augmentations "
        f"{[spec.name for spec in specs]}, fields {list(shapes)}"
    )
    return Stage2Record(
        samples=total,
        file=out_path.name,
        bytes=tmp.stat().st_size,
        crc32=file_crc32(tmp),  # verified when a later run reuses the file
        fields=shapes,
    )
