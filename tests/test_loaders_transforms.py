"""loaders/transforms.py: the seeded base transforms equal torchvision's on PIL images, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from loaders.transforms import FlipPadCrop, RandomResizedCropFlip, ResizeCenterCrop, resized_crop


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus sharp noise, so any pixel sampled from outside a crop box shows at its border."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    noise = rng.integers(0, 256, size=(height, width, 3))
    return Image.fromarray(np.where(rng.uniform(size=(height, width, 1)) < 0.3, noise, smooth).astype(np.uint8))


BOXES = [  # (top, left, height, width) on a 500x375 image
    (0, 0, 375, 500), (10, 20, 100, 80), (200, 300, 175, 200), (37, 111, 224, 224), (5, 7, 13, 11),
    (0, 250, 375, 250), (100, 0, 30, 500), (60, 90, 301, 257),
]


@pytest.mark.parametrize("size", [224, 64, 300, 17])
@pytest.mark.parametrize("box", BOXES)
def test_resized_crop_equals_torchvision_byte_for_byte(box, size):
    img = _photo(500, 375)
    ours = resized_crop(img, *box, size)
    ref = TF.resized_crop(img, *box, [size, size], interpolation=T.InterpolationMode.BILINEAR, antialias=True)
    assert ours.size == ref.size == (size, size)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))


def test_random_resized_crop_flip_applies_its_drawn_box_as_torchvision_would():
    img, rrc = _photo(333, 250, seed=1), RandomResizedCropFlip(96)
    for seed in range(20):
        rng = np.random.RandomState(seed)
        top, left, h, w = rrc.crop_box(img.width, img.height, rng)
        flip = rng.uniform() < 0.5
        ref = TF.resized_crop(img, top, left, h, w, [96, 96], antialias=True)
        ref = TF.hflip(ref) if flip else ref
        np.testing.assert_array_equal(np.asarray(rrc(img, np.random.RandomState(seed))), np.asarray(ref))


@pytest.mark.parametrize("width,height", [(500, 375), (375, 500), (256, 256), (300, 260), (1024, 300)])
def test_resize_center_crop_equals_torchvision_resize_then_center_crop(width, height):
    img = _photo(width, height, seed=2)
    ref = T.Compose([T.Resize(256), T.CenterCrop(224)])(img)
    np.testing.assert_array_equal(np.asarray(ResizeCenterCrop(256, 224)(img)), np.asarray(ref))


@pytest.mark.parametrize("build,message", [
    (lambda: RandomResizedCropFlip(0), "crop size=0: expected an integer >= 1"),
    (lambda: RandomResizedCropFlip(224, scale=(0.5, 0.1)), "scale=\\(0.5, 0.1\\)"),
    (lambda: RandomResizedCropFlip(224, ratio=(0, 1)), "ratio=\\(0, 1\\)"),
    (lambda: FlipPadCrop(32, -1), "padding=-1: expected an integer >= 0"),
    (lambda: ResizeCenterCrop(200, 224), "resize=200: expected an integer >= 224"),
])
def test_bad_transform_parameters_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
