"""Base (geometric) training transforms that draw from a given NumPy RNG, so every sample's randomness is a
pure function of its seed: results do not depend on DataLoader workers and a resumed run replays exactly.

Semantics follow the official AugMix scripts (docs/augmix.md §5): CIFAR = RandomHorizontalFlip then
RandomCrop(32, padding=4) with zero padding; ImageNet = RandomResizedCrop(224) with torchvision's defaults
then RandomHorizontalFlip.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageOps


class FlipPadCrop:
    """Random horizontal flip (p = 0.5), then a random ``size`` crop of the image zero-padded by ``padding``."""

    def __init__(self, size: int = 32, padding: int = 4):
        _check_int("crop size", size, 1)
        _check_int("padding", padding, 0)
        self.size, self.padding = size, padding

    def __call__(self, img: Image.Image, rng: np.random.RandomState) -> Image.Image:
        if rng.uniform() < 0.5:
            img = ImageOps.mirror(img)
        padded = ImageOps.expand(img, border=self.padding, fill=0)
        top = rng.randint(0, padded.height - self.size + 1)
        left = rng.randint(0, padded.width - self.size + 1)
        return padded.crop((left, top, left + self.size, top + self.size))


class RandomResizedCropFlip:
    """torchvision's RandomResizedCrop (scale (0.08, 1), ratio (3/4, 4/3), 10 tries, centre fallback, bilinear)
    followed by a random horizontal flip, drawing from ``rng``."""

    def __init__(self, size: int = 224, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)):
        _check_int("crop size", size, 1)
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"scale={tuple(scale)}: expected (min, max) with 0 < min <= max <= 1")
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio={tuple(ratio)}: expected (min, max) aspect ratios with 0 < min <= max")
        self.size, self.scale, self.ratio = size, scale, ratio

    def crop_box(self, width: int, height: int, rng: np.random.RandomState) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop, torchvision's algorithm with ``rng`` in place of torch's RNG."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, height - h + 1), rng.randint(0, width - w + 1), h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Image.Image, rng: np.random.RandomState) -> Image.Image:
        top, left, h, w = self.crop_box(img.width, img.height, rng)
        img = resized_crop(img, top, left, h, w, self.size)
        if rng.uniform() < 0.5:
            img = ImageOps.mirror(img)
        return img


def resized_crop(img: Image.Image, top: int, left: int, height: int, width: int, size: int) -> Image.Image:
    """Crop, then bilinear-resize to ``size`` x ``size``: byte for byte what torchvision's ``resized_crop`` does
    to a PIL image. (Resizing with ``box=`` instead would filter pixels outside the crop into its border.)"""
    img = img.crop((left, top, left + width, top + height))
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.BILINEAR)  # PIL's bilinear always antialiases when shrinking


class ResizeCenterCrop:
    """Evaluation transform for ImageNet validation: Resize(shorter side 256, bilinear) + CenterCrop(224)."""

    def __init__(self, resize: int = 256, size: int = 224):
        _check_int("crop size", size, 1)
        _check_int("resize", resize, size)
        self.resize, self.size = resize, size

    def __call__(self, img: Image.Image, rng: np.random.RandomState | None = None) -> Image.Image:
        w, h = img.size
        if w <= h:
            new_w, new_h = self.resize, int(self.resize * h / w)
        else:
            new_w, new_h = int(self.resize * w / h), self.resize
        img = img.resize((new_w, new_h), Image.BILINEAR)
        left = int(round((new_w - self.size) / 2.0))
        top = int(round((new_h - self.size) / 2.0))
        return img.crop((left, top, left + self.size, top + self.size))


def _check_int(what: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what}={value!r}: expected an integer >= {minimum}")


def to_uint8_chw(img: Image.Image) -> np.ndarray:
    """PIL RGB image -> (3, H, W) uint8 array."""
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
