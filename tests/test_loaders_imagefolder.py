"""loaders/imagefolder.py: torchvision's ImageFolder listing rules and clear errors for broken trees and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.datasets import ImageFolder

from loaders.imagefolder import ImageFolderPIL, SeededUint8, UnreadableImageError, list_image_folder
from loaders.synthetic import write_image_folder
from loaders.transforms import ResizeCenterCrop


def test_listing_matches_torchvision_image_folder(tmp_path):
    write_image_folder(tmp_path, num_classes=3, per_class=3, size=(40, 36), splits=("train",))
    (tmp_path / "train" / "n00000001" / "notes.txt").write_text("not an image")
    samples, classes = list_image_folder(tmp_path / "train")
    ref = ImageFolder(str(tmp_path / "train"))
    assert classes == ref.classes
    assert [(str(p), c) for p, c in samples] == ref.samples


def test_empty_class_folder_is_refused_by_name_as_torchvision_does(tmp_path):
    write_image_folder(tmp_path, num_classes=2, per_class=2, size=(40, 36))
    for split in ("train", "val"):
        (tmp_path / split / "n00000099").mkdir()
        (tmp_path / split / "n00000099" / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes n00000099"):
        ImageFolder(str(tmp_path / "train"))
    with pytest.raises(FileNotFoundError) as err:
        list_image_folder(tmp_path / "train")
    assert str(tmp_path / "train" / "n00000099") in str(err.value) and "1 of 3 class folder(s)" in str(err.value)
    with pytest.raises(FileNotFoundError, match="n00000099"):
        ImageFolderPIL(tmp_path / "val")


def test_missing_root_file_root_and_flat_folder_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope does not exist; expected .*nope/<class>/<image files>"):
        list_image_folder(tmp_path / "nope")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="file.jpg is a file, not a folder"):
        list_image_folder(tmp_path / "file.jpg")
    flat = tmp_path / "flat"
    flat.mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders in .*flat; expected"):
        list_image_folder(flat)
    for i in range(3):
        (flat / f"img{i}.JPEG").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="its 3 image\\(s\\) sit directly in it, not in class folders"):
        list_image_folder(flat)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_image_is_named(tmp_path, damage):
    write_image_folder(tmp_path, num_classes=2, per_class=2, size=(64, 64), splits=("train",))
    samples, _ = list_image_folder(tmp_path / "train")
    bad = samples[1][0]
    data = bad.read_bytes()
    bad.write_bytes(b"definitely not a JPEG" if damage == "garbage" else data[: len(data) // 2])
    dataset = SeededUint8(ImageFolderPIL(tmp_path / "train"), ResizeCenterCrop(64, 56))
    image, _ = dataset[0]
    assert image.shape == (3, 56, 56)
    with pytest.raises(UnreadableImageError, match=f"cannot read image {bad}") as err:
        dataset[1]
    assert isinstance(err.value, ValueError)  # the CLIs report ValueErrors as usage errors, without a traceback
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=0)
    with pytest.raises(ValueError, match=bad.name):
        list(loader)


def test_good_images_decode_to_rgb(tmp_path):
    write_image_folder(tmp_path, num_classes=2, per_class=1, size=(20, 24), splits=("val",))
    img, label = ImageFolderPIL(tmp_path / "val")[1]
    assert img.mode == "RGB" and img.size == (20, 24) and label == 1
    assert np.asarray(img).dtype == np.uint8
