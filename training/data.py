"""Build the training, validation and test batches a run iterates, for both AugMix backends.

tensor backend: loaders yield ``(uint8 images (B, 3, H, W), labels)`` (flipped/cropped) and AugMix runs on the
device inside the step; CIFAR-sized data stays resident on the device (loaders/device.py).
pil backend: DataLoader workers run the per-image reference and yield normalised float views.
Every random draw derives from (seed, epoch, index or step), so runs resume bit-identically.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from loaders.cifar import CIFAR_NUM_CLASSES, load_cifar
from loaders.device import DeviceLoader
from loaders.digits import load_digits
from loaders.imagefolder import ArrayPIL, ImageFolderPIL, SeededUint8
from loaders.sampling import EpochBatchSampler
from loaders.transforms import FlipPadCrop, RandomResizedCropFlip, ResizeCenterCrop
from models.weights import CIFAR_NORMALIZATION, IMAGENET_NORMALIZATION
from runtime.distributed import rank_slice
from runtime.files import data_root
from runtime.seeding import derive_seed

VAL_SPLIT_SEED = 0  # the held-out split is the same for every run seed


@dataclass
class TrainData:
    train: Any                      # has set_epoch(epoch, start_step), steps_per_epoch(), iterates batches
    test: Any                       # iterable of (uint8 images, labels) batches
    val: Any | None
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    preview: Tensor                 # (k, 3, H, W) uint8 training images for the TensorBoard grid
    description: str


class ArrayBatches:
    """Fixed-order batches of ``(uint8 images, labels)`` from tensors (resident or on the CPU); under torchrun each
    rank iterates its contiguous share of the images (``rank_slice``), and the caller sums counts over ranks."""

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, rank: int = 0, world_size: int = 1):
        part = rank_slice(len(images), rank, world_size)
        self.images, self.labels, self.batch_size = images[part], labels[part], batch_size

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.images), self.batch_size):
            yield self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]


class SampledLoader:
    """A DataLoader over ``dataset`` whose batches, order and per-sample seeds come from an
    :class:`EpochBatchSampler`: ``batch_size`` is the global batch, and each rank loads its part of it."""

    def __init__(self, dataset: Dataset, indices: np.ndarray, batch_size: int, seed: int, num_workers: int,
                 pin_memory: bool, rank: int = 0, world_size: int = 1):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.sampler = EpochBatchSampler(indices, seed, batch_size, rank, world_size)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.sampler.set_epoch(epoch, start_step)

    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch()

    def shard(self, step: int) -> tuple[int, int, slice]:
        return self.sampler.shard(step)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        # The loader's own generator keeps DataLoader from drawing its base seed from the global torch RNG.
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.sampler.items.epoch, 7))
        return iter(DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=self.num_workers,
                               pin_memory=self.pin_memory, generator=generator, persistent_workers=False))


def split_indices(num: int, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) from a fixed permutation (seed independent of the run seed)."""
    if val_size >= num:
        raise ValueError(f"data.val_size={val_size} leaves no training images (the training split has {num})")
    order = np.random.default_rng(VAL_SPLIT_SEED).permutation(num)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


def normalization(dataset: str, mean: list[float] | None, std: list[float] | None) -> tuple[tuple, tuple]:
    default = IMAGENET_NORMALIZATION if dataset == "imagenet" else CIFAR_NORMALIZATION  # digits: as CIFAR
    return tuple(mean) if mean else default[0], tuple(std) if std else default[1]


def build_data(cfg, device: torch.device, augmix_pil: Any | None, rank: int = 0, world_size: int = 1) -> TrainData:
    """Training/validation/test batches for ``cfg`` (a RunConfig). ``augmix_pil`` is the PIL AugMix callable for
    the pil backend (None for the tensor backend or the standard baseline). Under torchrun (``world_size`` > 1)
    every loader yields only this rank's share: its part of each global training batch, a slice of val/test."""
    d, a, t = cfg.data, cfg.augment, cfg.train
    root = data_root(d.root)
    mean, std = normalization(d.dataset, d.mean, d.std)
    if d.dataset == "imagenet":
        return _build_imagefolder(cfg, root, device, augmix_pil, mean, std, rank, world_size)
    if d.dataset == "digits":
        (train_x, train_y), (test_x, test_y) = load_digits(True), load_digits(False)
        num_classes, where = 10, "scikit-learn digits (32x32)"
    else:
        train_x, train_y = load_cifar(root, d.dataset, train=True, download=d.download)
        test_x, test_y = load_cifar(root, d.dataset, train=False)
        num_classes, where = CIFAR_NUM_CLASSES[d.dataset], str(root)
    if d.limit_train:
        train_x, train_y = train_x[: d.limit_train], train_y[: d.limit_train]
    if d.limit_test:
        test_x, test_y = test_x[: d.limit_test], test_y[: d.limit_test]
    train_idx, val_idx = split_indices(len(train_x), d.val_size) if d.val_size else (np.arange(len(train_x)), None)
    if d.image_size != 32:
        raise ValueError(f"data.image_size={d.image_size}: {d.dataset} images are 32x32 (only imagenet crops to size)")
    resident = a.backend == "tensor" and d.resident != "off"  # CIFAR-sized uint8 data fits any device
    to_chw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # (N,H,W,3) -> (N,3,H,W)
    store = device if resident else torch.device("cpu")
    eval_set = lambda idx, xs, ys: ArrayBatches(to_chw(xs[idx]).to(store), torch.from_numpy(ys[idx]).to(store),
                                                t.test_batch_size, rank, world_size)
    test = eval_set(slice(None), test_x, test_y)
    val = eval_set(val_idx, train_x, train_y) if val_idx is not None else None
    if resident:
        train = DeviceLoader(to_chw(train_x[train_idx]).to(device), torch.from_numpy(train_y[train_idx]).to(device),
                             t.batch_size, seed=t.seed, train=True, padding=4, rank=rank, world_size=world_size)
        how = f"resident on {device}, batched flip/crop"
    else:
        base = ArrayPIL(train_x, train_y)
        dataset = _train_dataset(cfg, base, FlipPadCrop(32, 4), augmix_pil, mean, std)
        train = SampledLoader(dataset, train_idx, t.batch_size, t.seed, d.num_workers, device.type == "cuda", rank,
                              world_size)
        how = f"DataLoader with {d.num_workers} workers, {a.backend} backend"
    preview = to_chw(train_x[train_idx[: max(t.image_grid, 1)]])
    text = (f"{d.dataset}: {len(train_idx)} train / {0 if val_idx is None else len(val_idx)} val / {len(test_x)} test "
            f"images from {where}; {how}")
    return TrainData(train, test, val, num_classes, mean, std, 32, preview, text)


def _train_dataset(cfg, base: Dataset, base_transform, augmix_pil, mean, std) -> Dataset:
    if cfg.augment.backend == "pil":
        from augment.pil_reference import AugMixDataset

        return AugMixDataset(base, base_transform, augmix_pil, mean, std, jsd=cfg.loss.jsd)
    return SeededUint8(base, base_transform)


def _build_imagefolder(cfg, root: Path, device: torch.device, augmix_pil, mean, std, rank: int,
                       world_size: int) -> TrainData:
    d, t = cfg.data, cfg.train
    folder = root if (root / "train").is_dir() else root / "imagenet"
    train_base, test_base = ImageFolderPIL(folder / "train"), ImageFolderPIL(folder / "val")
    if train_base.classes != test_base.classes:
        raise ValueError(f"{folder}: train/ and val/ hold different class folders "
                         f"({len(train_base.classes)} vs {len(test_base.classes)})")
    n = min(len(train_base), d.limit_train) if d.limit_train else len(train_base)
    train_idx, val_idx = split_indices(n, d.val_size) if d.val_size else (np.arange(n), None)
    pin = device.type == "cuda"
    dataset = _train_dataset(cfg, train_base, RandomResizedCropFlip(d.image_size), augmix_pil, mean, std)
    train = SampledLoader(dataset, train_idx, t.batch_size, t.seed, d.num_workers, pin, rank, world_size)
    resize = int(round(d.image_size * 256 / 224))  # Resize(256) + CenterCrop(224) at the standard size
    eval_tf = ResizeCenterCrop(resize, d.image_size)
    n_test = min(len(test_base), d.limit_test) if d.limit_test else len(test_base)
    test_part = range(n_test)[rank_slice(n_test, rank, world_size)]
    test = DataLoader(torch.utils.data.Subset(SeededUint8(test_base, eval_tf), test_part),
                      batch_size=t.test_batch_size, num_workers=d.num_workers, pin_memory=pin)
    val = None
    if val_idx is not None:
        val_part = val_idx[rank_slice(len(val_idx), rank, world_size)]
        val = DataLoader(torch.utils.data.Subset(SeededUint8(train_base, eval_tf), val_part.tolist()),
                         batch_size=t.test_batch_size, num_workers=d.num_workers, pin_memory=pin)
    preview = torch.stack([SeededUint8(train_base, eval_tf)[int(i)][0] for i in train_idx[: max(t.image_grid, 1)]])
    text = (f"imagenet-style folders under {folder}: {len(train_idx)} train / "
            f"{0 if val_idx is None else len(val_idx)} val / {n_test} test images, {len(train_base.classes)} classes; "
            f"DataLoader with {d.num_workers} workers, {cfg.augment.backend} backend")
    return TrainData(train, test, val, len(train_base.classes), mean, std, d.image_size, preview, text)
