"""Test data for the -C generation tests: tiny real-format sources and the list of registered corruptions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from corruptions import ALL_CORRUPTIONS, get_corruption

# Random corruptions first: the resume and seeding tests need draws that a wrong seed would change.
_PREFERRED = ("gaussian_noise", "glass_blur", "shot_noise", "impulse_noise", "snow", "frost", "fog", "spatter")


def registered_corruptions() -> tuple[str, ...]:
    """Corruptions whose implementation is importable now, in canonical order (tests pick up new ones)."""
    found = []
    for name in ALL_CORRUPTIONS:
        try:
            get_corruption(name)
        except Exception:  # module not written yet (or mid-edit by its owner)
            continue
        found.append(name)
    return tuple(found)


def random_corruption() -> str | None:
    """A registered corruption that draws random fields, else None."""
    available = registered_corruptions()
    return next((c for c in _PREFERRED if c in available), None)


def cifar_like(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(num, 32, 32, 3) uint8 smooth images (gradients + a square, like real pictures: not saturated noise) and
    (num,) int64 labels 0..9."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((num, 32, 32, 3), np.uint8)
    for i in range(num):  # test data builder, a handful of images
        base = 40 + 3 * xx[..., None] * rng.uniform(0.5, 1.5, 3) + 2 * yy[..., None] * rng.uniform(0.5, 1.5, 3)
        r, c = rng.integers(0, 20, 2)
        base[r:r + 10, c:c + 10] = rng.uniform(30, 220, 3)
        images[i] = np.clip(base, 0, 255).astype(np.uint8)
    return images, rng.integers(0, 10, num).astype(np.int64)


def write_image_folder(root: Path, per_class: int = 3, size: tuple[int, int] = (300, 260)) -> tuple[list, list]:
    """Two WordNet-id folders of ``per_class`` JPEGs (width, height = ``size``); returns (samples, classes) in
    ImageFolder order (sorted classes, sorted names)."""
    rng = np.random.default_rng(1)
    classes = ["n01440764", "n01443537"]
    samples = []
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for label, wnid in enumerate(classes):
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            phase = rng.uniform(0, 6.28, 3)
            pixels = 127 + 100 * np.sin(xx[..., None] / (20 + 10 * i) + yy[..., None] / 37 + phase)
            path = root / wnid / f"ILSVRC2012_val_{label * per_class + i + 1:08d}.JPEG"
            Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95)
            samples.append((path, label))
    return samples, classes
