"""Epoch-seeded sampling: the order and every sample's seed are pure functions of (run seed, epoch, index)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from runtime.seeding import derive_seed


def epoch_permutation(num: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The visiting order of epoch ``epoch`` (identity when not shuffling)."""
    if not shuffle:
        return np.arange(num)
    g = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return torch.randperm(num, generator=g).numpy()


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

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.indices[epoch_permutation(len(self.indices), self.seed, self.epoch, self.shuffle)]
        for position in range(self.start, len(order)):
            index = int(order[position])
            yield index, derive_seed(self.seed, self.epoch, index) % 2**32
