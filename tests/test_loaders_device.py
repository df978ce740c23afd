"""loaders/device.py, sampling.py, transforms.py, imagefolder.py: batched flip/crop semantics and seeded order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from loaders.device import DeviceLoader, random_flip_pad_crop
from loaders.imagefolder import ImageFolderPIL, SeededUint8, list_image_folder
from loaders.sampling import EpochSampler
from loaders.synthetic import write_image_folder
from loaders.transforms import FlipPadCrop, RandomResizedCropFlip, ResizeCenterCrop


def test_pad_crop_is_a_shifted_window_of_the_zero_padded_image():
    images = torch.arange(1, 2 * 3 * 6 * 6 + 1, dtype=torch.int32).view(2, 3, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = random_flip_pad_crop(images, padding=2, generator=g, flip=False)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for b in range(2):  # every output must equal some 6x6 window of the padded image
        windows = [padded[b, :, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)


def test_flip_and_crop_offsets_are_uniform_per_sample():
    images = torch.zeros(4000, 1, 3, 3, dtype=torch.uint8)
    images[:, :, 1, 1] = 1  # a single dot: its position after the crop reveals the offset
    g = torch.Generator().manual_seed(1)
    out = random_flip_pad_crop(images, padding=1, generator=g, flip=False)
    rows, cols = torch.nonzero(out[:, 0] == 1, as_tuple=True)[1:]
    # offsets 0..2 each with p = 1/3 -> the dot lands at 2, 1 or 0 (or is cropped away for no offset here)
    counts = torch.bincount(rows, minlength=3).float() / len(out)
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.03)
    flipped = random_flip_pad_crop(torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).repeat(4000, 1, 1, 1), 0,
                                   torch.Generator().manual_seed(2))
    assert abs((flipped[:, 0, 0, 0] == 3).float().mean() - 0.5) < 0.03


def test_device_loader_epochs_are_seeded_and_resumable():
    images = torch.randint(0, 255, (10, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(10)
    loader = DeviceLoader(images, labels, batch_size=3, seed=5, padding=2)
    loader.set_epoch(1)
    full = list(loader)
    loader.set_epoch(1, start_step=2)
    tail = list(loader)
    assert len(full) == 4 and len(tail) == 2
    for (a, la), (b, lb) in zip(full[2:], tail, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    loader.set_epoch(2)
    assert not torch.equal(torch.cat([lb for _, lb in loader]), torch.cat([la for _, la in full]))
    assert sorted(torch.cat([la for _, la in full]).tolist()) == list(range(10))


def test_epoch_sampler_yields_every_index_once_with_distinct_seeds():
    sampler = EpochSampler(np.arange(20), seed=3)
    sampler.set_epoch(0)
    items = list(sampler)
    assert sorted(i for i, _ in items) == list(range(20))
    assert len({s for _, s in items}) == 20 and all(0 <= s < 2**32 for _, s in items)
    sampler.set_epoch(0, start=15)
    assert list(sampler) == items[15:]


def test_flip_pad_crop_pil_matches_the_official_order():
    img = Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint32).reshape(32, 32, 3).astype(np.uint8))
    out = FlipPadCrop(32, 4)(img, np.random.RandomState(0))
    rng = np.random.RandomState(0)
    flip = rng.uniform() < 0.5
    top, left = rng.randint(0, 9), rng.randint(0, 9)
    ref = np.pad(np.asarray(img)[:, ::-1] if flip else np.asarray(img), ((4, 4), (4, 4), (0, 0)))
    np.testing.assert_array_equal(np.asarray(out), ref[top:top + 32, left:left + 32])


def test_random_resized_crop_boxes_follow_torchvision_bounds():
    rrc = RandomResizedCropFlip(224)
    rng = np.random.RandomState(0)
    areas = []
    for _ in range(500):
        top, left, h, w = rrc.crop_box(500, 375, rng)
        assert 0 <= top and top + h <= 375 and 0 <= left and left + w <= 500
        areas.append(h * w / (500 * 375))
    assert 0.07 < min(areas) and max(areas) <= 1.0 and 0.4 < np.mean(areas) < 0.65  # E[U(0.08, 1)] = 0.54


def test_imagefolder_listing_and_eval_transform(tmp_path):
    write_image_folder(tmp_path, num_classes=3, per_class=2, size=(300, 260))
    samples, classes = list_image_folder(tmp_path / "val")
    assert classes == sorted(classes) and len(samples) == 6
    assert [c for _, c in samples] == sorted(c for _, c in samples)  # class-major order, as torchvision
    data = SeededUint8(ImageFolderPIL(tmp_path / "val"), ResizeCenterCrop(256, 224))
    image, label = data[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.uint8 and label == samples[0][1]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_image_folder(tmp_path / "nope")
