"""Digital corruptions (docs/corruptions.md §4.7, §5.14-§5.17): exact against Pillow / NumPy, elastic within +-1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corruptions.digital import _box_windows, contrast, elastic_transform, jpeg_compression, pixelate
from corruptions.presets import get_params
from tests.corruption_oracles import (
    PRESET_SIZES,
    photos,
    ref_contrast,
    ref_elastic,
    ref_jpeg,
    ref_pixelate,
    sample_images,
    to_nchw,
    to_nhwc,
)

pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.py

SEVERITIES = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def peer():
    """The per-image package (imports OpenCV, scikit-image, numba: once per module); a listed requirement."""
    import imagecorruptions

    return imagecorruptions


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("preset", ["cifar", "tiny"])
def test_contrast_pixelate_and_jpeg_are_bit_exact_with_the_reference_formulas(preset, severity):
    images = sample_images(PRESET_SIZES[preset])
    batch = to_nchw(images)
    c = get_params(preset, "contrast", severity)
    np.testing.assert_array_equal(to_nhwc(contrast(batch, severity, preset)),
                                  np.stack([ref_contrast(im, c) for im in images]))
    side = get_params(preset, "pixelate", severity).side
    np.testing.assert_array_equal(to_nhwc(pixelate(batch, severity, preset)),
                                  np.stack([ref_pixelate(im, side) for im in images]))
    quality = get_params(preset, "jpeg_compression", severity)
    np.testing.assert_array_equal(to_nhwc(jpeg_compression(batch, severity, preset)),
                                  np.stack([ref_jpeg(im, quality) for im in images]))


def test_contrast_pixelate_and_jpeg_match_the_per_image_package_at_224(peer):
    images = photos(224, 3)
    batch = to_nchw(images)
    for severity in SEVERITIES:
        for name, fn in (("contrast", contrast), ("pixelate", pixelate), ("jpeg_compression", jpeg_compression)):
            theirs = np.stack([peer.corrupt(im, severity, name) for im in images])
            np.testing.assert_array_equal(to_nhwc(fn(batch, severity, "imagenet")), theirs, err_msg=name)


@pytest.mark.parametrize("in_size, out_size", [(32, 30), (32, 20), (64, 57), (64, 38), (224, 134), (224, 56),
                                               (224, 89)])
def test_box_downscaling_assigns_every_source_pixel_to_exactly_one_output(in_size, out_size):
    starts, counts, weights = _box_windows(in_size, out_size)
    members = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)])
    np.testing.assert_array_equal(members, np.arange(in_size))  # a partition, in order
    scale = in_size / out_size
    for o, (s, c) in enumerate(zip(starts, counts)):
        # §4.7: source i belongs to o iff o * scale < i + 0.5 <= (o + 1) * scale.
        assert all(o * scale < i + 0.5 <= (o + 1) * scale for i in range(s, s + c))
    # 22-bit fixed-point weights: round(2^22 / count), e.g. 1398101 for a 3-pixel window.
    assert all(w == int(0.5 + (1 / c) * 2**22) for w, c in zip(weights, counts))


@pytest.mark.parametrize("in_size, out_size", [(30, 32), (20, 32), (57, 64), (56, 224)])
def test_box_upscaling_is_nearest_neighbour(in_size, out_size):
    starts, counts, weights = _box_windows(in_size, out_size)
    expected = [int((o + 0.5) * in_size / out_size) for o in range(out_size)]  # floor((o + 0.5) in / out)
    assert list(starts) == expected and set(counts) == {1} and set(weights) == {2**22}


def _elastic_fields(preset: str, severity: int, n: int, seed: int) -> dict[str, np.ndarray]:
    size = PRESET_SIZES[preset]
    delta = get_params(preset, "elastic_transform", severity).delta
    rng = np.random.RandomState(seed)  # the reference's draw order: affine jitter, dx, dy
    draws = [(rng.uniform(-delta, delta, size=(3, 2)), rng.uniform(-1, 1, size=(size, size)),
              rng.uniform(-1, 1, size=(size, size))) for _ in range(n)]
    return {name: np.stack([d[k] for d in draws]) for k, name in enumerate(("affine_jitter", "dx_noise", "dy_noise"))}


@pytest.mark.parametrize("preset", ["cifar", "tiny", "imagenet"])
def test_elastic_is_within_one_grey_level_of_the_reference_given_its_draws(preset):
    """Tolerance-based, as §5.15 asks: OpenCV's warp and SciPy's map_coordinates run in their own float paths;
    we require |difference| <= 1 grey level and fewer than 0.1 % of values off by one (measured: ~0.01 %)."""
    size = PRESET_SIZES[preset]
    images = sample_images(size, photo_count=2) if size < 224 else photos(224, 2)
    for severity in SEVERITIES:
        alpha, sigma, _ = get_params(preset, "elastic_transform", severity)
        fields = _elastic_fields(preset, severity, len(images), seed=severity)
        expected = np.stack([ref_elastic(im, alpha, sigma, *(fields[k][i] for k in fields))
                             for i, im in enumerate(images)])
        got = to_nhwc(elastic_transform(to_nchw(images), severity, preset,
                                        **{k: torch.from_numpy(v) for k, v in fields.items()}))
        diff = got.astype(int) - expected
        assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-3, (severity, np.abs(diff).max())


@pytest.mark.parametrize("preset", ["cifar", "tiny"])
def test_elastic_severity_one_is_affine_only(preset):
    # alpha = sigma = 0 at CIFAR / 64-px severity 1: the displacement fields have no effect (§5.15).
    images = to_nchw(sample_images(PRESET_SIZES[preset], photo_count=2))
    jitter = torch.full((len(images), 3, 2), 1.5, dtype=torch.float64)
    noise = torch.rand(2, len(images), *images.shape[2:], generator=torch.Generator().manual_seed(0)) * 2 - 1
    a = elastic_transform(images, 1, preset, affine_jitter=jitter, dx_noise=noise[0], dy_noise=noise[1])
    b = elastic_transform(images, 1, preset, affine_jitter=jitter)
    assert torch.equal(a, b) and not torch.equal(a, images)


def test_elastic_with_zero_jitter_and_no_displacement_is_the_identity():
    images = to_nchw(sample_images(32))
    zeros = torch.zeros(len(images), 3, 2, dtype=torch.float64)
    # Identity affine, alpha = 0: every sample lands on a pixel centre, so x / 255 * 255 truncates back to x
    # except where the float32 round trip falls just below an integer (the reference does the same).
    out = elastic_transform(images, 1, "cifar", affine_jitter=zeros)
    expected = (images.float() / 255).clamp(0, 1).mul(255).to(torch.uint8)
    assert torch.equal(out, expected)


def test_jpeg_is_a_real_lossy_round_trip_that_worsens_with_quality():
    images = to_nchw(photos(64, 2))
    errors = [(jpeg_compression(images, s, "tiny").double() - images.double()).abs().mean().item()
              for s in SEVERITIES]
    assert all(b > a for a, b in zip(errors, errors[1:])) and errors[0] > 1.0
