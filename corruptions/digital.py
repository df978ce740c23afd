"""Digital corruptions: contrast, elastic_transform, pixelate, jpeg_compression (docs/corruptions.md §5.14-§5.17).

contrast, elastic_transform and pixelate are batched tensor code on any device; jpeg_compression runs
Pillow's libjpeg on CPU, one image at a time, because it must match that encoder bit for bit.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from corruptions.filters import gaussian_filter, map_border_index, to_uint8, to_unit_float
from corruptions.presets import check_batch, check_field, get_params

_PIL_PRECISION_BITS = 22  # Pillow's 8-bit resampling fixed point: 32 - 8 - 2 bits
_CPU_CHUNK_ELEMENTS = 1 << 16  # image elements warped together on CPU


def contrast(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """Scale each channel's deviation from its own mean: ``(x - mean_ch) * c + mean_ch``, clipped (§5.14).

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects the factor c.
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    c = get_params(preset, "contrast", severity)
    x = to_unit_float(images)
    means = x.mean(dim=(2, 3), keepdim=True)  # (N, 3, 1, 1): per image and channel
    return to_uint8((x - means) * c + means)


def _affine_matrices(jitter: Tensor, size: int) -> Tensor:
    """Inverse warps (destination -> source) of the reference's random affine, float64 (N, 2, 3).

    Source points (x, y) = (c+sq, c+sq), (c+sq, c-sq), (c-sq, c-sq) with c = S // 2, sq = S // 3 (float32);
    destinations = source + float32(jitter). OpenCV's getAffineTransform solves the 3-point system and
    warpAffine inverts the forward matrix; here we solve directly for the inverse map.
    """
    n, dev = jitter.shape[0], jitter.device
    c, sq = float(size // 2), float(size // 3)
    src = torch.tensor([[c + sq, c + sq], [c + sq, c - sq], [c - sq, c - sq]], dtype=torch.float32, device=dev)
    dst = src + jitter.to(torch.float32)  # (N, 3, 2), float32 sum as in the reference
    ones = torch.ones(n, 3, 1, dtype=torch.float64, device=dev)
    a = torch.cat([dst.to(torch.float64), ones], dim=2)  # (N, 3, 3): rows (x', y', 1)
    b = src.to(torch.float64).expand(n, 3, 2)
    return torch.linalg.solve(a, b).transpose(1, 2)  # (N, 2, 3): source = M @ (x', y', 1)


def _bilinear(images: Tensor, rows: Tensor, cols: Tensor, mode: str, scipy_order: bool) -> Tensor:
    """Sample (N, C, H, W) float images at float64 (N, H, W) coordinates, taps mapped through a border mode.

    scipy_order: SciPy's arithmetic (weights ``1 - t`` and ``1 - (1 - t)``, products ``v * w_row * w_col``
    accumulated in tap order), else OpenCV's ``v * (w_row * w_col)``. Returns float64 (N, C, H, W).
    """
    n, c, h, w = images.shape
    r0, c0 = rows.floor(), cols.floor()
    wr0, wc0 = 1.0 - (rows - r0), 1.0 - (cols - c0)
    wr1, wc1 = 1.0 - wr0, 1.0 - wc0
    r0, c0 = r0.long(), c0.long()
    flat = images.to(torch.float64).reshape(n, c, h * w)
    out = None
    for dr, wr in ((0, wr0), (1, wr1)):
        ri = map_border_index(r0 + dr, h, mode)
        for dc, wc in ((0, wc0), (1, wc1)):
            idx = (ri * w + map_border_index(c0 + dc, w, mode)).reshape(n, 1, h * w).expand(n, c, h * w)
            v = flat.gather(2, idx).reshape(n, c, h, w)
            term = v * wr[:, None] * wc[:, None] if scipy_order else v * (wr * wc)[:, None]
            out = term if out is None else out + term
    return out


def elastic_transform(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None, *,
                      affine_jitter: Tensor | None = None, dx_noise: Tensor | None = None,
                      dy_noise: Tensor | None = None) -> Tensor:
    """Random affine warp, then a smooth random displacement field, in float32 (§5.15).

    1. Affine from three jittered points (``U(-delta, delta)``), bilinear, reflect-101 borders (OpenCV).
    2. ``dx, dy = float32(gaussian(U(-1, 1), sigma, mode='reflect', truncate=3) * alpha)``.
    3. Bilinear resampling at ``(row + dy, col + dx)`` with SciPy ``map_coordinates(order=1, mode='reflect')``
       (half-sample-symmetric outside), in SciPy's arithmetic; clip.

    Quirks kept: the ImageNet preset scales by 244, not 224 (presets.ELASTIC_SCALE); CIFAR and 64-px severity 1
    have alpha = sigma = 0, so only the affine applies (no displacement fields are drawn then). The warp uses
    exact float64 coordinates and bilinear weights, as current OpenCV (5.0) does to ~3e-6; OpenCV 3.4, which
    made the released data, quantised source positions to 1/32 pixel (§5.15 UNCERTAIN), a sub-grey-level
    difference on average that we do not emulate.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects (alpha, sigma, delta).
        preset: "cifar", "tiny" or "imagenet".
        generator: source of the draws, in the reference's order: jitter, dx, dy.
        affine_jitter: optional (N, 3, 2) float, ``np.random.uniform(-delta, delta, size=(3, 2))`` per image.
        dx_noise: optional (N, H, W) float, ``np.random.uniform(-1, 1, size=(H, W))`` (column displacement).
        dy_noise: optional (N, H, W) float, the second such draw (row displacement).

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    alpha, sigma, delta = get_params(preset, "elastic_transform", severity)
    n, _, h, w = images.shape
    dev = images.device
    if affine_jitter is None:
        affine_jitter = (torch.rand(n, 3, 2, generator=generator, dtype=torch.float64, device=dev) * 2 - 1) * delta
    else:
        affine_jitter = check_field(affine_jitter, "affine_jitter", (n, 3, 2), torch.float64, dev)
    fields = []
    for name, given in (("dx_noise", dx_noise), ("dy_noise", dy_noise)):
        if given is not None:
            fields.append(check_field(given, name, (n, h, w), torch.float64, dev))
        elif alpha != 0:
            fields.append(torch.rand(n, h, w, generator=generator, dtype=torch.float64, device=dev) * 2 - 1)
        else:
            fields.append(torch.zeros(n, h, w, dtype=torch.float64, device=dev))
    step = n
    if dev.type == "cpu":
        step = max(1, _CPU_CHUNK_ELEMENTS // (3 * h * w))  # cache-sized chunks on CPU (measured ~2x faster)
    chunks = zip(images.split(step), affine_jitter.split(step), fields[0].split(step), fields[1].split(step))
    return torch.cat([_elastic(*chunk, alpha, sigma) for chunk in chunks]) if n else images.clone()


def _elastic(images: Tensor, jitter: Tensor, dx_noise: Tensor, dy_noise: Tensor, alpha: float,
             sigma: float) -> Tensor:
    """elastic_transform on (N, 3, H, W) uint8 images given all draws; see there."""
    n, _, h, w = images.shape
    dev = images.device
    x = images.to(torch.float32) / 255  # np.array(image, dtype=np.float32) / 255.: a float32 division
    grid_r = torch.arange(h, dtype=torch.float64, device=dev)[None, :, None].expand(n, h, w)
    grid_c = torch.arange(w, dtype=torch.float64, device=dev)[None, None, :].expand(n, h, w)
    m = _affine_matrices(jitter, h)[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    src_c = m[:, 0, 0] * grid_c + m[:, 0, 1] * grid_r + m[:, 0, 2]
    src_r = m[:, 1, 0] * grid_c + m[:, 1, 1] * grid_r + m[:, 1, 2]
    x = _bilinear(x, src_r, src_c, "mirror", scipy_order=False).to(torch.float32)
    dx, dy = ((gaussian_filter(f, sigma, mode="reflect", truncate=3) * alpha).to(torch.float32)
              for f in (dx_noise, dy_noise))
    out = _bilinear(x, grid_r + dy.to(torch.float64), grid_c + dx.to(torch.float64), "reflect", scipy_order=True)
    return to_uint8(out.to(torch.float32))


@functools.lru_cache(maxsize=64)
def _box_windows(in_size: int, out_size: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Pillow's BOX resampling coefficients for one axis, as (first member, member count, fixed-point weight).

    Follows Pillow's ``precompute_coeffs`` in double precision: centre ``(o + 0.5) * scale``, window
    ``[int(centre - support + 0.5), int(centre + support + 0.5))``, box membership ``-0.5 < t <= 0.5``,
    equal normalised weights rounded to 22-bit fixed point. For down-scaling each source pixel belongs to
    exactly one output; for up-scaling each output copies one source pixel (nearest).
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    starts, counts, weights = [], [], []
    for o in range(out_size):
        centre = (o + 0.5) * scale
        xmin = max(int(centre - support + 0.5), 0)
        xmax = min(int(centre + support + 0.5), in_size)
        members = [x for x in range(xmin, xmax) if -0.5 < (x - centre + 0.5) * (1.0 / filterscale) <= 0.5]
        starts.append(members[0])
        counts.append(len(members))
        weights.append(int(0.5 + (1.0 / len(members)) * (1 << _PIL_PRECISION_BITS)))
    return tuple(starts), tuple(counts), tuple(weights)


def _box_resize_axis(images: Tensor, out_size: int, dim: int) -> Tensor:
    """One Pillow BOX pass along ``dim`` of an int32 tensor of 0..255 values, in exact integer arithmetic:
    ``clip8((sum_members v * k + 2^21) >> 22)``; window sums come from a cumulative sum (no loop over pixels).
    int32 cannot overflow: sum * k <= 255 * count * round(2^22 / count) < 1.07e9."""
    windows = _box_windows(images.shape[dim], out_size)
    starts, counts, weights = (torch.tensor(t, dtype=torch.int32, device=images.device) for t in windows)
    if set(windows[1]) == {1} and set(windows[2]) == {1 << _PIL_PRECISION_BITS}:
        return images.index_select(dim, starts)  # up-scaling: (v * 2^22 + 2^21) >> 22 == v, a nearest copy
    shape = [1] * images.ndim
    shape[dim] = out_size
    csum = torch.nn.functional.pad(images.cumsum(dim, dtype=torch.int32).movedim(dim, -1), (1, 0)).movedim(-1, dim)
    window = csum.index_select(dim, starts + counts) - csum.index_select(dim, starts)  # member sums
    rounded = (window * weights.view(shape) + (1 << (_PIL_PRECISION_BITS - 1))) >> _PIL_PRECISION_BITS
    return rounded.clamp_(0, 255)


def pixelate(images: Tensor, severity: int, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """Pillow BOX down-scaling to ``int(S * factor)`` and BOX up-scaling back to S, bit-exact (§4.7, §5.16).

    Separable, horizontal pass first, each pass rounded to 8 bits, as Pillow does.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects the factor.
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    side = get_params(preset, "pixelate", severity).side
    h, w = images.shape[2:]
    x = images.to(torch.int32)
    x = _box_resize_axis(_box_resize_axis(x, side, dim=3), side, dim=2)  # down: columns, then rows
    x = _box_resize_axis(_box_resize_axis(x, w, dim=3), h, dim=2)  # up: nearest source pixel
    return x.to(torch.uint8)


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def jpeg_compression(images: Tensor, severity: int, preset: str,
                     generator: torch.Generator | None = None) -> Tensor:
    """Pillow JPEG encode at the preset's quality and decode (§5.17). CPU-bound: runs Pillow's libjpeg per image
    on CPU (the only exact way to reproduce its bytes) and moves the result back to the input's device.

    Args:
        images: (N, 3, H, W) uint8, any device; H = W = the preset's size.
        severity: 1..5; selects the quality.
        preset: "cifar", "tiny" or "imagenet".
        generator: unused (deterministic); accepted for a uniform signature.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    check_batch(images, severity, preset)
    quality = get_params(preset, "jpeg_compression", severity)
    hwc = images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
    out = np.stack([_jpeg_round_trip(np.ascontiguousarray(img), quality) for img in hwc]) if len(hwc) else hwc
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)
