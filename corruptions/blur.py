"""Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur (docs/corruptions.md §4, §5.6-§5.9).

Batched over images on any device. glass_blur replaces the reference's per-pixel Python loop (45 of the 66
CPU-hours of ImageNet-C) by the exact pointer-jumping form of its sequential copy semantics (§4.6).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from corruptions.filters import (
    border_indices,
    clipped_zoom,
    clipped_zoom_sides,
    gaussian_filter,
    motion_blur_line,
    to_uint8,
    to_unit_float,
)
from corruptions.presets import check_batch, check_field, get_params


def opencv_gaussian_kernel(ksize: int, sigma: float) -> Tensor:
    """``cv2.getGaussianKernel(ksize, sigma)`` for sigma > 0, in float64: ``exp(-x^2 / 2 sigma^2)`` normalised,
    x = i - (ksize - 1) / 2. (OpenCV's sigma <= 0 defaults never occur: every alias sigma is positive.)"""
    if sigma <= 0:
        raise ValueError(f"opencv_gaussian_kernel needs sigma > 0, got {sigma!r}")
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) * 0.5
    t = np.exp((-0.5 / (sigma * sigma)) * x * x)
    return torch.from_numpy(t * (1.0 / t.sum()))


def _opencv_symmetric_pass(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """One pass of OpenCV's small symmetric separable filter on float32 data, reflect-101 borders, in float32:
    ``x0 * k0 + (x-1 + x+1) * k1 [+ (x-2 + x+2) * k2]``, every operation rounded (OpenCV 3.4's SSE code)."""
    r, n = len(kernel) // 2, x.shape[axis]
    padded = np.take(x, border_indices(n, r, "mirror").numpy(), axis=axis)
    tap = lambda o: np.take(padded, np.arange(r + o, r + o + n), axis=axis)  # noqa: E731
    out = tap(0) * kernel[r] + (tap(-1) + tap(1)) * kernel[r + 1]
    for j in range(2, r + 1):
        out = out + (tap(-j) + tap(j)) * kernel[r + j]
    return out


def disk_kernel(radius: float, alias_sigma: float) -> Tensor:
    """The reference's anti-aliased disk (§4.1): (K, K) float64 holding the float32 kernel, K = 17 or 2r + 1.

    Aliased disk ``X^2 + Y^2 <= r^2`` on the integer grid -8..8 (r <= 8) or -r..r, normalised in float32,
    then OpenCV ``GaussianBlur`` with a 3x3 (r <= 8) or 5x5 kernel, sigma = alias_sigma, border
    BORDER_REFLECT_101: float32 1-D Gaussian, row pass then column pass in float32 arithmetic. This is bit-equal
    to current OpenCV for every CIFAR and 64-px kernel; for ImageNet's r >= 4 current OpenCV fuses
    multiply-adds (FMA) and differs in the last float32 bit of a few taps, while OpenCV 3.4 (the reference's)
    rounded each operation as here.
    Quirk kept (§4.1): for r = 8 and r = 10 the disk touches the array edge and the reflect-101 blur folds
    mass back inside, so the kernel sums to more than 1 (1.0130, 1.0108); it is not renormalised.
    """
    if radius <= 8:
        half, ksize = 8, 3
    else:
        half, ksize = int(radius), 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)  # float32, as the reference
    g = opencv_gaussian_kernel(ksize, alias_sigma).numpy().astype(np.float32)  # OpenCV's kernel type for float32
    blurred = _opencv_symmetric_pass(_opencv_symmetric_pass(disk, g, axis=1), g, axis=0)  # rows, then columns
    return torch.from_numpy(blurred.astype(np.float64))


_DIRECT_MAX_TAPS = 49  # non-zero cores up to 7x7 are applied tap by tap; larger ones through a float64 FFT
_CPU_CHUNK_ELEMENTS = 1 << 16  # float64 image elements filtered together on CPU


def _filter2d_reflect101(x: Tensor, kernel: Tensor) -> Tensor:
    """Per-channel correlation with a square odd (K, K) kernel, borders reflect-101 (``cv2.filter2D`` defaults).

    Exact-zero rims of the kernel add nothing, so only the centred non-zero core is applied. Small cores (the
    CIFAR and 64-px radii) are summed tap by tap in float64; larger ones use a float64 FFT, as OpenCV itself
    does for every 17x17 disk (its DFT threshold is 50 taps for float64), so both agree with the reference to
    ~1e-16 and the truncated output within one grey level (rarely off by one).

    Args:
        x: (N, C, H, W) float64, any device.
        kernel: (K, K) float64, K odd.

    Returns:
        (N, C, H, W) float64, same device.
    """
    n, c, h, w = x.shape
    step = max(1, _CPU_CHUNK_ELEMENTS // max(1, c * h * w))
    if x.device.type == "cpu" and n > step:  # cache-sized chunks on CPU (measured 2-3x faster for large batches)
        return torch.cat([_filter2d_reflect101(chunk, kernel) for chunk in x.split(step)])
    centre = kernel.shape[0] // 2
    nz = kernel.nonzero()
    r = int((nz - centre).abs().max()) if nz.numel() else 0
    core = kernel[centre - r:centre + r + 1, centre - r:centre + r + 1].to(dtype=x.dtype, device=x.device)
    rows = border_indices(h, r, "mirror", device=x.device)
    cols = border_indices(w, r, "mirror", device=x.device)
    padded = x[:, :, rows][:, :, :, cols]  # (N, C, H + 2r, W + 2r)
    if core.numel() <= _DIRECT_MAX_TAPS or x.numel() == 0:
        out = torch.zeros_like(x)
        for dy, dx in core.nonzero().tolist():  # raster order of the non-zero taps, as OpenCV's direct filter
            out = out + core[dy, dx] * padded[:, :, dy:dy + h, dx:dx + w]
        return out
    size = (h + 2 * r, w + 2 * r)
    # Correlation = product with the conjugate spectrum; outputs 0..H-1 read padded samples 0..H+2r-1 only,
    # so the circular transform of the padded image has no wrap-around in the kept region.
    spectrum = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(core, s=size).conj()
    return torch.fft.irfft2(spectrum, s=size)[:, :, :h, :w]


def defocus_blur(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """Correlate each channel with the anti-aliased disk of §4.1 (reflect-101 borders), clip (§5.7).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (radius, alias sigma).
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    radius, alias_sigma = get_params(preset, "defocus_blur", severity)
    return to_uint8(_filter2d_reflect101(to_unit_float(images), disk_kernel(radius, alias_sigma)))


def glass_destinations(size: int, delta: int) -> tuple[Tensor, Tensor]:
    """Rows and columns of the glass-blur destinations in visiting order: descending raster order over
    rows and columns ``size - delta .. delta + 1`` (§4.6). Returns two (P,) int64 tensors, P = (size - 2 delta)^2."""
    side = size - 2 * delta
    k = torch.arange(side * side)
    return size - delta - k // side, size - delta - k % side


def glass_sources(offsets: Tensor, size: int, delta: int) -> Tensor:
    """For one pass of the reference's local pixel "swap" (really a copy), the pixel each output pixel copies.

    Sequentially, destination p (descending raster order) takes the current value of q = p + (dy, dx), so a
    source visited earlier contributes its new value: new(p) = new(q) if q is a destination visited earlier
    (larger raster index), else orig(q). Pointer jumping resolves these chains in O(log P) gathers, vectorised
    over the batch and all pixels (§4.6, bit-identical to the sequential loop). With delta = 1 every offset
    is in {-1, 0}, no source is visited earlier, and the map is simply q.

    Args:
        offsets: (N, P, 2) int64 (dx, dy) per destination in visiting order, values in [-delta, delta - 1].
        size: image side S.
        delta: maximum offset.

    Returns:
        (N, S * S) int64 raster index of the iteration-start pixel that each output pixel holds.
    """
    n, dev = offsets.shape[0], offsets.device
    side = size - 2 * delta
    rows, cols = (t.to(dev) for t in glass_destinations(size, delta))
    src_rows = rows + offsets[..., 1]  # (N, P)
    src_cols = cols + offsets[..., 0]
    source = src_rows * size + src_cols  # (N, P) raster index of q
    if delta > 1:
        k = torch.arange(side * side, device=dev)  # visiting order of each destination
        k_src = (size - delta - src_rows) * side + (size - delta - src_cols)  # visiting order of q if a destination
        q_is_dest = (src_rows > delta) & (src_rows <= size - delta) & (src_cols > delta) & (src_cols <= size - delta)
        nxt = torch.where(q_is_dest & (k_src < k), k_src, k)  # chain pointer; terminals point to themselves
        for _ in range(math.ceil(math.log2(side * side)) + 1):  # chains are shorter than P
            jumped = nxt.gather(1, nxt)
            if torch.equal(jumped, nxt):
                break
            nxt = jumped
        source = source.gather(1, nxt)  # a terminal's q holds its iteration-start value
    full = torch.arange(size * size, device=dev).repeat(n, 1)  # (N, S*S) untouched pixels keep their own value
    full[:, rows * size + cols] = source
    return full


def glass_shuffle(images: Tensor, offsets: Tensor, delta: int) -> Tensor:
    """One exact pass of the local pixel shuffle (see :func:`glass_sources`) on (N, C, S, S) images of any dtype.

    uint8 RGB pixels are packed into one int32 per pixel, so each pass is a single gather.
    """
    n, c, s, _ = images.shape
    sources = glass_sources(offsets, s, delta)  # (N, S*S)
    if images.dtype == torch.uint8 and c <= 3:
        flat = images.reshape(n, c, s * s).to(torch.int32)
        packed = flat[:, 0]
        for ch in range(1, c):
            packed = packed | (flat[:, ch] << (8 * ch))
        moved = packed.gather(1, sources)  # (N, S*S)
        return torch.stack([(moved >> (8 * ch)) & 255 for ch in range(c)], dim=1).to(torch.uint8).reshape(n, c, s, s)
    flat = images.reshape(n, c, s * s)
    return flat.gather(2, sources[:, None, :].expand(n, c, s * s)).reshape(n, c, s, s)


def glass_blur(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
               offsets: Tensor | None = None) -> Tensor:
    """Gaussian blur, ``iterations`` local pixel shuffles on the 8-bit result, Gaussian blur again (§5.6).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (sigma, delta, iterations).
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the offsets.
        offsets: optional (N, iterations, P, 2) int, P = (S - 2 delta)^2: per pass and destination (visiting
            order, see :func:`glass_destinations`) the (dx, dy) offsets in [-delta, delta - 1]; one
            ``np.random.randint(-delta, delta, size=(P, 2))`` call per pass replays the reference's stream.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    sigma, delta, iterations = get_params(preset, "glass_blur", severity)
    n, _, s, _ = images.shape
    shape = (n, iterations, (s - 2 * delta) ** 2, 2)
    if offsets is None:
        # int8 draws: 2.5x cheaper than int64 on CPU (measured); |offsets| <= 4 always fits.
        offsets = torch.randint(-delta, delta, shape, generator=generator, device=images.device, dtype=torch.int8)
    else:
        offsets = check_field(offsets, "offsets", shape, torch.int64, images.device)
        if offsets.numel() and (offsets.min() < -delta or offsets.max() >= delta):
            raise ValueError(f"glass_blur offsets must lie in [{-delta}, {delta - 1}] at this severity")
    # np.uint8(gaussian(x) * 255): a truncation with no clip (a Gaussian of [0, 1] data stays in [0, 1]).
    shuffled = (gaussian_filter(to_unit_float(images), sigma) * 255).to(torch.uint8)
    for i in range(iterations):
        shuffled = glass_shuffle(shuffled, offsets[:, i], delta)
    return to_uint8(gaussian_filter(to_unit_float(shuffled), sigma))


def motion_blur(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
                angles_deg: Tensor | None = None) -> Tensor:
    """ImageMagick motion blur at a random angle per image, rounded to 8 bits (§4.4, §5.8).

    The reference blurs through Wand/ImageMagick and decodes an 8-bit PNG, so the result is rounded, not
    truncated; we apply the line kernel of :func:`corruptions.filters.motion_blur_line` to the uint8 image in
    float64 and round half up (within +-1 of ImageMagick 6.9 Q16, §9 pitfall 13).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (radius, sigma).
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the angles.
        angles_deg: optional (N,) float angles in degrees, ``np.random.uniform(-45, 45)`` in the reference.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    radius, sigma = get_params(preset, "motion_blur", severity)
    n = images.shape[0]
    if angles_deg is None:
        angles_deg = torch.rand(n, generator=generator, dtype=torch.float64, device=images.device) * 90 - 45
    else:
        angles_deg = check_field(angles_deg, "angles_deg", (n,), torch.float64, images.device)
    blurred = motion_blur_line(images.to(torch.float64), radius, sigma, angles_deg)
    return torch.floor(blurred + 0.5).clamp(0, 255).to(torch.uint8)


_ZOOM_CPU_CHUNK_ELEMENTS = 1 << 16  # images zoomed together on CPU: float64 temporaries of ~0.5 MiB stay in cache


def _zoom_average(x: Tensor, factors: tuple[float, ...]) -> Tensor:
    """``(x + sum_z clipped_zoom(x, z)) / (|Z| + 1)`` in float32, accumulating in the reference's order.

    The interpolation depends on a factor only through (crop side, zoomed side), and consecutive factors often
    share them (at 32 px, 26 factors give 14 pairs, two of them the identity), so a repeated pair reuses the
    previous layer and the identity adds x itself; the sums are the same float32 additions, in the same order.
    """
    h, w = x.shape[-2:]
    x64 = x.to(torch.float64)  # SciPy interpolates the float32 data in float64
    acc = torch.zeros_like(x)
    last_key, layer = None, None
    for z in factors:
        key = (clipped_zoom_sides(h, z), clipped_zoom_sides(w, z))
        if key == ((h, h), (w, w)):
            layer = x  # sample o sits exactly on source o with weights (1, 0): SciPy returns x unchanged
        elif key != last_key:
            layer = clipped_zoom(x64, z).to(torch.float32)
        last_key = key
        acc += layer
    return (x + acc) / (len(factors) + 1)


def zoom_blur(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """Average of the image and its clipped zooms over the preset's factor list, in float32 (§5.9).

    ``(x + sum_z clipped_zoom(x, z)) / (|Z| + 1)``; z = 1.00 is in every list, so the original carries weight
    2 / (|Z| + 1). Each zoom is one batched interpolation (bit-identical to SciPy's, see clipped_zoom).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects the factor list (§3.4).
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    factors = get_params(preset, "zoom_blur", severity)
    x = to_unit_float(images, torch.float32)  # (x / 255.).astype(float32)
    if images.device.type != "cpu" or x.numel() == 0:
        return to_uint8(_zoom_average(x, factors))
    # On CPU, cache-sized chunks of images: the ~15 passes per factor then stay in cache (measured 2-3x faster).
    step = max(1, _ZOOM_CPU_CHUNK_ELEMENTS // x[0].numel())
    return torch.cat([to_uint8(_zoom_average(chunk, factors)) for chunk in x.split(step)])
