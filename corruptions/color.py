"""Batched RGB <-> HSV conversions with scikit-image's ``rgb2hsv`` / ``hsv2rgb`` semantics, in torch.

brightness and saturate (docs/corruptions.md §5.13, §5.19) run an HSV round trip through
scikit-image; reproducing its exact float64 arithmetic (tie priority, grey handling, sextant selection)
keeps those corruptions bit-identical to the reference (§4.7).
"""

from __future__ import annotations

import torch
from torch import Tensor

# hsv2rgb picks each output channel from (v, q, p, t) by sextant i = floor(6H) mod 6, as scikit-image's
# np.choose table: i=0 (v,t,p), 1 (q,v,p), 2 (p,v,t), 3 (p,q,v), 4 (t,p,v), 5 (v,p,q).
_V, _Q, _P, _T = 0, 1, 2, 3
_SEXTANT_SOURCES = ((_V, _T, _P), (_Q, _V, _P), (_P, _V, _T), (_P, _Q, _V), (_T, _P, _V), (_V, _P, _Q))


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """RGB -> HSV exactly as ``skimage.color.rgb2hsv`` on float64 input.

    V = max(R, G, B); S = (max - min) / V, 0 where max == min; H from the sextant formula where the
    maximum's channel decides, ties resolved with priority B over G over R (scikit-image assigns R, then
    G, then B, each overwriting); H = 0 for grey pixels; H in [0, 1).

    Args:
        rgb: (..., 3, H, W) float tensor (float64 for bit-exactness) in [0, 1], channels R, G, B; any device.

    Returns:
        (..., 3, H, W) tensor, channels H, S, V, same dtype and device.
    """
    _check_channels(rgb, "rgb")
    r, g, b = rgb.unbind(-3)
    v = rgb.amax(dim=-3)
    delta = v - rgb.amin(dim=-3)  # np.ptp: max - min
    grey = delta == 0
    s = torch.where(grey, torch.zeros_like(v), delta / v)
    # Sextant offset and numerator of the channel holding the maximum; later channels win ties, as scikit-image
    # assigns red, then green, then blue. One division instead of three: 0.0 + x == x, so red stays exact.
    blue_max, green_max = b == v, g == v
    numerator = torch.where(blue_max, r - g, torch.where(green_max, b - r, g - b))
    offset = torch.where(blue_max, 4.0, torch.where(green_max, 2.0, 0.0)).to(rgb.dtype)
    h = torch.remainder((offset + numerator / delta) / 6.0, 1.0)  # numpy's % on floats: floor-mod
    h = torch.where(grey, torch.zeros_like(h), h)
    out = torch.stack((h, s, v), dim=-3)
    return torch.where(torch.isnan(out), torch.zeros_like(out), out)  # scikit-image zeroes NaNs at the end


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV -> RGB exactly as ``skimage.color.hsv2rgb`` on float64 input.

    i = floor(6H) mod 6, f = 6H - floor(6H), p = V(1 - S), q = V(1 - fS), t = V(1 - (1 - f)S).

    Args:
        hsv: (..., 3, H, W) float tensor (float64 for bit-exactness), channels H, S, V; any device.

    Returns:
        (..., 3, H, W) tensor, channels R, G, B, same dtype and device (not clipped, as scikit-image).
    """
    _check_channels(hsv, "hsv")
    h, s, v = hsv.unbind(-3)
    h6 = h * 6
    hi = torch.floor(h6)
    f = h6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    # scikit-image casts floor(6H) to uint8 before "% 6": wrap to a byte first so even out-of-range hues agree
    sextant = (hi.to(torch.int64) & 255) % 6
    table = torch.tensor(_SEXTANT_SOURCES, dtype=torch.int64, device=hsv.device)  # (6, 3)
    index = table[sextant].movedim(-1, -3)  # (..., H, W, 3) -> (..., 3, H, W)
    candidates = torch.stack((v, q, p, t), dim=-3)  # (..., 4, H, W), order _V, _Q, _P, _T
    return candidates.gather(-3, index)


def _check_channels(x: Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (..., 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1] (float64 for exactness), got {x.dtype}")
