"""corruptions/extra.py: speckle_noise, gaussian_blur, spatter, saturate against the reference (§5.4, §5.5,
§5.18, §5.19), and spatter's OpenCV chain (Canny, distance transform, equalizeHist, filters) against OpenCV."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter as scipy_gaussian

from corruptions import SEVERITIES, get_corruption
from corruptions.extra import canny_edges, distance_transform_chamfer, equalize_hist, water_distance_map
from corruptions.presets import PRESETS, get_params
from tests.corruption_oracles import (
    photos,
    ref_gaussian_blur,
    ref_saturate,
    ref_spatter,
    ref_speckle,
    tinted_digits,
    to_nchw,
    to_nhwc,
)


@functools.cache
def _images(preset: str) -> np.ndarray:
    return np.concatenate([photos(PRESETS[preset]), tinted_digits(PRESETS[preset])])  # (6, S, S, 3) uint8


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("name", ["gaussian_blur", "saturate"])
def test_deterministic_ones_are_bit_identical_to_the_reference(name, preset):
    images = _images(preset)
    for severity in SEVERITIES:
        ours = to_nhwc(get_corruption(name)(to_nchw(images), severity, preset))
        if preset == "imagenet":  # §11: the per-image package is bit-identical to ImageNet-C for both
            import imagecorruptions

            expected = np.stack([imagecorruptions.corrupt(x, severity, name) for x in images])
        elif name == "gaussian_blur":
            expected = np.stack([ref_gaussian_blur(x, get_params(preset, name, severity)) for x in images])
        else:
            expected = np.stack([ref_saturate(x, *get_params(preset, name, severity)) for x in images])
        assert np.array_equal(ours, expected), severity


def test_saturate_tints_greys_red_as_the_reference():
    # Grey 77: H = 0, S = 0 -> S' = 0 * 20 + 0.2; sextant 0 gives (V, t, p) with t = p = V (1 - 0.2):
    # (77, 0.8 * 77 = 61.6, 61.6) -> (77, 61, 61). Black stays black (V = 0).
    images = torch.zeros(1, 3, 224, 224, dtype=torch.uint8)
    images[..., :112] = 77
    out = get_corruption("saturate")(images, 5, "imagenet")
    assert out[0, :, 0, 0].tolist() == [77, 61, 61] and out[0, :, 0, -1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_speckle_with_the_reference_noise_is_bit_identical(preset):
    images = _images(preset)
    for severity in SEVERITIES:
        rng = np.random.RandomState(severity)
        noise = np.stack([rng.normal(size=x.shape, scale=get_params(preset, "speckle_noise", severity))
                          for x in images])  # (N, H, W, 3), the reference's draw per image
        ours = get_corruption("speckle_noise")(to_nchw(images), severity, preset,
                                               noise=torch.from_numpy(noise.transpose(0, 3, 1, 2)))
        expected = np.stack([ref_speckle(x, z) for x, z in zip(images, noise)])
        assert np.array_equal(to_nhwc(ours), expected), severity


def test_speckle_and_spatter_at_224_match_the_peer_given_its_draws():
    # Both draw one NumPy field in the reference's shape; speckle is bit-identical, spatter within 1 (§11).
    import imagecorruptions

    images = photos(224)[:2]
    for severity in SEVERITIES:
        for name, tolerance in (("speckle_noise", 0), ("spatter", 1)):
            np.random.seed(severity)
            peer = np.stack([imagecorruptions.corrupt(x, severity, name) for x in images])
            rng = np.random.RandomState(severity)
            if name == "speckle_noise":
                sigma = get_params("imagenet", name, severity)
                noise = np.stack([rng.normal(size=x.shape, scale=sigma) for x in images]).transpose(0, 3, 1, 2)
                fields = {"noise": torch.from_numpy(noise)}
            else:
                p = get_params("imagenet", name, severity)
                fields = {"liquid_noise": torch.from_numpy(
                    np.stack([rng.normal(size=(224, 224), loc=p.loc, scale=p.scale) for _ in images]))}
            ours = to_nhwc(get_corruption(name)(to_nchw(images), severity, "imagenet", **fields))
            assert _max_abs_diff(ours, peer) <= tolerance, (name, severity)


def _liquid(preset: str, severity: int, count: int, seed: int) -> np.ndarray:
    p = get_params(preset, "spatter", severity)
    rng = np.random.RandomState(seed)
    side = PRESETS[preset]
    return np.stack([rng.normal(size=(side, side), loc=p.loc, scale=p.scale) for _ in range(count)])


@pytest.mark.parametrize("preset", list(PRESETS))
def test_spatter_with_the_reference_layer_is_within_one_grey_level_of_the_transcription(preset):
    images = _images(preset)
    for severity in SEVERITIES:
        liquid = _liquid(preset, severity, len(images), seed=severity)
        ours = to_nhwc(get_corruption("spatter")(to_nchw(images), severity, preset,
                                                  liquid_noise=torch.from_numpy(liquid)))
        expected = np.stack([ref_spatter(x, get_params(preset, "spatter", severity), q)
                             for x, q in zip(images, liquid)])
        # Water (1-3) is bit-identical; mud may differ by 1 where scikit-image now keeps the mask in float32.
        assert _max_abs_diff(ours, expected) <= (0 if severity <= 3 else 1), severity


def test_spatter_reproduces_the_uint8_wrap_of_layers_above_one():
    # CIFAR severity 3 (loc 0.65, scale 0.3, sigma 1): the smoothed layer exceeds 1 in ~1 image in 5, and the
    # reference's (layer * 255).astype(uint8) wraps those pixels modulo 256 (e.g. 1.03 * 255 = 262.65 -> 6).
    params = get_params("cifar", "spatter", 3)
    liquid = _liquid("cifar", 3, 40, seed=11)
    smooth = np.stack([scipy_gaussian(q, params.sigma, mode="nearest") for q in liquid])
    wrapped = np.flatnonzero((smooth >= 256 / 255).any(axis=(1, 2)))
    assert len(wrapped) >= 2
    images = np.repeat(photos(32)[:1], len(wrapped), axis=0)
    ours = to_nhwc(get_corruption("spatter")(to_nchw(images), 3, "cifar",
                                              liquid_noise=torch.from_numpy(liquid[wrapped])))
    expected = np.stack([ref_spatter(x, params, q) for x, q in zip(images, liquid[wrapped])])
    assert np.array_equal(ours, expected)
    clipped = to_nhwc(get_corruption("spatter")(to_nchw(images), 3, "cifar", clip_layer=True,
                                                 liquid_noise=torch.from_numpy(liquid[wrapped])))
    assert not np.array_equal(clipped, ours)  # the corrected variant fills the holes


def test_spatter_with_an_empty_water_mask_leaves_the_image_unchanged():
    # The reference divides 0 by 0 and its cast turns the NaN image black; we document "no spatter" instead:
    # the float32 round trip uint8(float32(x / 255) * 255), which is x itself for every uint8 value.
    images = to_nchw(photos(32)[:2])
    out = get_corruption("spatter")(images, 1, "cifar", liquid_noise=torch.zeros(2, 32, 32, dtype=torch.float64))
    assert torch.equal(out, images)
    assert ref_spatter(photos(32)[0], get_params("cifar", "spatter", 1), np.zeros((32, 32))).max() == 0


def _layers(side: int, count: int) -> np.ndarray:
    """8-bit liquid layers as water mode builds them, for every water severity's parameters at this size."""
    preset = {32: "cifar", 64: "tiny", 224: "imagenet"}[side]
    layers = []
    for severity in (1, 2, 3):
        p = get_params(preset, "spatter", severity)
        for q in _liquid(preset, severity, count, seed=side + severity):
            q = scipy_gaussian(q, p.sigma, mode="nearest")
            q[q < p.threshold] = 0
            layers.append((np.floor(q * 255).astype(np.int64) & 255).astype(np.uint8))
    return np.stack(layers)


@pytest.mark.parametrize("side", [32, 64, 224])
def test_water_distance_map_equals_the_opencv_chain_image_by_image(side):
    layers = _layers(side, count=12 if side < 224 else 2)
    ours = water_distance_map(torch.from_numpy(layers)).numpy()
    for layer, got in zip(layers, ours):
        dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        assert np.array_equal(got, cv2.blur(dist, (3, 3)).astype(np.float32))


@pytest.mark.parametrize("side", [32, 224])
def test_canny_equals_opencv_on_photos_digits_and_noise(side):
    grey = np.concatenate([photos(side), tinted_digits(side)]).mean(axis=-1).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (2, side, side), dtype=np.uint8)
    images = np.concatenate([grey, noise])
    for image, edges in zip(images, canny_edges(torch.from_numpy(images))):
        assert np.array_equal(edges.numpy(), cv2.Canny(image, 50, 150) > 0)


@pytest.mark.parametrize("side", [32, 64])
def test_distance_transform_equals_opencv_up_to_the_truncation(side):
    # OpenCV with IPP runs two float32 raster passes; our row-by-row replay is exact wherever distance <= 20.
    rng = np.random.default_rng(side)
    zero = rng.random((5, side, side)) < np.array([0.002, 0.01, 0.05, 0.3, 1.0])[:, None, None]
    ours = distance_transform_chamfer(torch.from_numpy(zero)).numpy()
    for z, got in zip(zero, ours):
        expected = cv2.distanceTransform(np.where(z, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
        near = expected <= 20
        assert np.array_equal(got[near], expected[near]) and (got[~near] > 20).all()


def test_equalize_hist_equals_opencv_including_one_level_images():
    rng = np.random.default_rng(3)
    images = np.stack([rng.integers(0, 256, (32, 32)), np.full((32, 32), 7), rng.integers(3, 5, (32, 32)),
                       (rng.random((32, 32)) < 0.01) * 200]).astype(np.uint8)
    for image, got in zip(images, equalize_hist(torch.from_numpy(images))):
        assert np.array_equal(got.numpy(), cv2.equalizeHist(image))


def test_liquid_noise_is_checked_with_an_error_naming_it():
    with pytest.raises(ValueError, match=r"liquid_noise.*\(2, 32, 32\)"):
        get_corruption("spatter")(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), 1, "cifar",
                                  liquid_noise=torch.zeros(32, 32))
