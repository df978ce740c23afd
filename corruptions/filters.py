"""Shared filtering helpers with SciPy ``ndimage`` boundary semantics, batched in torch.

Several corruptions smooth with scikit-image/SciPy Gaussian filters whose border modes differ per step
(shared/reference/corruptions.md §4.7, pitfall 15). torch's own padding has no half-sample-symmetric
mode and cannot pad by more than the input size, so borders are built by index arithmetic instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BORDER_MODES = ("nearest", "reflect", "mirror", "wrap", "constant")


def border_indices(n: int, radius: int, mode: str, device: torch.device | str = "cpu") -> Tensor:
    """Source indices for positions ``-radius .. n-1+radius`` of a length-``n`` axis under a SciPy border mode.

    nearest: a a a | a b c | c c c;  reflect (half-sample symmetric): c b a | a b c | c b a;
    mirror (reflect-101, OpenCV's default): d c b | a b c d | c b a;  wrap: periodic;
    constant: out-of-range positions get index -1 (the caller fills them with the constant).
    """
    i = torch.arange(-radius, n + radius, device=device)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "reflect":
        j = i.remainder(2 * n)
        return torch.where(j >= n, 2 * n - 1 - j, j)
    if mode == "mirror":
        if n == 1:
            return torch.zeros_like(i)
        j = i.remainder(2 * n - 2)
        return torch.where(j >= n, 2 * n - 2 - j, j)
    if mode == "wrap":
        return i.remainder(n)
    if mode == "constant":
        return torch.where((i >= 0) & (i < n), i, torch.full_like(i, -1))
    raise ValueError(f"unknown border mode {mode!r}; valid: {', '.join(BORDER_MODES)}")


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float64,
                      device: torch.device | str = "cpu") -> Tensor:
    """SciPy's normalised 1-D Gaussian: radius ``int(truncate * sigma + 0.5)``, weights ``exp(-x^2 / 2 sigma^2)``."""
    radius = int(truncate * float(sigma) + 0.5)
    if radius == 0:
        return torch.ones(1, dtype=dtype, device=device)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 / float(sigma) ** 2 * x**2)  # SciPy's exact expression, for identical rounding
    return (k / k.sum()).to(dtype=dtype, device=device)


def correlate1d(x: Tensor, kernel: Tensor, dim: int, mode: str = "nearest", cval: float = 0.0) -> Tensor:
    """Correlate ``x`` with an odd-length 1-D ``kernel`` along ``dim`` (SciPy ``correlate1d`` semantics).

    Args:
        x: float tensor of any shape, any device.
        kernel: (2r+1,) float tensor, centred.
        dim: axis to filter.
        mode: border mode, see :func:`border_indices`.
    """
    radius = (kernel.numel() - 1) // 2
    if radius == 0:
        return x * kernel[0].to(x.dtype)
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    idx = border_indices(n, radius, mode, device=x.device)
    if mode == "constant":
        padded = x[..., idx.clamp(min=0)]
        padded = torch.where(idx >= 0, padded, torch.as_tensor(cval, dtype=x.dtype, device=x.device))
    else:
        padded = x[..., idx]
    shape = padded.shape
    out = F.conv1d(padded.reshape(-1, 1, shape[-1]), kernel.to(x.dtype).view(1, 1, -1))  # (M, 1, n)
    return out.reshape(*shape[:-1], n).movedim(-1, dim)


def gaussian_filter(images: Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> Tensor:
    """Gaussian smoothing of the last two axes, as ``scipy.ndimage.gaussian_filter`` with sigma 0 elsewhere.

    This is scikit-image's ``gaussian(x, sigma, channel_axis=...)`` on float input (default border
    'nearest', truncate 4). Elastic's displacement smoothing uses ``mode='reflect', truncate=3``.

    Args:
        images: (..., H, W) float tensor (float64 to match the reference bit for bit), any device.
        sigma: standard deviation in pixels; ``int(truncate * sigma + 0.5) == 0`` is the identity.
        mode: border mode, see :func:`border_indices`.
        truncate: kernel radius in standard deviations.

    Returns:
        Tensor of the same shape, dtype and device.
    """
    kernel = gaussian_kernel1d(sigma, truncate, dtype=images.dtype, device=images.device)
    out = correlate1d(images, kernel, dim=-2, mode=mode)  # rows first, as SciPy walks axes in order
    return correlate1d(out, kernel, dim=-1, mode=mode)
