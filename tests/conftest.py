"""Shared pytest setup: the ``gpu`` marker skips without CUDA; one intra-op thread per xdist worker, or per module
with the ``single_thread`` fixture; tiny real-format sources for the generation tests (``cifar_like``,
``image_folder``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("AUGMIX_DATA_ROOT", str(ROOT / "tests" / ".no-data-here"))


def pytest_configure(config):
    import torch

    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # as the CLIs do: far fewer page faults for large temporaries

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)  # one thread per xdist worker: no oversubscription on small CI machines


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def _cifar_like(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((num, 32, 32, 3), np.uint8)
    for i in range(num):  # test data builder, a handful of images
        base = 40 + 3 * xx[..., None] * rng.uniform(0.5, 1.5, 3) + 2 * yy[..., None] * rng.uniform(0.5, 1.5, 3)
        r, c = rng.integers(0, 20, 2)
        base[r:r + 10, c:c + 10] = rng.uniform(30, 220, 3)
        images[i] = np.clip(base, 0, 255).astype(np.uint8)
    return images, rng.integers(0, 10, num).astype(np.int64)


def _write_image_folder(root: Path, per_class: int = 3, size: tuple[int, int] = (300, 260)) -> tuple[list, list]:
    from PIL import Image

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


@pytest.fixture(scope="session")
def cifar_like():
    """``cifar_like(num, seed=0)``: (num, 32, 32, 3) uint8 smooth images (gradients + a square, like real pictures,
    not saturated noise) and (num,) int64 labels 0..9; the same arrays for the same arguments."""
    return _cifar_like


@pytest.fixture(scope="session")
def image_folder():
    """``image_folder(root, per_class=3, size=(300, 260))``: two WordNet-id folders of ``per_class`` JPEGs (width,
    height = ``size``) under ``root``; returns (samples, classes) in ImageFolder order (sorted classes and names)."""
    return _write_image_folder


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("single_thread")``): on a shared
    2-core machine two threads under contention made small tensor ops up to 50x slower (measured)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
