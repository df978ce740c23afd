"""A device-resident CIFAR-sized dataset: uint8 images live on the device (150 MB for CIFAR on a GPU) and every
epoch is permuted, padded-cropped and flipped there in whole batches. No DataLoader, no per-image Python
(the KellerJordan/cifar10-airbench approach).

Randomness is a pure function of (seed, epoch, step), so a run resumed at any step replays exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from loaders.sampling import epoch_permutation
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
    b, _, h, w = images.shape
    device = images.device
    if flip:
        flips = torch.rand(b, generator=generator, device=device) < 0.5
        images = torch.where(flips[:, None, None, None], images.flip(-1), images)
    if padding == 0:
        return images
    offsets = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator, device=device)
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
        batch_size: images per batch; the last batch may be smaller unless ``drop_last``.
        seed: run seed; epoch order and crops derive from (seed, epoch, step).
        train: shuffle + flip/crop when True; fixed order, untouched images when False.
        padding: crop padding for training (4 for CIFAR).
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, seed: int = 0, train: bool = True,
                 padding: int = 4, drop_last: bool = False):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"DeviceLoader expects (N, 3, H, W) uint8 images, got {tuple(images.shape)} "
                             f"{images.dtype}")
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.train = batch_size, seed, train
        self.padding, self.drop_last = padding, drop_last
        self.epoch, self.start_step = 0, 0
        self.generator = torch.Generator(device=images.device)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def steps_per_epoch(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return self.steps_per_epoch() - self.start_step

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = epoch_permutation(len(self.images), self.seed, self.epoch, shuffle=self.train)
        order = torch.from_numpy(np.ascontiguousarray(order)).to(self.images.device)
        for step in range(self.start_step, self.steps_per_epoch()):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            images, labels = self.images[idx], self.labels[idx]
            if self.train:
                self.generator.manual_seed(derive_seed(self.seed, self.epoch, step, 0))
                images = random_flip_pad_crop(images, self.padding, self.generator)
            yield images, labels
