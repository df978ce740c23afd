"""Noise corruptions (docs/corruptions.md §5.1-§5.3): bit-exact given the reference's draws, same statistics
otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corruptions.noise import gaussian_noise, impulse_noise, shot_noise
from corruptions.presets import get_params
from tests.corruption_oracles import (
    PRESET_SIZES,
    assert_same_change_statistics,
    hwc_fields,
    impulse_fields,
    photo_crops,
    photos,
    ref_gaussian_noise,
    ref_impulse_noise,
    ref_shot_noise,
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


def _draw_fields(name: str, images: np.ndarray, param: float, seed: int) -> dict:
    """The reference's NumPy draws for each image (HWC), as our keyword fields (NCHW)."""
    rng = np.random.RandomState(seed)
    if name == "gaussian_noise":
        return {"noise": hwc_fields(np.stack([rng.normal(size=im.shape, scale=param) for im in images]))}
    if name == "shot_noise":
        return {"counts": hwc_fields(np.stack([rng.poisson(im / 255.0 * param) for im in images]))}
    pairs = [impulse_fields(im.shape, param, seed + k) for k, im in enumerate(images)]
    return {"flipped": hwc_fields(np.stack([p[0] for p in pairs])),
            "salted": hwc_fields(np.stack([p[1] for p in pairs]))}


def _reference(name: str, images: np.ndarray, param: float, fields: dict, seed: int) -> np.ndarray:
    if name == "gaussian_noise":
        return np.stack([ref_gaussian_noise(im, f) for im, f in zip(images, to_nhwc(fields["noise"]))])
    if name == "shot_noise":
        return np.stack([ref_shot_noise(im, param, f) for im, f in zip(images, to_nhwc(fields["counts"]))])
    return np.stack([ref_impulse_noise(im, param, seed + k) for k, im in enumerate(images)])


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("preset", ["cifar", "tiny"])
@pytest.mark.parametrize("corruption", [gaussian_noise, shot_noise, impulse_noise], ids=lambda f: f.__name__)
def test_noise_is_bit_exact_given_the_reference_draws(corruption, preset, severity):
    name = corruption.__name__
    images = sample_images(PRESET_SIZES[preset])
    param = get_params(preset, name, severity)
    fields = _draw_fields(name, images, param, seed=severity)
    expected = _reference(name, images, param, fields, seed=severity)  # impulse: scikit-image's own draws
    got = to_nhwc(corruption(to_nchw(images), severity, preset, **fields))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_noise_is_bit_exact_with_the_per_image_package_at_224(peer, severity):
    images = photos(224, 2)
    batch = to_nchw(images)
    sigma, c = get_params("imagenet", "gaussian_noise", severity), get_params("imagenet", "shot_noise", severity)
    amount = get_params("imagenet", "impulse_noise", severity)
    for k, image in enumerate(images):
        np.random.seed(k)  # the package draws from NumPy's global generator: replay the same draws
        expected = peer.corrupt(image, severity, "gaussian_noise")
        np.random.seed(k)
        noise = np.random.normal(size=image.shape, scale=sigma)
        got = gaussian_noise(batch[k:k + 1], severity, "imagenet", noise=hwc_fields(noise[None]))
        np.testing.assert_array_equal(to_nhwc(got)[0], expected)

        np.random.seed(k)
        expected = peer.corrupt(image, severity, "shot_noise")
        np.random.seed(k)
        counts = np.random.poisson(image / 255.0 * c)
        got = shot_noise(batch[k:k + 1], severity, "imagenet", counts=hwc_fields(counts[None]))
        np.testing.assert_array_equal(to_nhwc(got)[0], expected)

        expected = peer.corrupt(image, severity, "impulse_noise", seed=k)  # scikit-image's default_rng(seed)
        flipped, salted = impulse_fields(image.shape, amount, k)
        got = impulse_noise(batch[k:k + 1], severity, "imagenet", flipped=hwc_fields(flipped[None]),
                            salted=hwc_fields(salted[None]))
        np.testing.assert_array_equal(to_nhwc(got)[0], expected)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise"])
def test_our_draws_match_the_per_image_package_statistics_at_224(peer, name):
    """Our torch draws vs the package's own draws on the same 4 photographs, every severity: per image, the
    mean |change| agrees within 5 standard errors (the noise is independent per element; see
    assert_same_change_statistics). A wrong severity moves these means by 20-70 %, hundreds of standard errors."""
    images = photos(224, 4)
    ours_fn = {"gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise}[name]
    for severity in SEVERITIES:
        np.random.seed(severity)
        kwargs = {"seed": severity} if name == "impulse_noise" else {}
        theirs = np.stack([peer.corrupt(im, severity, name, **kwargs) for im in images])
        ours = to_nhwc(ours_fn(to_nchw(images), severity, "imagenet", torch.Generator().manual_seed(severity)))
        assert_same_change_statistics(ours, theirs, images, label=f"{name} severity {severity}")


@pytest.mark.parametrize("preset", ["cifar", "tiny"])
@pytest.mark.parametrize("corruption", [gaussian_noise, shot_noise, impulse_noise], ids=lambda f: f.__name__)
def test_our_draws_match_numpy_draws_on_many_images(corruption, preset):
    """200 (32 px) / 50 (64 px) photographs: our seeded torch draws vs the reference's NumPy draws, per image
    within 5 standard errors (assert_same_change_statistics)."""
    size = PRESET_SIZES[preset]
    images = photo_crops(size, 200 if size == 32 else 50)
    name = corruption.__name__
    for severity in (1, 3, 5):
        param = get_params(preset, name, severity)
        fields = _draw_fields(name, images, param, seed=severity)
        expected = _reference(name, images, param, fields, seed=severity)
        got = to_nhwc(corruption(to_nchw(images), severity, preset, torch.Generator().manual_seed(severity)))
        assert_same_change_statistics(got, expected, images, label=f"{name} {preset} severity {severity}")


def test_impulse_hits_each_element_with_probability_amount_and_half_are_salt():
    images = to_nchw(photo_crops(32, 200))
    amount = get_params("cifar", "impulse_noise", 5)  # 0.07
    out = impulse_noise(images, 5, "cifar", torch.Generator().manual_seed(0))
    salt = (out == 255) & (images != 255)
    pepper = (out == 0) & (images != 0)
    changed = (salt | pepper).double().mean().item()
    # Hits on elements already at 255 (salt) or 0 (pepper) are invisible; these photos have few of them.
    # 614,400 Bernoulli(0.07) trials: standard deviation 0.0003, so +-0.003 is 10 sigma.
    assert changed == pytest.approx(amount, abs=0.003)
    assert salt.sum().item() / (salt | pepper).sum().item() == pytest.approx(0.5, abs=0.01)
    # Coloured noise: channels are hit independently, so some pixels are hit in exactly one channel.
    per_pixel = (salt | pepper).sum(dim=1)
    assert (per_pixel == 1).sum() > 10 * (per_pixel == 3).sum()


def test_injected_fields_with_the_wrong_shape_are_rejected():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="field 'noise' must have shape"):
        gaussian_noise(images, 1, "cifar", noise=torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match="field 'salted'"):
        impulse_noise(images, 1, "cifar", flipped=torch.zeros(2, 3, 32, 32, dtype=torch.bool),
                      salted=torch.zeros(1, 3, 32, 32, dtype=torch.bool))


def test_shot_noise_of_black_stays_black_and_mean_is_preserved():
    # Poisson(0) = 0; for grey 128 the expected count is 128 / 255 * c, so the mean is kept (before clipping).
    black = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    assert torch.equal(shot_noise(black, 5, "cifar", torch.Generator().manual_seed(0)), black)
    grey = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    out = shot_noise(grey, 5, "cifar", torch.Generator().manual_seed(0)).double()
    # Truncation lowers every value by 0.5 on average: expected mean 127.5 +- 0.1 (196,608 values, sd ~18).
    assert out.mean().item() == pytest.approx(127.5, abs=0.3)
