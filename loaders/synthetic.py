"""Tiny datasets in the real on-disk formats, for tests and smoke runs (no download)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from loaders.cifar import CIFAR_FOLDERS, CIFAR_LABEL_KEY, CIFAR_NUM_CLASSES, CIFAR_SPLITS


def synthetic_images(num: int, num_classes: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: a class-coloured square at a class-dependent place on a noisy background.

    Returns:
        images (num, size, size, 3) uint8, labels (num,) int64 (balanced, shuffled).
    """
    _check_counts(num=num, num_classes=num_classes, size=size)
    if size < 2:
        raise ValueError(f"size={size}: expected an image side of at least 2 pixels")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num) % num_classes).astype(np.int64)
    images = rng.integers(0, 96, size=(num, size, size, 3), dtype=np.uint8)
    class_rng = np.random.default_rng(12345)
    colours = class_rng.integers(96, 256, size=(num_classes, 3))
    corners = class_rng.integers(0, size // 2, size=(num_classes, 2))
    side = size // 2
    for c in range(num_classes):  # a loop over classes, not images
        sel = labels == c
        r, q = corners[c]
        images[sel, r:r + side, q:q + side] = colours[c].astype(np.uint8)
    return images, labels


def write_cifar_pickles(root: str | Path, name: str = "cifar10", num_train: int = 64, num_test: int = 32,
                        num_classes: int | None = None, seed: int = 0) -> Path:
    """Write a tiny CIFAR-10/100 in torchvision's on-disk layout under ``root``; returns the dataset folder."""
    if name not in CIFAR_FOLDERS:
        raise ValueError(f"unknown CIFAR dataset {name!r}; valid: {', '.join(CIFAR_FOLDERS)}")
    num_classes = num_classes or CIFAR_NUM_CLASSES[name]
    _check_counts(num_train=num_train, num_test=num_test, num_classes=num_classes)
    if num_train < len(CIFAR_SPLITS[name]["train"]):
        raise ValueError(f"num_train={num_train}: {name} spreads its training split over "
                         f"{len(CIFAR_SPLITS[name]['train'])} files, expected at least one image per file")
    folder = Path(root) / CIFAR_FOLDERS[name]
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_images(num_train, num_classes, seed=seed)
    test_x, test_y = synthetic_images(num_test, num_classes, seed=seed + 1)
    train_files = CIFAR_SPLITS[name]["train"]
    for i, file in enumerate(train_files):
        part = slice(i * num_train // len(train_files), (i + 1) * num_train // len(train_files))
        _write_batch(folder / file, name, train_x[part], train_y[part])
    _write_batch(folder / CIFAR_SPLITS[name]["test"][0], name, test_x, test_y)
    meta = {"label_names": [f"class{i}" for i in range(num_classes)]}
    with open(folder / ("batches.meta" if name == "cifar10" else "meta"), "wb") as f:
        pickle.dump(meta, f)
    return folder


def _write_batch(path: Path, name: str, images: np.ndarray, labels: np.ndarray) -> None:
    batch = {"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1).copy(),
             CIFAR_LABEL_KEY[name]: labels.tolist(), "filenames": [f"img{i}.png" for i in range(len(images))]}
    if name == "cifar100":
        batch["coarse_labels"] = [int(y) // 5 for y in labels]
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def _check_counts(**counts) -> None:
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{key}={value!r}: expected an integer >= 1")


def write_image_folder(root: str | Path, num_classes: int = 2, per_class: int = 4, size: tuple[int, int] = (80, 72),
                       seed: int = 0, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """Write an ImageNet-style tree ``root/<split>/<wnid>/<name>.JPEG`` of small JPEGs; returns ``root``."""
    _check_counts(num_classes=num_classes, per_class=per_class)
    if len(size) != 2 or min(size) < 2:
        raise ValueError(f"size={size!r}: expected (width, height), each at least 2 pixels")
    root = Path(root)
    for s, split in enumerate(splits):
        images, labels = synthetic_images(num_classes * per_class, num_classes, size=max(size), seed=seed + s)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / f"n{label:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[: size[1], : size[0]]).save(folder / f"{split}_{i:05d}.JPEG", quality=90)
    return root
