"""The four "validation" corruptions: speckle_noise, gaussian_blur, spatter, saturate (docs/corruptions.md §5.4, §5.5,
§5.18, §5.19), batched on any device.

Spatter's water mode runs OpenCV's Canny -> distance transform -> blur -> equalizeHist -> filter2D chain; it is
ported here to batched torch and checked against OpenCV image by image in tests/test_corruptions_extra.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from corruptions.color import hsv_to_rgb, rgb_to_hsv
from corruptions.filters import border_indices, gaussian_filter, to_uint8, to_unit_float
from corruptions.noise import normal_field
from corruptions.presets import check_batch, check_field, get_params

WATER_RGB = (175, 238, 238)  # pale turquoise, added in water mode (reference "water is pale turquoise")
MUD_RGB = (63, 42, 20)  # brown, blended in mud mode
CANNY_THRESHOLDS = (50, 150)  # cv2.Canny(layer, 50, 150), Sobel aperture 3, L1 gradient
DIST_TRUNCATE = 20.0  # cv2.threshold(dist, 20, 20, THRESH_TRUNC)
# cv2.distanceTransform(DIST_L2, 5): chamfer weights for a step of (0, 1), (1, 1) and a knight move (1, 2).
_CHAMFER_WEIGHTS = (1.0, 1.4, 2.1969)
_EMBOSS = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))  # the reference's 3x3 filter2D kernel (correlation)
_TG22 = round(0.4142135623730950488 * (1 << 15))  # OpenCV Canny: tan(22.5 deg) in 15-bit fixed point


def speckle_noise(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
                  noise: Tensor | None = None) -> Tensor:
    """Multiplicative noise ``x + x * N(0, sigma^2)`` per element, clipped (§5.4).

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
    noise = normal_field(images, get_params(preset, "speckle_noise", severity), generator, noise)
    x = to_unit_float(images)
    return to_uint8(x + x * noise)


def gaussian_blur(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """Per-channel Gaussian blur, scikit-image ``gaussian`` semantics (border nearest, truncate 4) (§5.5).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects sigma from the preset.
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic corruption); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    sigma = get_params(preset, "gaussian_blur", severity)
    return to_uint8(gaussian_filter(to_unit_float(images), sigma, mode="nearest", truncate=4.0))


def saturate(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """HSV round trip with ``S <- clip(S * k + b, 0, 1)`` (§5.19), bit-identical to the scikit-image reference.

    Quirk kept (pitfall 14): with an offset b > 0, grey pixels (hue 0) gain saturation and turn reddish,
    e.g. grey 77 -> (77, 61, 61) at k = 20, b = 0.2; black stays black.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (k, b) from the preset.
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic corruption); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    multiplier, offset = get_params(preset, "saturate", severity)
    hsv = rgb_to_hsv(to_unit_float(images))
    h, s, v = hsv.unbind(1)
    s = (s * multiplier + offset).clamp(0, 1)
    return to_uint8(hsv_to_rgb(torch.stack((h, s, v), dim=1)))


def spatter(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
            liquid_noise: Tensor | None = None, clip_layer: bool = False) -> Tensor:
    """Water drops (severities with mode 0) or mud (mode 1) from a thresholded, smoothed noise layer (§5.18).

    Quirk kept: in water mode the reference casts ``layer * 255`` to uint8, which wraps modulo 256 where the
    smoothed layer exceeds 1 (about 1 CIFAR image in 5 at severity 3, 1 in 3 at 64 px; never at 224 px), leaving
    dark holes in the drops; ``clip_layer=True`` saturates at 255 instead. Edge case: when a water mask is all
    zero the reference divides 0 by 0 and its uint8 cast turns the NaN image black (§5.18, pitfall 20); we
    treat it as "no spatter" and return the input's float round trip (the input itself).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (loc, scale, sigma, threshold, intensity, mode) from the preset.
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the liquid layer.
        liquid_noise: optional (N, H, W) float64, the unsmoothed layer ``N(loc, scale)``, e.g. the
            reference's ``np.random.normal(size=(H, W), loc=loc, scale=scale)``.
        clip_layer: corrected variant (not a random field): saturate the 8-bit water layer instead of wrapping.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    loc, scale, sigma, threshold, intensity, mode = get_params(preset, "spatter", severity)
    n, _, h, w = images.shape
    if liquid_noise is None:
        liquid_noise = loc + scale * torch.randn((n, h, w), generator=generator, dtype=torch.float64,
                                                 device=images.device)
    else:
        liquid_noise = check_field(liquid_noise, "liquid_noise", (n, h, w), torch.float64, images.device)
    liquid = gaussian_filter(liquid_noise, sigma, mode="nearest", truncate=4.0)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    x = images.to(torch.float32) / 255  # the reference divides a float32 array
    if mode == 0:
        return _water(x, liquid, intensity, clip_layer)
    return _mud(x, liquid, threshold, intensity)


def _water(x: Tensor, liquid: Tensor, intensity: float, clip_layer: bool) -> Tensor:
    """Water mode on float32 images (N, 3, H, W) in [0, 1] and the thresholded float64 layer (N, H, W)."""
    mask = water_mask(liquid, intensity, clip_layer)  # (N, H, W)
    return to_uint8(x + mask[:, None] * water_colour(x.device)[None, :, None, None])


def water_mask(liquid: Tensor, intensity: float, clip_layer: bool = False) -> Tensor:
    """The water-mode spatter mask (§5.18 steps 1-3) of thresholded float64 layers (M, H, W) -> (M, H, W) float32.

    Quirks kept by default: the 8-bit layer wraps modulo 256 where it exceeds 1 (NumPy's float -> uint8 cast goes
    through int32 on x86; ``clip_layer=True`` saturates instead); an all-zero mask (0/0 in the reference) gives no
    spatter.
    """
    scaled = (liquid * 255).floor().to(torch.int64)  # the layer is >= 0 after thresholding
    layer = (scaled.clamp(max=255) if clip_layer else scaled & 255).to(torch.uint8)  # (M, H, W)
    m = layer.to(torch.float32) * water_distance_map(layer)  # (M, H, W) float32
    peak = m.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, m / peak, torch.zeros_like(m)) * intensity


def water_colour(device: torch.device | str) -> Tensor:
    """Pale turquoise (175, 238, 238) / 255 as float32 (3,), the colour water mode adds."""
    return torch.tensor(WATER_RGB, dtype=torch.float64, device=device).div(255).to(torch.float32)


def _mud(x: Tensor, liquid: Tensor, threshold: float, intensity: float) -> Tensor:
    """Mud mode: a Gaussian-smoothed binary mask (zeroed below 0.8) blends the image towards brown."""
    mask = gaussian_filter((liquid > threshold).to(torch.float64), intensity, mode="nearest", truncate=4.0)
    mask = torch.where(mask < 0.8, torch.zeros_like(mask), mask)[:, None]  # (N, 1, H, W) float64
    # The reference scales its float32 image in place by the float64 (1 - m) and adds the float64 colour.
    faded = (x.to(torch.float64) * (1 - mask)).to(torch.float32)
    colour = torch.tensor(MUD_RGB, dtype=torch.float64, device=x.device).div(255)[None, :, None, None]
    return to_uint8(faded.to(torch.float64) + colour * mask)


def water_distance_map(layer: Tensor) -> Tensor:
    """The reference's water-mode ``dist`` map from the 8-bit liquid layer, batched (§5.18 step 2).

    ``255 - Canny(layer, 50, 150)`` -> ``distanceTransform(DIST_L2, 5)`` -> truncate at 20 -> 3x3 box blur ->
    uint8 cast -> ``equalizeHist`` -> 3x3 ``filter2D`` into uint8 -> 3x3 box blur (uint8) -> float32, each step
    with OpenCV's arithmetic and border rules. Bit-exact against OpenCV 5.0 with IPP (tested per image).

    Args:
        layer: (N, H, W) uint8, any device.

    Returns:
        (N, H, W) float32 holding integers 0..255, same device.
    """
    dist = distance_transform_chamfer(canny_edges(layer)).clamp(max=DIST_TRUNCATE)
    dist = _box3_float32(dist).to(torch.uint8)  # .astype(np.uint8): truncation
    dist = equalize_hist(dist)
    dist = _emboss(dist)
    return _box3_uint8(dist).to(torch.float32)


def canny_edges(layer: Tensor) -> Tensor:
    """``cv2.Canny(layer, 50, 150) > 0`` for uint8 images: 3x3 Sobel with replicated borders, L1 magnitude,
    OpenCV's fixed-point non-maximum suppression, hysteresis by 8-connected growth from strong pixels.

    Args:
        layer: (N, H, W) uint8, any device.

    Returns:
        (N, H, W) bool edge map, same device.
    """
    low, high = CANNY_THRESHOLDS
    p = _pad(layer.to(torch.int32), "nearest")  # (N, H+2, W+2); Canny's Sobel uses BORDER_REPLICATE
    # Separable 3x3 Sobel, exact in integers: difference along one axis, [1, 2, 1] smoothing along the other.
    diff_x = p[:, :, 2:] - p[:, :, :-2]  # (N, H+2, W)
    gx = diff_x[:, :-2] + diff_x[:, 1:-1] * 2 + diff_x[:, 2:]
    smooth_x = p[:, :, :-2] + p[:, :, 1:-1] * 2 + p[:, :, 2:]  # (N, H+2, W)
    gy = smooth_x[:, 2:] - smooth_x[:, :-2]
    mag = gx.abs() + gy.abs()
    candidate = ((mag > low) & _local_maximum(gx, gy, mag)).to(torch.uint8)
    edges = candidate & (mag > high).to(torch.uint8)
    # Hysteresis: grow strong edges into 8-connected candidates until nothing changes. The number of rounds is
    # the longest weak chain: 1-6 for spatter's liquid layers, more on textured photographs.
    while True:
        grown = edges | (candidate & _dilate3(edges))
        if torch.equal(grown, edges):
            return edges.to(torch.bool)
        edges = grown


def _local_maximum(gx: Tensor, gy: Tensor, mag: Tensor) -> Tensor:
    """OpenCV Canny's non-maximum suppression: is ``mag`` a maximum across the edge, per pixel? (N, H, W) bool.

    The gradient direction falls in one of four sectors, decided in 15-bit fixed point as OpenCV does
    (``|gy| << 15`` against ``|gx| * tan(22.5)`` and ``|gx| * tan(67.5)``); the comparison with one of the two
    neighbours is strict and with the other not, except on diagonals. Magnitudes outside the image are 0.
    """
    h, w = mag.shape[-2:]
    padded = F.pad(mag, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> Tensor:  # magnitude of the neighbour (y + dy, x + dx)
        return padded[:, 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]

    ax, ay = gx.abs(), gy.abs() << 15
    tg22 = ax * _TG22
    horizontal = ay < tg22
    vertical = ~horizontal & (ay > tg22 + (ax << 16))
    keep_h = (mag > at(0, -1)) & (mag >= at(0, 1))
    keep_v = (mag > at(-1, 0)) & (mag >= at(1, 0))
    keep_d = torch.where((gx ^ gy) >= 0, (mag > at(-1, -1)) & (mag > at(1, 1)), (mag > at(-1, 1)) & (mag > at(1, -1)))
    return torch.where(horizontal, keep_h, torch.where(vertical, keep_v, keep_d))


def _dilate3(mask: Tensor) -> Tensor:
    """3x3 binary dilation of (N, H, W) uint8 0/1 masks, zero outside, as two separable passes of ORs."""
    p = F.pad(mask, (1, 1, 1, 1))
    rows = p[:, :, :-2] | p[:, :, 1:-1] | p[:, :, 2:]  # (N, H+2, W)
    return rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]


def distance_transform_chamfer(zero: Tensor, limit: int = 20) -> Tensor:
    """``cv2.distanceTransform(src, DIST_L2, 5)`` with ``zero == (src == 0)``, exact wherever the result is <= limit.

    OpenCV builds with Intel IPP (the pip wheels; the IPP branch exists since 3.x, so the reference's
    opencv-python 3.4.2 most likely took it) run two raster passes in float32 with weights 1, 1.4f, 2.1969f, so
    a pixel's value is the float32 sum along the path those passes find (paths of equal real length round
    differently). We replay the passes row by row, batched over images and columns. Inside a row a pass is the
    recurrence ``t[j] = min(a[j], t[j-1] + 1)``; float rounding is monotone, so it unrolls exactly to
    ``min_k (((a[j-k] + 1) + 1) ... + 1)``, and ``k <= limit`` suffices because each step adds at least 1.
    Larger values are not exact (callers truncate them); pixels with no zero pixel reachable are inf. (Without
    IPP, OpenCV uses 16.16 fixed point instead, within 1e-4 of this.)

    Args:
        zero: (N, H, W) bool, True where the distance is 0 (the edges); any device.
        limit: distances up to this value are exact.

    Returns:
        (N, H, W) float32, same device.
    """
    n, h, w = zero.shape
    hv, diag, knight = (torch.tensor(v, dtype=torch.float32).item() for v in _CHAMFER_WEIGHTS)
    # The forward pass's neighbours in the two rows above as (rows up, columns left, weight); the same-row
    # left neighbour is the row scan. The backward pass mirrors both (rows below, columns right).
    above = ((2, 1, knight), (2, -1, knight), (1, 2, knight), (1, 1, diag), (1, 0, hv), (1, -1, diag),
             (1, -2, knight))
    t = torch.full((n, h + 4, w + 4), float("inf"), dtype=torch.float32, device=zero.device)  # 2-pixel inf border
    for sweep in (1, -1):  # forward (top-down, left-right), then backward (bottom-up, right-left)
        for i in (range(h) if sweep == 1 else range(h - 1, -1, -1)):
            r = i + 2
            terms = [t[:, r - dy * sweep, 2 - dx * sweep: 2 - dx * sweep + w] + weight for dy, dx, weight in above]
            if sweep == -1:
                terms.append(t[:, r, 2: 2 + w])  # the forward pass's value
            row = terms[0]
            for term in terms[1:]:
                row = torch.minimum(row, term)
            if sweep == 1:
                row = row.masked_fill(zero[:, i], 0.0)
            t[:, r, 2: 2 + w] = _row_scan(row, hv, limit, reverse=sweep == -1)
    return t[:, 2: 2 + h, 2: 2 + w].clone()


def _row_scan(a: Tensor, step: float, limit: int, reverse: bool) -> Tensor:
    """``t[j] = min(a[j], t[j -/+ 1] + step)`` along the last axis, unrolled ``limit`` times (see above)."""
    out, carried = a.clone(), a
    for k in range(1, min(limit, a.shape[-1] - 1) + 1):
        # after k steps carried[m] = a[m (+ k)] + step + ... + step, which competes at column m + k (m)
        carried = (carried[..., 1:] if reverse else carried[..., :-1]) + step
        target = out[..., :-k] if reverse else out[..., k:]
        torch.minimum(target, carried, out=target)
    return out


def equalize_hist(images: Tensor) -> Tensor:
    """``cv2.equalizeHist`` per image: LUT ``round(float32(cdf excluding the first used bin) * 255 / (N - h_min))``.

    Args:
        images: (N, H, W) uint8, any device.

    Returns:
        (N, H, W) uint8, same device.
    """
    n = images.shape[0]
    total = images.shape[1] * images.shape[2]
    flat = images.reshape(n, total).to(torch.int64)  # explicit size: an empty batch reshapes too
    hist = torch.zeros((n, 256), dtype=torch.int64, device=images.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).to(torch.int8).argmax(dim=1, keepdim=True)  # (N, 1): lowest level present
    first_count = hist.gather(1, first)
    scale = torch.tensor(255.0, dtype=torch.float32, device=images.device) / (total - first_count).to(torch.float32)
    lut = torch.round((hist.cumsum(1) - first_count).to(torch.float32) * scale)  # cvRound: half to even
    levels = torch.arange(256, device=images.device)[None]
    lut = torch.where(levels <= first, torch.zeros_like(lut), lut)
    lut = torch.where(first_count == total, levels.to(lut.dtype).expand(n, -1), lut)  # one level: unchanged
    return lut.clamp(0, 255).to(torch.uint8).gather(1, flat).reshape(images.shape)


def _pad(x: Tensor, mode: str) -> Tensor:
    """Pad the last two axes of (N, H, W) by one pixel with a SciPy/OpenCV border rule (any dtype)."""
    rows = border_indices(x.shape[-2], 1, mode, device=x.device)
    cols = border_indices(x.shape[-1], 1, mode, device=x.device)
    return x[:, rows][:, :, cols]


def _box3_float32(x: Tensor) -> Tensor:
    """``cv2.blur(x, (3, 3))`` on float32: reflect-101 border, sum in float64, times 1/9, rounded to float32.

    The inputs are multiples of 2^-16 up to 20 (chamfer distances), so the float64 sums are exact in any order.
    """
    return (_sum3x3(_pad(x.to(torch.float64), "mirror")) * (1.0 / 9)).to(torch.float32)


def _box3_uint8(x: Tensor) -> Tensor:
    """``cv2.blur(x, (3, 3))`` on uint8: OpenCV's integer division by 9, ``((sum + 4) * 7282) >> 16``."""
    return (((_sum3x3(_pad(x.to(torch.int32), "mirror")) + 4) * 7282) >> 16).to(torch.uint8)


def _sum3x3(p: Tensor) -> Tensor:
    """Sums over 3x3 windows of a (N, H+2, W+2) padded tensor -> (N, H, W), rows then columns."""
    rows = p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def _emboss(x: Tensor) -> Tensor:
    """``cv2.filter2D(x, CV_8U, _EMBOSS)``: correlation, reflect-101 border, integer sum saturated to uint8."""
    p = _pad(x.to(torch.int32), "mirror")
    h, w = x.shape[-2:]
    total = sum(k * p[:, dy: dy + h, dx: dx + w] for dy, row in enumerate(_EMBOSS) for dx, k in enumerate(row) if k)
    return total.clamp(0, 255).to(torch.uint8)
