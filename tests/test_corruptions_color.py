"""corruptions/color.py: batched RGB <-> HSV equals scikit-image's rgb2hsv / hsv2rgb bit for bit (§4.7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import hsv2rgb, rgb2hsv

from corruptions.color import hsv_to_rgb, rgb_to_hsv
from tests.corruption_oracles import photos


def _chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, -3)))


def _hwc(x: torch.Tensor) -> np.ndarray:
    return np.moveaxis(x.numpy(), -3, -1)


def _colours_with_ties() -> np.ndarray:
    """(64, 64, 3) float64 in [0, 1]: random colours, quarter-step colours (many max ties), greys, black, white."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 64, 3))
    x[:16] = np.round(x[:16] * 4) / 4  # ties between channels at the maximum, e.g. (1, 1, 0.5)
    x[16:24] = x[16:24, :, :1]  # greys: max == min, so S = 0 and H = 0
    x[24, :8] = 0.0
    x[24, 8:16] = 1.0
    return x


@pytest.mark.parametrize("source", ["random_and_ties", "photo", "all_uint8_levels"])
def test_rgb_to_hsv_equals_skimage_bit_for_bit(source):
    if source == "random_and_ties":
        x = _colours_with_ties()
    elif source == "photo":
        x = photos(64)[0] / 255.0
    else:  # every uint8 level on each channel against the others: 256 x 256 pairs, blue cycling
        r, g = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
        x = np.stack([r, g, (r * 7 + g * 3) % 256], axis=-1) / 255.0
    assert np.array_equal(_hwc(rgb_to_hsv(_chw(x))), rgb2hsv(x))


def test_tie_priority_is_blue_over_green_over_red():
    # (1, 1, 1) is grey -> H = 0; (1, 1, 0.5): R and G tie at the max, G wins: H = (2 + (0.5 - 1)/0.5)/6 = 1/6;
    # (0.5, 1, 1): G and B tie, B wins: H = (4 + (0.5 - 1)/0.5)/6 = 3/6; (1, 0.5, 1): R and B tie, B wins: H = 5/6.
    x = np.array([[[1, 1, 1], [1, 1, 0.5], [0.5, 1, 1], [1, 0.5, 1]]], dtype=np.float64)
    h = rgb_to_hsv(_chw(x))[0, 0].numpy()
    assert h.tolist() == pytest.approx([0, 1 / 6, 3 / 6, 5 / 6])


def test_hsv_to_rgb_equals_skimage_bit_for_bit_including_hue_one_and_grey():
    rng = np.random.default_rng(1)
    hsv = rng.random((48, 48, 3))
    hsv[:4, :, 0] = 1.0  # floor(6 H) = 6 wraps to sextant 0
    hsv[4:8, :, 1] = 0.0  # zero saturation: all channels equal V
    hsv[8:12, :, 0] = np.arange(48) / 6 % 1  # sextant boundaries exactly
    assert np.array_equal(_hwc(hsv_to_rgb(_chw(hsv))), hsv2rgb(hsv))


def test_round_trip_of_random_colours_equals_skimage_round_trip():
    x = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)) / 255.0  # batched: (N, 3, H, W)
    ours = hsv_to_rgb(rgb_to_hsv(_chw(x)))
    expected = np.stack([hsv2rgb(rgb2hsv(image)) for image in x])
    assert np.array_equal(_hwc(ours), expected)


def test_rejects_wrong_channel_count_and_integer_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        rgb_to_hsv(torch.zeros(1, 4, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="float"):
        hsv_to_rgb(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.gpu
def test_cuda_round_trip_equals_cpu():
    x = _chw(_colours_with_ties())
    assert torch.equal(rgb_to_hsv(x.cuda()).cpu(), rgb_to_hsv(x))
    assert torch.equal(hsv_to_rgb(rgb_to_hsv(x).cuda()).cpu(), hsv_to_rgb(rgb_to_hsv(x)))
