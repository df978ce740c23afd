"""ImageNet-style folders (``<root>/<wnid>/<file>``): listing, PIL datasets and seeded uint8 datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from loaders.transforms import to_uint8_chw

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def list_image_folder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """Samples of an ImageFolder tree with torchvision's semantics: class folders sorted by name (WordNet ids give
    the standard ImageNet class order), files sorted by name within each class.

    Returns:
        samples [(path, class_index), ...], classes [folder name, ...].

    Raises:
        FileNotFoundError: when ``root`` does not exist or holds no class folder with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; expected {root}/<class>/<image files>")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        samples.extend((p, index) for p in files)
    if not samples:
        raise FileNotFoundError(f"no images under {root}: expected {root}/<class>/<file>{IMAGE_EXTENSIONS[1]} "
                                f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
    return samples, classes


def _seed_of(item: int | tuple[int, int]) -> tuple[int, int]:
    return (item[0], item[1]) if isinstance(item, tuple) else (item, item)


class ImageFolderPIL(Dataset):
    """``(PIL RGB image, label)`` per sample; the base dataset of the PIL AugMix backend."""

    def __init__(self, root: str | Path):
        self.samples, self.classes = list_image_folder(root)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        with Image.open(path) as img:
            return img.convert("RGB"), label


class ArrayPIL(Dataset):
    """``(PIL RGB image, label)`` views of an in-memory (N, H, W, 3) uint8 array (CIFAR, digits)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), int(self.labels[index])


class SeededUint8(Dataset):
    """Applies ``transform(img, rng)`` to a PIL dataset and returns ``((3, H, W) uint8 tensor, label)``.

    Items are ``(index, sample_seed)`` pairs from :class:`loaders.sampling.EpochSampler` (or plain indices, seed =
    index); the RNG is ``np.random.RandomState(sample_seed)``, so crops do not depend on worker count.
    """

    def __init__(self, base: Dataset, transform: Callable[[Image.Image, np.random.RandomState], Image.Image]):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = _seed_of(item)
        img, label = self.base[index]
        img = self.transform(img, np.random.RandomState(seed % 2**32))
        return torch.from_numpy(to_uint8_chw(img)), label
