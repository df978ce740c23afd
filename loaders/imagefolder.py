"""ImageNet-style folders (``<root>/<wnid>/<file>``): listing, PIL datasets and seeded uint8 datasets."""

from __future__ import annotations

import struct
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
    the standard ImageNet class order), files sorted by name within each class. Folders whose name starts with
    "." are ignored; images must sit directly in their class folder.

    Returns:
        samples [(path, class_index), ...], classes [folder name, ...].

    Raises:
        FileNotFoundError: when ``root`` does not exist, has no class folders, or a class folder holds no image
            (as torchvision's ImageFolder, which would otherwise make an empty folder a class no sample has).
        NotADirectoryError: when ``root`` is a file.
    """
    root = Path(root)
    layout = f"expected {root}/<class>/<image files> ({', '.join(IMAGE_EXTENSIONS)})"
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist; {layout}")
    if not root.is_dir():
        raise NotADirectoryError(f"image folder {root} is a file, not a folder; {layout}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = sum(1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        hint = f": its {loose} image(s) sit directly in it, not in class folders" if loose else ""
        raise FileNotFoundError(f"no class folders in {root}{hint}; {layout}")
    samples, empty = [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            empty.append(name)
        samples.extend((p, index) for p in files)
    if empty:
        shown = ", ".join(str(root / name) for name in empty[:10]) + (f" and {len(empty) - 10} more"
                                                                        if len(empty) > 10 else "")
        raise FileNotFoundError(f"{len(empty)} of {len(classes)} class folder(s) hold no images: {shown}; every "
                                f"class folder needs at least one image ({', '.join(IMAGE_EXTENSIONS)}); remove "
                                f"the empty folder(s) or add their images")
    return samples, classes


class UnreadableImageError(ValueError):
    """An image file in a dataset that PIL cannot decode; the message names the file."""


def open_rgb(path: Path) -> Image.Image:
    """Decode ``path`` to an RGB PIL image; a corrupt or truncated file raises :class:`UnreadableImageError`."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(f"cannot read image {path}: {type(exc).__name__}: {exc}; replace or remove "
                                   f"the file") from exc


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
        return open_rgb(path), label


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
