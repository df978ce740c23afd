"""A device-resident CIFAR-sized dataset: uint8 images live on the device (150 MB for CIFAR on a GPU) and every
epoch is permuted, padded-cropped and flipped there in whole batches. No DataLoader, no per-image Python
(the KellerJordan/cifar10-airbench approach).

Randomness is a pure function of (seed, epoch, step), so a run resumed at any step replays exactly; under torchrun
each rank takes its part of every global batch and of the draws made for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from loaders.sampling import batch_shard, epoch_permutation, epoch_steps
from runtime.seeding import derive_seed


def random_flip_pad_crop(images: Tensor, padding: int, generator: torch.Generator | None = None,
                         flip: bool = True) -> Tensor:
    """Per-sample horizontal flip (p = 0.5), then a random crop of the zero-padded image back to its size.

    Matches RandomHorizontalFlip + RandomCrop(S, padding) of the official CIFAR transform (docs/augmix.md §5).

    Args:
        images: (B, C, H, W) any dtype, any device.
        padding: zero padding on every side; offsets are uniform in 0..2*padding per axis.
        generator: on the images' device.

    Returns:
        (B, C, H, W), same dtype and device.
    """
    flips, offsets = flip_crop_draws(images.shape[0], padding, generator, images.device, flip)
    return flip_pad_crop(images, flips, offsets, padding)


def flip_crop_draws(batch: int, padding: int, generator: torch.Generator | None = None,
                    device: torch.device | None = None, flip: bool = True) -> tuple[Tensor | None, Tensor | None]:
    """The random part of :func:`random_flip_pad_crop` for ``batch`` samples: flips (B,) bool (None without
    flipping) and crop offsets (B, 2) int64 (None without padding), drawn in that order."""
    flips = torch.rand(batch, generator=generator, device=device) < 0.5 if flip else None
    offsets = torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator, device=device) if padding else None
    return flips, offsets


def flip_pad_crop(images: Tensor, flips: Tensor | None, offsets: Tensor | None, padding: int) -> Tensor:
    """Apply drawn flips and crop offsets (see :func:`flip_crop_draws`) to (B, C, H, W) images."""
    b, _, h, w = images.shape
    device = images.device
    if flips is not None:
        images = torch.where(flips[:, None, None, None], images.flip(-1), images)
    if offsets is None:
        return images
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=device)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=device)  # (B, W)
    batch = torch.arange(b, device=device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


class DeviceLoader:
    """Batches of ``(uint8 images (B, 3, H, W), labels (B,))`` from tensors resident on one device.

    Args:
        images: (N, 3, H, W) uint8 on the target device.
        labels: (N,) int64 on the same device.
        batch_size: images per global batch (all ranks together); the last batch may be smaller unless
            ``drop_last``.
        seed: run seed; epoch order and crops derive from (seed, epoch, step).
        train: shuffle + flip/crop when True; fixed order, untouched images when False.
        padding: crop padding for training (4 for CIFAR).
        rank, world_size: under torchrun each rank yields its part of every global batch (``batch_shard``); flips
            and crops are drawn for the whole global batch and sliced, so every image gets the same draw whatever
            the number of ranks.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, seed: int = 0, train: bool = True,
                 padding: int = 4, drop_last: bool = False, rank: int = 0, world_size: int = 1):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"DeviceLoader expects (N, 3, H, W) uint8 images, got {tuple(images.shape)} "
                             f"{images.dtype}")
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.train = batch_size, seed, train
        self.padding, self.drop_last = padding, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_step = 0, 0
        self.generator = torch.Generator(device=images.device)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def steps_per_epoch(self) -> int:
        return epoch_steps(len(self.images), self.batch_size, self.world_size, self.drop_last)

    def shard(self, step: int) -> tuple[int, int, slice]:
        """(start in the epoch order, global batch size, this rank's positions in the batch) of ``step``."""
        return batch_shard(step, len(self.images), self.batch_size, self.rank, self.world_size)

    def __len__(self) -> int:
        return self.steps_per_epoch() - self.start_step

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = epoch_permutation(len(self.images), self.seed, self.epoch, shuffle=self.train)
        order = torch.from_numpy(np.ascontiguousarray(order)).to(self.images.device)
        for step in range(self.start_step, self.steps_per_epoch()):
            start, total, part = self.shard(step)
            idx = order[start:start + total][part]
            images, labels = self.images[idx], self.labels[idx]
            if self.train:
                self.generator.manual_seed(derive_seed(self.seed, self.epoch, step, 0))
                flips, offsets = flip_crop_draws(total, self.padding, self.generator, images.device)
                images = flip_pad_crop(images, flips[part], offsets[part] if offsets is not None else None,
                                       self.padding)
            yield images, labels
