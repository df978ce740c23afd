"""loaders/released.py: the released -C/-P formats read back exactly; malformed files give errors naming the path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.released import (
    ImageFiles,
    VideoFiles,
    list_imagenet_c_cell,
    list_imagenet_p,
    load_cifar_c_labels,
    open_cifar_c,
    open_cifar_p,
)
from runtime.video import decode_video
from tests._evaluation_data import (
    marked_images,
    smooth_images,
    write_cifar_c,
    write_cifar_p,
    write_imagenet_c,
    write_imagenet_p,
    write_video,
)

LABELS = np.array([3, 1, 4, 1, 5, 9, 2, 6])
RELEASED = (1, 2, 3, 4, 5)  # the severities of the released files, as the evaluator passes them from corruptions/


@pytest.fixture()
def cifar_c(tmp_path):
    return write_cifar_c(tmp_path / "CIFAR-10-C", marked_images(8), LABELS, corruptions=("fog", "snow"))


def test_cifar_c_cell_reads_its_severity_block(cifar_c):
    fog = open_cifar_c(cifar_c, "fog", RELEASED, num_classes=10)
    assert fog.per_severity == 8
    images, labels = fog.cell(3)
    assert isinstance(fog.images, np.memmap)
    assert images.shape == (8, 32, 32, 3) and (images[:, 0] == 30).all()  # fog is index 0: 10 * 3 + 0
    np.testing.assert_array_equal(images[:, 1:], marked_images(8)[:, 1:])
    np.testing.assert_array_equal(labels, LABELS)
    images, labels = open_cifar_c(cifar_c, "snow", RELEASED).cell(5, limit=3)
    assert images.shape[0] == 3 and (images[:, 0] == 51).all() and labels.tolist() == [3, 1, 4]


def test_cifar_c_file_with_a_subset_of_severities(tmp_path):
    images = marked_images(4)
    folder = tmp_path / "generated"
    folder.mkdir()
    np.save(folder / "labels.npy", np.tile(LABELS[:4], 2))
    np.save(folder / "fog.npy", np.concatenate([images + 0, images // 2]))  # blocks: severity 2, then 4
    fog = open_cifar_c(folder, "fog", (2, 4))
    np.testing.assert_array_equal(fog.cell(4)[0], images // 2)
    with pytest.raises(ValueError, match=r"fog\.npy: severity must be one of \(2, 4\), got 3"):
        fog.cell(3)
    with pytest.raises(ValueError, match=r"8 labels is not 3 severities x N"):
        load_cifar_c_labels(folder, (1, 2, 3))


def test_cifar_c_rejects_a_wrong_shape(cifar_c):
    np.save(cifar_c / "fog.npy", np.zeros((40, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"fog\.npy: expected uint8 \(40, 32, 32, 3\)"):
        open_cifar_c(cifar_c, "fog", RELEASED)


def test_cifar_c_rejects_a_truncated_file(cifar_c):
    data = (cifar_c / "fog.npy").read_bytes()
    (cifar_c / "fog.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"fog\.npy is not a complete \.npy file.*truncated"):
        open_cifar_c(cifar_c, "fog", RELEASED)


def test_cifar_c_rejects_missing_severities(cifar_c):
    np.save(cifar_c / "fog.npy", np.zeros((32, 32, 32, 3), np.uint8))  # 4 severities x 8 images
    with pytest.raises(ValueError, match=r"32 images but labels\.npy has 40 \(8 per severity x 5\)"):
        open_cifar_c(cifar_c, "fog", RELEASED)


@pytest.mark.parametrize("labels, message", [
    (np.arange(41) % 10, r"41 labels is not 5 severities x N"),
    (np.arange(40) % 10, r"the 5 severity blocks of labels differ"),
    (np.tile(LABELS, 5).astype(np.float32), r"expected a 1-D integer array"),
    (np.tile(LABELS + 5, 5), r"labels span 6\.\.14, expected 0\.\.9"),
])
def test_cifar_c_labels_are_validated(cifar_c, labels, message):
    np.save(cifar_c / "labels.npy", labels)
    with pytest.raises(ValueError, match=message):
        load_cifar_c_labels(cifar_c, RELEASED, num_classes=10)


def test_cifar_c_missing_file_names_the_path(cifar_c):
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10-C/frost\.npy does not exist"):
        open_cifar_c(cifar_c, "frost", RELEASED)


def test_cifar_p_reads_videos_and_checks_frames(tmp_path):
    folder = write_cifar_p(tmp_path / "CIFAR-10-P", marked_images(4), {"translate": 16, "rotate": 5})
    videos = open_cifar_p(folder, "translate", num_videos=4)
    assert videos.shape == (4, 16, 32, 32, 3)
    np.testing.assert_array_equal(videos[:, 2], np.roll(marked_images(4), 2, axis=2))
    with pytest.raises(ValueError, match=r"rotate\.npy: expected 31 frames per video for rotate, got 5"):
        open_cifar_p(folder, "rotate", frames=31)
    assert open_cifar_p(folder, "rotate").shape[1] == 5  # no expected frame count given: not checked
    with pytest.raises(ValueError, match=r"4 videos, expected one per clean test image \(10\)"):
        open_cifar_p(folder, "translate", num_videos=10)


@pytest.fixture()
def imagenet_c(tmp_path):
    images = smooth_images(4, size=48)
    return write_imagenet_c(tmp_path / "ImageNet-C", images, np.array([0, 1, 1, 2]), ("fog",), severities=(1, 2))


def test_imagenet_c_cell_lists_sorted_wnids_and_decodes_as_is(imagenet_c):
    samples, classes = list_imagenet_c_cell(imagenet_c, "fog", 2)
    assert classes == ["n00000000", "n00000001", "n00000002"]
    assert [label for _, label in samples] == [0, 1, 1, 2]
    image, label = ImageFiles(samples, size=(48, 48))[3]
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 48) and label == 2
    # JPEG q85 of a smooth image: within a few grey levels of the original
    diff = (image.permute(1, 2, 0).float() - torch.from_numpy(smooth_images(4, size=48)[3]).float()).abs().mean()
    assert diff < 3


def test_imagenet_c_missing_severity_folder_is_named(imagenet_c):
    with pytest.raises(FileNotFoundError, match=r"ImageNet-C/fog/3 does not exist \(found severities 1, 2\)"):
        list_imagenet_c_cell(imagenet_c, "fog", 3)


def test_imagenet_c_class_mismatch_is_an_error(imagenet_c):
    with pytest.raises(ValueError, match=r"missing \['n00000003'\].*labels would shift"):
        list_imagenet_c_cell(imagenet_c, "fog", 1, classes=[f"n{k:08d}" for k in range(4)])


def test_imagenet_c_wrong_image_size_is_an_error(imagenet_c):
    samples, _ = list_imagenet_c_cell(imagenet_c, "fog", 1)
    with pytest.raises(ValueError, match=r"ILSVRC2012_val_00000000\.JPEG: expected a 224x224 image, got 48x48"):
        ImageFiles(samples, size=(224, 224))[0]


def test_imagenet_p_video_round_trip(tmp_path):
    images = smooth_images(2, size=32, seed=3)
    root = write_imagenet_p(tmp_path / "ImageNet-P", images, np.array([1, 0]), {"scale": 6})
    samples, classes = list_imagenet_p(root, "scale")
    assert classes == ["n00000000", "n00000001"] and [label for _, label in samples] == [0, 1]
    video, label = VideoFiles(samples, frames=6, size=(32, 32))[1]
    assert video.shape == (6, 3, 32, 32) and video.dtype == torch.uint8 and label == 1
    original = torch.from_numpy(np.roll(images[0], 4, axis=1)).permute(2, 0, 1).float()
    assert (video[4].float() - original).abs().mean() < 6  # H.264 4:2:0 is lossy
    with pytest.raises(ValueError, match=r"expected 31 frames, decoded 6"):
        VideoFiles(samples, frames=31)[0]


def test_unreadable_video_is_named(tmp_path):
    bad = tmp_path / "ImageNet-P" / "tilt" / "n00000000" / "x.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"x\.mp4 is not a readable video"):
        decode_video(bad)
    write_video(tmp_path / "ok.mp4", np.zeros((3, 16, 16, 3), np.uint8))
    assert decode_video(tmp_path / "ok.mp4").shape == (3, 16, 16, 3)
