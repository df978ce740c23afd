"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise (docs/corruptions.md §5.1-§5.3).

Each draws one field per image from the generator on the images' device; the same field can be passed in
(keyword-only) to replay the reference's NumPy draws, which makes the output bit-identical to it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from corruptions.filters import to_uint8, to_unit_float
from corruptions.presets import check_batch, check_field, get_params


def gaussian_noise(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
                   noise: Tensor | None = None) -> Tensor:
    """``x + N(0, sigma^2)`` per element, clipped (§5.1).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects sigma from the preset.
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the noise; pass a seeded one for reproducible output.
        noise: optional (N, 3, H, W) float64, the zero-mean noise itself (already times sigma), e.g. the
            reference's ``np.random.normal(size=(H, W, 3), scale=sigma)`` moved to channels-first.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    noise = normal_field(images, get_params(preset, "gaussian_noise", severity), generator, noise)
    return to_uint8(to_unit_float(images) + noise)


def normal_field(images: Tensor, sigma: float, generator: torch.Generator | None, noise: Tensor | None) -> Tensor:
    """The (N, 3, H, W) float64 field N(0, sigma^2) of gaussian and speckle noise: drawn per element from
    ``generator`` on the images' device, or the injected ``noise`` after its shape/dtype/device check."""
    if noise is None:
        return torch.randn(images.shape, generator=generator, dtype=torch.float64, device=images.device) * sigma
    return check_field(noise, "noise", images.shape, torch.float64, images.device)


def shot_noise(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
               counts: Tensor | None = None) -> Tensor:
    """Photon noise ``Poisson(x * c) / c`` per element, clipped (§5.2).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects the photon scale c (smaller is noisier).
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the Poisson draws.
        counts: optional (N, 3, H, W) Poisson counts drawn with rate ``x * c`` (any numeric dtype), e.g. the
            reference's ``np.random.poisson(x * c)`` moved to channels-first.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    c = get_params(preset, "shot_noise", severity)
    x = to_unit_float(images)
    if counts is None:
        counts = torch.poisson(x * c, generator=generator)
    else:
        counts = check_field(counts, "counts", images.shape, torch.float64, images.device)
    return to_uint8(counts / float(c))


def impulse_noise(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
                  flipped: Tensor | None = None, salted: Tensor | None = None) -> Tensor:
    """Coloured salt-and-pepper noise: every element (pixel x channel) is hit with probability ``amount`` (§5.3).

    As scikit-image's ``random_noise(mode='s&p')``: ``flipped = U[0,1) <= amount`` and ``salted = U[0,1) <= 0.5``
    are two independent Bernoulli fields; a flipped element becomes 1 if salted, else 0.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects the amount.
        preset: "cifar", "tiny" or "imagenet".
        generator: source of both fields (flipped drawn first).
        flipped: optional (N, 3, H, W) bool, the elements that are hit.
        salted: optional (N, 3, H, W) bool, salt (True) or pepper (False) where hit.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    amount = get_params(preset, "impulse_noise", severity)
    dev = images.device
    if flipped is None:
        flipped = torch.rand(images.shape, generator=generator, dtype=torch.float64, device=dev) <= amount
    else:
        flipped = check_field(flipped, "flipped", images.shape, torch.bool, dev)
    if salted is None:
        salted = torch.rand(images.shape, generator=generator, dtype=torch.float64, device=dev) <= 0.5
    else:
        salted = check_field(salted, "salted", images.shape, torch.bool, dev)
    x = torch.where(flipped, salted.to(torch.float64), to_unit_float(images))
    return to_uint8(x)
