"""Batch samplers and the training DataLoader: whole batches of indices, fetched in one go.

A DataLoader with ``batch_size=512`` asks its sampler for 512 Python ints per batch, builds a
list and hands it to the dataset. With :class:`BatchIndexSampler` as its ``sampler`` and
``batch_size=None`` it gets one int64 array per batch, a slice of one permutation made per
epoch, and the dataset fetches the batch with one ``index_select`` per field.
:class:`BatchDataLoader` goes one step further in the main process (``num_workers=0``): it
iterates the sampler itself, without DataLoader's per-batch machinery, which otherwise costs
about as much as the fetch (see ``benchmarks/bench_loader.py``).

The order is a function of ``(seed, epoch)`` alone, so every rank of a DDP job draws the same
permutation and takes its own stride of it; ``set_epoch`` (called by Lightning before each
epoch) selects the epoch, and without it each new iteration moves to the next epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

__all__ = ["BatchDataLoader", "BatchIndexSampler", "DistributedBatchIndexSampler"]


class BatchIndexSampler(Sampler[np.ndarray]):
    """Batches of indices into a dataset of ``size`` rows, as int64 numpy arrays.

    Args:
        size: rows in the dataset.
        batch_size: indices per batch.
        shuffle: a permutation seeded by ``seed + epoch`` (else the rows in order).
        drop_last: leave out the last partial batch.
        seed: the seed of the permutations.
        num_replicas, rank: under DDP, the number of processes and this one's rank: the first
            ``size - size % num_replicas`` rows of the permutation are dealt out
            in turn, so the shares are disjoint and of equal size (nothing is repeated).
        even: with ``False`` (for evaluation), every row is served once: rank ``r`` takes the
            contiguous block ``[r * size // num_replicas, (r + 1) * size // num_replicas)``
            of the order, so shares are disjoint, cover the split, and differ by at most one.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
    ) -> None:
        if size < 0 or batch_size < 1:
            raise ValueError(
                f"size={size!r}, batch_size={batch_size!r}: expected size >= 0 and batch_size >= 1"
            )
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"num_replicas={num_replicas!r}, rank={rank!r}: expected 0 <= rank < num_replicas"
            )
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.even = even
        self._block = (rank * size // num_replicas, (rank + 1) * size // num_replicas)
        #: rows this rank gets per epoch (``num_samples`` as DistributedSampler names it)
        share = size // num_replicas if even else self._block[1] - self._block[0]
        self.share = self.num_samples = share

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` on the next iteration."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.share // self.batch_size
        return -(-self.share // self.batch_size)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's rows for ``epoch``, in the order they are served."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.size, generator=generator).numpy()
        else:
            order = np.arange(self.size, dtype=np.int64)
        if self.num_replicas > 1 and not self.even:
            order = order[self._block[0] : self._block[1]]
        elif self.num_replicas > 1:
            order = order[: self.share * self.num_replicas][self.rank :: self.num_replicas]
        return order

    def __iter__(self) -> Iterator[np.ndarray]:
        order = self.indices(self.epoch)
        self.epoch += 1  # without set_epoch, the next iteration is the next epoch
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size]


class DistributedBatchIndexSampler(BatchIndexSampler, DistributedSampler):
    """A :class:`BatchIndexSampler` for one DDP rank, typed as a ``DistributedSampler`` so that
    Lightning keeps it (and calls its ``set_epoch``) instead of wrapping it in its own."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        num_replicas: int,
        rank: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        even: bool = True,
    ) -> None:
        # DistributedSampler.__init__ is not called: it needs the dataset and process group,
        # and every attribute it would set is set here.
        BatchIndexSampler.__init__(
            self,
            size,
            batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            even=even,
        )
        self.total_size = self.share * num_replicas if even else size


class BatchDataLoader(DataLoader):
    """A DataLoader whose ``sampler`` is a :class:`BatchIndexSampler` (``batch_size=None``).

    With ``num_workers=0``, iterating it yields ``collate_fn(dataset.__getitems__(indices))``
    for each batch of the sampler, pinned when ``pin_memory`` is set, and nothing else: no
    profiler scope, fetcher or bookkeeping per batch. Otherwise (worker processes, or a sampler
    that was replaced by one of single indices) it is a plain DataLoader.
    """

    def _fast(self) -> bool:
        return (
            self.num_workers == 0
            and self.batch_size is None
            and isinstance(self.sampler, BatchIndexSampler)
            and hasattr(self.dataset, "__getitems__")
        )

    def __iter__(self) -> Any:
        if not self._fast():
            return super().__iter__()
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        fetch = self.dataset.__getitems__  # type: ignore[attr-defined]
        collate = self.collate_fn
        pin = self.pin_memory and torch.cuda.is_available()
        for indices in self.sampler:
            batch = collate(fetch(indices))
            if pin:
                batch = {
                    k: v.pin_memory() if isinstance(v, torch.Tensor) else v
                    for k, v in batch.items()
                }
            yield batch
