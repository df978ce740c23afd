"""Epoch-seeded sampling: the order and every sample's seed are pure functions of (run seed, epoch, index).

Under torchrun every rank computes the same epoch order and takes its contiguous part of each global batch
(:func:`batch_shard`), so the samples of a step, and everything drawn for them, do not depend on the number of ranks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from runtime.distributed import rank_slice
from runtime.seeding import derive_seed


def epoch_permutation(num: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The visiting order of epoch ``epoch`` (identity when not shuffling)."""
    if not shuffle:
        return np.arange(num)
    g = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return torch.randperm(num, generator=g).numpy()


def epoch_steps(num: int, batch_size: int, world_size: int = 1, drop_last: bool = False) -> int:
    """Global steps per epoch: full batches, plus the final partial batch unless ``drop_last`` or it holds fewer
    images than there are ranks (it could not give every rank at least one)."""
    full, rest = divmod(num, batch_size)
    return full + int(rest > 0 and not drop_last and rest >= world_size)


def batch_shard(step: int, num: int, batch_size: int, rank: int = 0, world_size: int = 1) -> tuple[int, int, slice]:
    """Where global batch ``step`` starts in the epoch order, how many images it holds, and this rank's part of it
    (positions within the batch; the final partial batch is split as evenly as the full ones)."""
    start = step * batch_size
    total = min(batch_size, num - start)
    return start, total, rank_slice(total, rank, world_size)


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed)`` over ``indices`` in a per-epoch seeded order, from position ``start``.

    ``sample_seed`` (< 2**32) seeds the sample's NumPy RNG in the dataset, so flips, crops and AugMix draws replay
    exactly on resume, whatever the number of DataLoader workers. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, indices: np.ndarray, seed: int, shuffle: bool = True):
        self.indices, self.seed, self.shuffle = np.asarray(indices), seed, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch; ``start`` skips the first samples (resuming mid-epoch)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return len(self.indices) - self.start

    def order(self) -> np.ndarray:
        """The indices of the current epoch in visiting order."""
        return self.indices[epoch_permutation(len(self.indices), self.seed, self.epoch, self.shuffle)]

    def item(self, index: int) -> tuple[int, int]:
        return int(index), derive_seed(self.seed, self.epoch, int(index)) % 2**32

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        for position in range(self.start, len(order)):
            yield self.item(order[position])


class EpochBatchSampler(Sampler):
    """A DataLoader ``batch_sampler``: this rank's part of every global batch of ``batch_size`` samples, as lists of
    ``(index, sample_seed)`` drawn exactly as :class:`EpochSampler` draws them, from global step ``start_step``.

    With one rank the batches are those of ``DataLoader(batch_size=batch_size, sampler=EpochSampler(...))``.
    """

    def __init__(self, indices: np.ndarray, seed: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        self.items = EpochSampler(indices, seed, shuffle)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.items.set_epoch(epoch)
        self.start_step = start_step

    def steps_per_epoch(self) -> int:
        return epoch_steps(len(self.items.indices), self.batch_size, self.world_size)

    def shard(self, step: int) -> tuple[int, int, slice]:
        return batch_shard(step, len(self.items.indices), self.batch_size, self.rank, self.world_size)

    def __len__(self) -> int:
        return self.steps_per_epoch() - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.items.order()
        for step in range(self.start_step, self.steps_per_epoch()):
            start, total, part = self.shard(step)
            yield [self.items.item(index) for index in order[start:start + total][part]]
