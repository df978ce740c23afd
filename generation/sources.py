"""Clean sources of a generated set: the CIFAR test pickles, the digits quickstart set, an ImageFolder tree, or
in-memory arrays, with the fingerprint a resumed run is checked against; and the decoding of image files in
DataLoader workers (-C: the preset's resize and crop, -P: torchvision's Resize(256))."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from corruptions.presets import PRESETS
from corruptions.sequences_geometry import IMAGENET_RESIZE
from generation.pipeline import chunk_rows

ARRAY_SOURCES = ("cifar10", "cifar100", "digits")
SOURCES = (*ARRAY_SOURCES, "imagefolder")


@dataclass
class CleanSource:
    """A test set to generate from: arrays (CIFAR, digits) or image files (ImageFolder), and how the manifest
    describes it (name, path, split)."""

    described: dict[str, Any]
    images: np.ndarray | None = None                  # (N, 32, 32, 3) uint8 RGB
    labels: np.ndarray | None = None                  # (N,) int64
    samples: list[tuple[str, int]] = field(default_factory=list)  # [(image path, class index)], sorted
    classes: list[str] = field(default_factory=list)  # class folder names (WordNet ids)

    @property
    def is_folder(self) -> bool:
        return self.images is None


def open_source(name: str, data_root: str | None, limit: int | None = None) -> CleanSource:
    """The first ``limit`` test images of a source in ``SOURCES``.

    Args:
        data_root: for CIFAR, the folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/`` (None:
            ``$AUGMIX_DATA_ROOT`` or ./data); for "imagefolder", the folder of ``<wnid>/`` class folders itself.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if name == "imagefolder":
        from loaders.imagefolder import list_image_folder

        if data_root is None:
            raise ValueError("--source imagefolder needs --data-root: the folder of <wnid>/ class folders")
        samples, classes = list_image_folder(data_root)
        return CleanSource({"name": name, "path": str(Path(data_root).resolve())}, samples=samples[:limit],
                           classes=classes)
    if name == "digits":
        from loaders.digits import load_digits

        images, labels = load_digits(train=False)
        path = "sklearn.datasets.load_digits (upsampled to 32x32 RGB, 500-image test split)"
    elif name in ARRAY_SOURCES:
        from loaders.cifar import cifar_folder, load_cifar
        from runtime.files import data_root as default_root

        root = default_root(data_root)
        images, labels = load_cifar(root, name, train=False)
        path = str(cifar_folder(root, name).resolve())
    else:
        raise ValueError(f"unknown source {name!r}; valid: {', '.join(SOURCES)}")
    return CleanSource({"name": name, "path": path, "split": "test"}, images=images[:limit], labels=labels[:limit])


def array_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over the shapes, dtypes and bytes of in-memory source arrays (images, labels): resuming a generation
    on other data is refused."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def array_source(images: np.ndarray, labels: np.ndarray,
                 described: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Check in-memory test images (N, H, W, 3) uint8 and labels (N,) and return them with the manifest's source
    record (``described`` plus the image count and a fingerprint of both arrays)."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},) to match the images, got {labels.shape}")
    return images, labels, {**described, "num_images": len(images), "fingerprint": array_fingerprint(images, labels)}


def folder_source(samples: Sequence[tuple[str | os.PathLike, int]], classes: Sequence[str],
                  described: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """``[(wnid, file name), ...]`` of an ImageFolder's samples and the manifest's source record (``described`` plus
    image and class counts and a fingerprint of the file list and sizes, so resuming on other files is refused).

    Raises:
        ValueError: when two images would map to the same output (same class folder and file stem).
    """
    relnames = [(classes[label], Path(path).name) for path, label in samples]
    if len({(wnid, Path(name).stem) for wnid, name in relnames}) != len(relnames):
        raise ValueError("two source images map to the same output file (same class folder and file stem)")
    listing = "".join(f"{wnid}/{name}\t{Path(p).stat().st_size}\n" for (wnid, name), (p, _) in zip(relnames, samples))
    return relnames, {**described, "num_images": len(samples), "classes": len(classes),
                      "class_names": list(classes), "fingerprint": hashlib.sha256(listing.encode()).hexdigest()}


def preprocess_image(image: Image.Image, preset: str) -> Image.Image:
    """The clean image a -C preset corrupts, as a PIL RGB image of the preset's size.

    "imagenet": torchvision's Resize(256) + CenterCrop(224) of §7.2 (PIL bilinear on the shorter side, long side
    ``int(256 * long / short)``, crop offsets ``int(round((size - 224) / 2))``), written with PIL directly because
    importing torchvision costs seconds per DataLoader worker. "cifar" / "tiny": the whole image resized to
    S x S (the ImageNet-64x64-C convention, §3.3); an image already S x S is left untouched.
    """
    image = image.convert("RGB")
    side, (w, h) = PRESETS[preset], image.size
    if preset != "imagenet":
        return image if (w, h) == (side, side) else image.resize((side, side), Image.BILINEAR)
    image = resize_shorter_side(image)
    w, h = image.size
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    return image.crop((left, top, left + side, top + side))


def resize_shorter_side(image: Image.Image, size: int = IMAGENET_RESIZE) -> Image.Image:
    """torchvision ``Resize(size)`` on a PIL image: shorter side to ``size``, the other ``int(size * long / short)``,
    bilinear; an image already at that size is returned as is. The ImageNet-P base image (§8.2)."""
    image = image.convert("RGB")
    w, h = image.size
    if min(w, h) == size:
        return image
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    return image.resize(new, Image.BILINEAR)


class SourceImageError(ValueError):
    """A source image that cannot be read or decoded (the message names the file)."""


@dataclass(frozen=True)
class Unreadable:
    """What a decode worker returns instead of an image it cannot decode, so that the main process reports the
    file in one line rather than re-raising the worker's traceback."""

    path: str
    reason: str


class DecodedImages(Dataset):
    """Image files decoded to RGB and transformed (a picklable PIL -> PIL function), as (3, h, w) uint8 tensors
    (or :class:`Unreadable`); runs in DataLoader workers."""

    def __init__(self, paths: Sequence[str | Path], transform: Callable[[Image.Image], Image.Image]):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | Unreadable:
        try:
            with Image.open(self.paths[index]) as image:
                clean = self.transform(image)
        except Exception as exc:  # any decoder failure (OSError, DecompressionBombError, SyntaxError, ...): reported
            return Unreadable(str(self.paths[index]), f"{type(exc).__name__}: {exc}")
        return torch.from_numpy(np.asarray(clean, dtype=np.uint8).copy()).permute(2, 0, 1)  # (h,w,3)->(3,h,w)


def collate_or_report(images: list, collate_fn: Callable | None = None) -> Any:
    """Collate a chunk's images, or hand back the first :class:`Unreadable` among them."""
    from torch.utils.data import default_collate

    failed = [image for image in images if isinstance(image, Unreadable)]
    if failed:
        return failed[0]
    return (collate_fn or default_collate)(images)


def collate_canvas(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of different sizes on one zero canvas, each at the top-left (make_sequences' ImageNet-P contract).

    Returns:
        (B, 3, Hmax, Wmax) uint8 and (B, 2) int64 sizes (h, w).
    """
    sizes = torch.tensor([image.shape[1:] for image in images], dtype=torch.int64)
    canvas = torch.zeros((len(images), 3, int(sizes[:, 0].max()), int(sizes[:, 1].max())), dtype=torch.uint8)
    for k, image in enumerate(images):  # collation of one chunk (a handful of images), in the DataLoader
        canvas[k, :, :image.shape[1], :image.shape[2]] = image
    return canvas, sizes


def decode_chunks(paths: Sequence[str | Path], transform: Callable[[Image.Image], Image.Image], chunks: list[int],
                  chunk_size: int, workers: int, device: str | torch.device,
                  collate_fn: Callable | None = None) -> Iterator[tuple[int, Any]]:
    """``(chunk index, batch on device)`` for each of ``chunks`` (ascending), decoded in ``workers`` DataLoader
    processes; a batch is a (B, 3, h, w) uint8 tensor, or the tuple of tensors ``collate_fn`` returns."""
    device = torch.device(device)
    batches = [list(chunk_rows(len(paths), chunk_size, k)) for k in chunks]
    loader = DataLoader(DecodedImages(paths, transform), batch_sampler=batches, num_workers=workers,
                        collate_fn=partial(collate_or_report, collate_fn=collate_fn), pin_memory=device.type == "cuda")
    for k, batch in zip(chunks, loader):
        if isinstance(batch, Unreadable):
            raise SourceImageError(f"cannot decode source image {batch.path}: {batch.reason}")
        if isinstance(batch, torch.Tensor):
            yield k, batch.to(device, non_blocking=True)
        else:
            yield k, tuple(t.to(device, non_blocking=True) for t in batch)


def preset_transform(preset: str) -> Callable[[Image.Image], Image.Image]:
    """The picklable decode transform of a -C preset (:func:`preprocess_image`)."""
    return partial(preprocess_image, preset=preset)
