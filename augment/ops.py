"""AugMix ops on batched uint8 tensors, one parameter per sample, reproducing Pillow pixel for pixel.

Names and parameters are those of augment/params.ALL_OPS and augment/pil_reference.py; pixel semantics follow
docs/augmix.md §2.5. Every op takes (B, 3, H, W) uint8 on any device, returns uint8 on that device and
runs as a few whole-batch kernels without host synchronisation. One AugMix chain step (a different op per sample)
is ``apply_ops`` (one LUT gather, one warp, one blend for all: sync-free, for GPUs) or ``apply_ops_grouped`` (a loop
over op kinds on the samples that drew each: faster on CPUs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import torch
from torch import Tensor

from augment.params import AUGMIX_OPS, OPS_WITHOUT_LEVEL

AFFINE_OPS: frozenset[str] = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y"})
LUT_OPS: frozenset[str] = frozenset({"autocontrast", "equalize", "posterize", "solarize"})
ENHANCE_OPS: frozenset[str] = frozenset({"color", "contrast", "brightness", "sharpness"})
Fill = int | tuple[int, int, int]  # affine fill: a grey level on every channel, or one value per channel

# PIL's integer ITU-R 601 luma, Convert.c: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
LUMA_WEIGHTS = (19595, 38470, 7471)
# ImageFilter.SMOOTH: 3x3 kernel (1 1 1 / 1 5 1 / 1 1 1) with divisor 13, applied by ImageEnhance.Sharpness.
SMOOTH_CENTER, SMOOTH_DIVISOR = 5.0, 13.0


def check_fill(fill: Fill) -> None:
    """Raise ValueError unless ``fill`` is a grey level 0..255 or an (R, G, B) tuple of them."""
    levels = (fill,) if isinstance(fill, int) else tuple(fill)
    if len(levels) not in (1, 3) or not all(isinstance(v, int) and 0 <= v <= 255 for v in levels):
        raise ValueError(f"fill must be a grey level 0..255 or an (R, G, B) tuple of them; got {fill!r}")


def _check_images(images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"AugMix ops expect images of shape (B, C, H, W) and dtype uint8; "
                         f"got shape {tuple(images.shape)} and dtype {images.dtype}")


def _per_sample(param: Tensor | float, images: Tensor) -> Tensor:
    """``param`` as a (B,) float64 tensor on the images' device (a Python number applies to every sample)."""
    param = torch.as_tensor(param, dtype=torch.float64, device=images.device)
    if param.dim() == 0:
        return param.expand(images.shape[0])
    if param.shape != images.shape[:1]:
        raise ValueError(f"expected one parameter per sample, shape ({images.shape[0]},); got {tuple(param.shape)}")
    return param


# LUT ops: autocontrast, equalize, posterize, solarize as per-sample, per-channel 256-entry tables.

def histogram(images: Tensor) -> Tensor:
    """Per-sample, per-channel 256-bin histograms: (N, C, H, W) uint8 -> (N, C, 256) int64, same device."""
    n, c, h, w = images.shape
    return _histogram(images.reshape(n, c, h * w).long())


def _histogram(values: Tensor) -> Tensor:
    """(N, C, P) int64 values in 0..255 -> (N, C, 256) int64 counts."""
    counts = torch.zeros(values.shape[:2] + (256,), dtype=torch.int64, device=values.device)
    # scatter_add_ rather than bincount: CUDA bincount reads the maximum back to the host.
    return counts.scatter_add_(2, values, torch.ones(1, 1, 1, dtype=torch.int64, device=values.device)
                               .expand_as(values))


def apply_lut(images: Tensor, lut: Tensor) -> Tensor:
    """Map every value through its sample's and channel's table: (N, C, H, W) uint8, (N, C or 1, 256) uint8."""
    n, c, h, w = images.shape
    return _gather_lut(images.reshape(n, c, h * w).long(), lut).view(n, c, h, w)


def _gather_lut(values: Tensor, lut: Tensor) -> Tensor:
    """(N, C, P) int64 values, (N, C or 1, 256) uint8 tables -> (N, C, P) uint8."""
    return lut.expand(values.shape[:2] + (256,)).gather(2, values)


def _values(device: torch.device) -> Tensor:
    return torch.arange(256, dtype=torch.int64, device=device)


@torch.compiler.disable  # generated code rounds v * scale + offset differently; the truncation needs PIL's order
def _autocontrast_lut(images: Tensor, hist: Tensor | None = None, param: Tensor | None = None) -> Tensor:
    """ImageOps.autocontrast(cutoff=0) per channel (§2.5.3): stretch [lo, hi] to [0, 255], truncating."""
    values = _values(images.device)
    lo = images.amin((2, 3)).long().unsqueeze(-1)  # (N, C, 1): the lowest and highest values present
    hi = images.amax((2, 3)).long().unsqueeze(-1)
    span = (hi - lo).clamp_min(1).double()
    scale = torch.full_like(span, 255.0) / span  # not 255.0 / span: Tensor.__rtruediv__ multiplies by 1/span
    offset = -lo.double() * scale  # PIL: offset = -lo * scale; value = int(v * scale + offset)
    stretched = (values.double() * scale + offset).trunc().clamp(0, 255)
    return torch.where(hi > lo, stretched, values.double()).to(torch.uint8)


def _equalize_lut(images: Tensor, hist: Tensor, param: Tensor | None = None) -> Tensor:
    """ImageOps.equalize per channel (§2.5.4), including the min(255, .) clip of values that reach 256."""
    values = _values(hist.device)
    present = hist > 0
    hi = torch.where(present, values, -1).amax(-1, keepdim=True)  # (N, C, 1): highest non-empty bin
    last = hist.gather(-1, hi.clamp_min(0))
    step = (hist.sum(-1, keepdim=True) - last) // 255
    below = hist.cumsum(-1) - hist  # sum_{j < v} h[j]
    lut = ((step // 2 + below) // step.clamp_min(1)).clamp_max(255)
    keep = (present.sum(-1, keepdim=True) < 2) | (step == 0)
    return torch.where(keep, values, lut).to(torch.uint8)


def _posterize_lut(images: Tensor, hist: Tensor | None, bits: Tensor) -> Tensor:
    """Keep the top ``bits`` bits: v & (0xFF << (8 - bits)) & 0xFF (§2.5.5); (N,) bits -> (N, 1, 256)."""
    shift = (8 - bits.long()).clamp(0, 8)[:, None, None]
    mask = (255 << shift) & 255
    return (_values(bits.device) & mask).to(torch.uint8)


def _solarize_lut(images: Tensor, hist: Tensor | None, threshold: Tensor) -> Tensor:
    """Invert values at or above ``threshold``: v if v < threshold else 255 - v (§2.5.5); (N,) -> (N, 1, 256)."""
    values = _values(threshold.device)
    return torch.where(values < threshold[:, None, None], values, 255 - values).to(torch.uint8)


# (images (N, C, H, W) uint8, histogram (N, C, 256) or None, parameter (N,) or None) -> (N, C or 1, 256) uint8
_LUTS: Mapping[str, Callable[[Tensor, Tensor | None, Tensor | None], Tensor]] = MappingProxyType({
    "autocontrast": _autocontrast_lut, "equalize": _equalize_lut,
    "posterize": _posterize_lut, "solarize": _solarize_lut,
})


# Affine ops: PIL's inverse map (a, b, c, d, e, f) at pixel centres, as (N, 6) float64 coefficients.

def warp(images: Tensor, coeffs: Tensor, fill: Fill = 0, axes: str = "xy") -> Tensor:
    """PIL ``Image.transform(AFFINE, BILINEAR)`` with per-sample coefficients (§2.5.2), bit for bit.

    Output pixel (x, y) samples the source at X = a(x+.5) + b(y+.5) + c, Y = d(x+.5) + e(y+.5) + f; outside
    [0, W) x [0, H) it is ``fill``; inside, border-clamped bilinear at pixel centres in float64 (PIL's
    Geometry.c lerp order), truncated. The identity coefficients return an exact copy.

    Args:
        images: (N, C, H, W) uint8, any device.
        coeffs: (N, 6) float64 inverse-map coefficients, same device.
        fill: written outside the source box: a grey level 0..255 or an (R, G, B) tuple.
        axes: "xy" in general; "x" when every row maps onto a source row (d = 0, e = 1, f = 0: shear_x), "y"
            when every column does (a = 1, b = 0, c = 0: shear_y). The skipped lerp has weight exactly 0, where
            PIL's ``v + (u - v) * 0`` returns ``v`` unchanged, so the result is the same, for half the work.

    Returns:
        (N, C, H, W) uint8, same device.
    """
    n, c, h, w = images.shape
    xc = torch.arange(w, dtype=torch.float64, device=images.device) + 0.5
    yc = torch.arange(h, dtype=torch.float64, device=images.device) + 0.5
    a, b, cc, d, e, f = coeffs.to(torch.float64).unbind(1)
    # Same operation order as PIL's affine_transform(): (a * xin + b * yin) + c, all float64. (N, H, W) each.
    sx = (a[:, None] * xc).view(n, 1, w) + (b[:, None] * yc).view(n, h, 1)
    sx += cc.view(n, 1, 1)
    sy = (d[:, None] * xc).view(n, 1, w) + (e[:, None] * yc).view(n, h, 1)
    sy += f.view(n, 1, 1)
    outside = (sx < 0) | (sx >= w) | (sy < 0) | (sy >= h)
    sx -= 0.5
    sy -= 0.5
    x0, y0 = sx.floor(), sy.floor()
    dx, dy = sx.sub_(x0).view(n, 1, h * w), sy.sub_(y0).view(n, 1, h * w)
    x0, y0 = x0.long(), y0.long()
    xa, xb = x0.clamp(0, w - 1), x0.add_(1).clamp_(0, w - 1)  # neighbours clamped to the image, as XCLIP/YCLIP
    ya, yb = y0.clamp(0, h - 1).mul_(w), y0.add_(1).clamp_(0, h - 1).mul_(w)
    flat = images.reshape(n, c, h * w)

    def pick(row: Tensor, col: Tensor) -> Tensor:  # (N, H, W) flat offsets -> (N, C, H*W) float64
        return flat.gather(2, (row + col).view(n, 1, h * w).expand(n, c, h * w)).double()

    # Geometry.c's BILINEAR(v, a, b, d) is v = a + (b - a) * d: rows first, then between rows; in place to spare
    # the allocator (large temporaries dominate the CPU cost).
    top = pick(ya, xa)
    if axes != "y":
        top += pick(ya, xb).sub_(top).mul_(dx)
    if axes != "x":
        bottom = pick(yb, xa)
        if axes != "y":
            bottom += pick(yb, xb).sub_(bottom).mul_(dx)
        top += bottom.sub_(top).mul_(dy)
    # float -> integer truncates, as PIL's (UINT8) cast; via int32 because that conversion is vectorised on CPUs
    value = top.view(n, c, h, w).to(torch.int32).to(torch.uint8)
    return _fill_outside(value, outside, fill)


def _fill_outside(value: Tensor, outside: Tensor, fill: Fill) -> Tensor:
    """``value`` (N, C, H, W) uint8 with ``fill`` where ``outside`` (N, H, W) bool, in place.

    As value * inside + fill * outside in uint8: on a CPU ~15x faster than masked_fill_/where with a mask
    broadcast over the channels.
    """
    outside = outside.unsqueeze(1).to(torch.uint8)
    value.mul_(1 - outside)
    if isinstance(fill, int):
        return value.add_(outside * fill) if fill else value
    colour = torch.stack([torch.full((), v, dtype=torch.uint8, device=value.device) for v in fill])
    return value.add_(outside * colour.view(1, -1, 1, 1))


def _shift(images: Tensor, columns: Tensor, rows: Tensor, fill: Fill = 0) -> Tensor:
    """``warp`` for the integer translations (1, 0, columns, 0, 1, rows), without the interpolation it does not
    need: output (x, y) copies input (x + columns, y + rows) (the bilinear weights are exactly 0), else ``fill``.

    Args:
        images: (N, C, H, W) uint8; columns, rows: (N,) whole numbers of pixels (any dtype).
    """
    n, c, h, w = images.shape
    xs = torch.arange(w, device=images.device) + columns.long().view(n, 1)  # (N, W) source columns
    ys = torch.arange(h, device=images.device) + rows.long().view(n, 1)  # (N, H) source rows
    outside = ((xs < 0) | (xs >= w)).view(n, 1, w) | ((ys < 0) | (ys >= h)).view(n, h, 1)
    index = ys.clamp(0, h - 1).view(n, h, 1) * w + xs.clamp(0, w - 1).view(n, 1, w)  # (N, H, W)
    value = images.reshape(n, c, h * w).gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    return _fill_outside(value, outside, fill)


def _columns(*cols: Tensor | float, like: Tensor) -> Tensor:
    """Stack scalars and (N,) tensors into (N, 6) float64 coefficients."""
    return torch.stack([col if isinstance(col, Tensor) else torch.full_like(like, col) for col in cols], 1)


def _shear_x_coeffs(coef: Tensor, h: int, w: int) -> Tensor:
    return _columns(1.0, coef, 0.0, 0.0, 1.0, 0.0, like=coef)  # origin at the top-left corner (§2.5.2)


def _shear_y_coeffs(coef: Tensor, h: int, w: int) -> Tensor:
    return _columns(1.0, 0.0, 0.0, coef, 1.0, 0.0, like=coef)


def _translate_x_coeffs(pixels: Tensor, h: int, w: int) -> Tensor:
    return _columns(1.0, 0.0, pixels, 0.0, 1.0, 0.0, like=pixels)  # positive pixels move content left


def _translate_y_coeffs(pixels: Tensor, h: int, w: int) -> Tensor:
    return _columns(1.0, 0.0, 0.0, 0.0, 1.0, pixels, like=pixels)  # positive pixels move content up


def _pil_rotation(angle: float) -> tuple[float, float, float, float]:
    """The linear part (a, b, d, e) ``Image.rotate(angle)`` computes, in Python's own math as PIL does."""
    angle = -math.radians(angle % 360.0)
    return (round(math.cos(angle), 15), round(math.sin(angle), 15),
            round(-math.sin(angle), 15), round(math.cos(angle), 15))


_WHOLE_DEGREES = tuple(_pil_rotation(float(deg)) for deg in range(360))
_whole_degree_tables: dict[torch.device, Tensor] = {}  # one host-to-device copy per device, then reused


def _rotate_coeffs(degrees: Tensor, h: int, w: int) -> Tensor:
    """Counter-clockwise rotation about the centre (w/2, h/2), PIL ``rotate`` without expand.

    Whole degrees (AugMix's only case) take (a, b, d, e) from a table built with Python's math, as PIL does,
    so they match bit for bit; fractional angles use the same formula in torch, whose cos/sin may differ from
    libm in the last bit. The offsets follow PIL's order: c = (a * -cx + b * -cy) + cx.
    """
    turned = torch.remainder(degrees, 360.0)
    angle = -torch.deg2rad(turned)
    cos, sin = torch.round(torch.cos(angle), decimals=15), torch.round(torch.sin(angle), decimals=15)
    computed = torch.stack([cos, sin, -sin, cos], 1)
    table = _whole_degree_tables.get(degrees.device)
    if table is None:
        table = _whole_degree_tables[degrees.device] = torch.tensor(_WHOLE_DEGREES, dtype=torch.float64,
                                                                    device=degrees.device)
    whole = (turned == turned.trunc()).unsqueeze(1)
    a, b, d, e = torch.where(whole, table[turned.long().clamp(0, 359)], computed).unbind(1)
    cx, cy = w / 2, h / 2
    return torch.stack([a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy], 1)


_AFFINES: Mapping[str, Callable[[Tensor, int, int], Tensor]] = MappingProxyType({
    "rotate": _rotate_coeffs, "shear_x": _shear_x_coeffs, "shear_y": _shear_y_coeffs,
    "translate_x": _translate_x_coeffs, "translate_y": _translate_y_coeffs,
})


# Enhancers (all_ops only): blend with a per-op degenerate image, PIL's float32 blend, truncated (§2.5.6).

def _luma(images: Tensor) -> Tensor:
    """(N, 3, H, W) uint8 -> (N, 1, H, W) int32 PIL "L" values."""
    r, g, b = images.int().unbind(1)
    return ((r * LUMA_WEIGHTS[0] + g * LUMA_WEIGHTS[1] + b * LUMA_WEIGHTS[2] + 32768) >> 16).unsqueeze(1)


def _color_degenerate(images: Tensor) -> Tensor:
    return _luma(images).float()  # grayscale, broadcast over the 3 channels


def _contrast_degenerate(images: Tensor) -> Tensor:
    luma = _luma(images)
    count = torch.full((), luma[0].numel(), dtype=torch.float64, device=images.device)  # a tensor divisor: CUDA
    mean = luma.sum((1, 2, 3), dtype=torch.int64).double() / count  # divides by a Python number as x * (1 / n)
    return (mean + 0.5).trunc().float().view(-1, 1, 1, 1)  # int(mean + 0.5)


def _brightness_degenerate(images: Tensor) -> Tensor:
    return torch.zeros(images.shape[0], 1, 1, 1, device=images.device)


def _sharpness_degenerate(images: Tensor) -> Tensor:
    """ImageFilter.SMOOTH as Filter.c computes it: float32 weights k/13, rows summed y+1, y, y-1 on top of the
    0.5 rounding offset, then truncated; the 1-pixel border is copied from the input."""
    x = images.float()
    # Filter.c divides the float32 kernel by the float32 divisor (a true division, computed here on the CPU).
    side, centre = torch.tensor([1.0, SMOOTH_CENTER]).div(torch.tensor(SMOOTH_DIVISOR)).unbind()

    def row(r: Tensor, middle: Tensor) -> Tensor:  # left * k0 + middle * k1 + right * k2, left to right
        return r[..., :-2] * side + r[..., 1:-1] * middle + r[..., 2:] * side

    total = row(x[..., 2:, :], side) + 0.5
    total = total + row(x[..., 1:-1, :], centre)
    total = total + row(x[..., :-2, :], side)
    out = x.clone()
    out[..., 1:-1, 1:-1] = total.clamp(0, 255).trunc()
    return out


_DEGENERATES: Mapping[str, Callable[[Tensor], Tensor]] = MappingProxyType({
    "color": _color_degenerate, "contrast": _contrast_degenerate,
    "brightness": _brightness_degenerate, "sharpness": _sharpness_degenerate,
})


def _blend(degenerate: Tensor, images: Tensor, factor: Tensor) -> Tensor:
    """``Image.blend(degenerate, images, factor)``: float32 g + f (v - g), clipped to [0, 255], truncated."""
    f = factor.float().view(-1, 1, 1, 1)  # ImagingBlend takes a C float
    return (degenerate + f * (images.float() - degenerate)).clamp(0, 255).to(torch.uint8)


# Public ops: one call = one op for the whole batch, one parameter per sample.

def autocontrast(images: Tensor) -> Tensor:
    """Per-channel stretch of [min, max] to [0, 255] (PIL ImageOps.autocontrast, cutoff 0): (B, 3, H, W) uint8."""
    _check_images(images)
    return apply_lut(images, _autocontrast_lut(images))


def equalize(images: Tensor) -> Tensor:
    """Per-channel histogram equalisation (PIL ImageOps.equalize): (B, 3, H, W) uint8 -> uint8."""
    _check_images(images)
    n, c, h, w = images.shape
    values = images.reshape(n, c, h * w).long()  # shared by the histogram and the table lookup
    return _gather_lut(values, _equalize_lut(images, _histogram(values))).view(n, c, h, w)


def posterize(images: Tensor, bits: Tensor | float) -> Tensor:
    """Keep the top ``bits`` (B,) bits of every value (PIL ImageOps.posterize): (B, 3, H, W) uint8 -> uint8."""
    _check_images(images)
    return apply_lut(images, _posterize_lut(images, None, _per_sample(bits, images)))


def solarize(images: Tensor, threshold: Tensor | float) -> Tensor:
    """Invert values >= ``threshold`` (B,) (PIL ImageOps.solarize): (B, 3, H, W) uint8 -> uint8."""
    _check_images(images)
    return apply_lut(images, _solarize_lut(images, None, _per_sample(threshold, images)))


_SEPARABLE_AXES = MappingProxyType({"shear_x": "x", "shear_y": "y"})  # see warp(axes=...)


def _affine_op(name: str) -> Callable[..., Tensor]:
    def op(images: Tensor, param: Tensor | float, fill: Fill = 0) -> Tensor:
        _check_images(images)
        check_fill(fill)
        coeffs = _AFFINES[name](_per_sample(param, images), *images.shape[2:])
        return warp(images, coeffs, fill, _SEPARABLE_AXES.get(name, "xy"))

    return op


def _enhance_op(name: str) -> Callable[..., Tensor]:
    def op(images: Tensor, factor: Tensor | float) -> Tensor:
        _check_images(images)
        return _blend(_DEGENERATES[name](images), images, _per_sample(factor, images))

    return op


rotate = _affine_op("rotate")
rotate.__doc__ = """Rotate counter-clockwise by ``degrees`` (B,) about the centre, bilinear, ``fill`` outside."""
shear_x = _affine_op("shear_x")
shear_x.__doc__ = """Affine (1, coef, 0, 0, 1, 0) per sample: rows shift left by coef * (y + 0.5) px."""
shear_y = _affine_op("shear_y")
shear_y.__doc__ = """Affine (1, 0, 0, coef, 1, 0) per sample: columns shift up by coef * (x + 0.5) px."""
translate_x = _affine_op("translate_x")
translate_x.__doc__ = """Affine (1, 0, pixels, 0, 1, 0): content moves left by ``pixels`` (B,), ``fill`` enters."""
translate_y = _affine_op("translate_y")
translate_y.__doc__ = """Affine (1, 0, 0, 0, 1, pixels): content moves up by ``pixels`` (B,), ``fill`` enters."""
color = _enhance_op("color")
color.__doc__ = """Blend from grayscale (factor 0) to the image (factor 1), PIL ImageEnhance.Color."""
contrast = _enhance_op("contrast")
contrast.__doc__ = """Blend from the mean-luma grey (factor 0) to the image, PIL ImageEnhance.Contrast."""
brightness = _enhance_op("brightness")
brightness.__doc__ = """Blend from black (factor 0) to the image, PIL ImageEnhance.Brightness."""
sharpness = _enhance_op("sharpness")
sharpness.__doc__ = """Blend from the 3x3-smoothed image (factor 0) to the image, PIL ImageEnhance.Sharpness."""

OPS: Mapping[str, Callable[..., Tensor]] = MappingProxyType({
    "autocontrast": autocontrast, "equalize": equalize, "posterize": posterize, "rotate": rotate,
    "solarize": solarize, "shear_x": shear_x, "shear_y": shear_y, "translate_x": translate_x,
    "translate_y": translate_y, "color": color, "contrast": contrast, "brightness": brightness,
    "sharpness": sharpness,
})


def _check_step(images: Tensor, ops: Sequence[str], fill: Fill) -> None:
    _check_images(images)
    check_fill(fill)
    unknown = set(ops) - OPS.keys()
    if unknown:
        raise ValueError(f"unknown AugMix ops {sorted(unknown)}; valid: {', '.join(OPS)}")


def apply_ops(images: Tensor, op_index: Tensor, param: Tensor, ops: Sequence[str] = AUGMIX_OPS,
              fill: Fill = 0) -> Tensor:
    """One AugMix chain step: sample i gets ``ops[op_index[i]]`` with ``param[i]``, all in whole-batch kernels.

    Every sample runs through one LUT gather and one warp: a sample whose op is not a LUT op gets the identity
    table and one whose op is not affine gets the identity warp (both exact copies), so the order of the two
    does not matter. Enhancers, if listed, are one blend selected with ``torch.where``. No host sync.

    Args:
        images: (N, 3, H, W) uint8, any device.
        op_index: (N,) int64 in [0, len(ops)]; ``len(ops)`` leaves the sample unchanged (a chain already done).
        param: (N,) float; the signed parameter the op takes (degrees, coef, pixels, bits, threshold, factor).
        ops: the op names ``op_index`` indexes, e.g. ``augment.params.op_list(all_ops)``.
        fill: where affine ops uncover the image: a grey level 0..255 or an (R, G, B) tuple.

    Returns:
        (N, 3, H, W) uint8, same device.
    """
    _check_step(images, ops, fill)
    n, c, h, w = images.shape
    param = param.to(torch.float64)
    chosen = [(name, (op_index == k)) for k, name in enumerate(ops)]
    out = images
    if LUT_OPS & set(ops):
        values = images.reshape(n, c, h * w).long()  # shared by the histogram and the table lookup
        hist = _histogram(values) if "equalize" in ops else None
        lut = _values(images.device).to(torch.uint8).view(1, 1, 256)
        for name, sel in chosen:
            if name in LUT_OPS:
                lut = torch.where(sel.view(n, 1, 1), _LUTS[name](images, hist, param), lut)
        out = _gather_lut(values, lut).view(n, c, h, w)
    if AFFINE_OPS & set(ops):
        coeffs = _columns(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, like=param)
        for name, sel in chosen:
            if name in AFFINE_OPS:
                coeffs = torch.where(sel.view(n, 1), _AFFINES[name](param, h, w), coeffs)
        out = warp(out, coeffs, fill)
    if ENHANCE_OPS & set(ops):
        degenerate = torch.zeros(n, 1, 1, 1, device=images.device)
        enhanced = torch.zeros(n, dtype=torch.bool, device=images.device)
        for name, sel in chosen:
            if name in ENHANCE_OPS:
                degenerate = torch.where(sel.view(n, 1, 1, 1), _DEGENERATES[name](images), degenerate)
                enhanced = enhanced | sel
        out = torch.where(enhanced.view(n, 1, 1, 1), _blend(degenerate, images, param), out)
    return out


def apply_ops_grouped(images: Tensor, op_index: Tensor, param: Tensor, ops: Sequence[str] = AUGMIX_OPS,
                      fill: Fill = 0) -> Tensor:
    """``apply_ops`` as a loop over op kinds (airbench's pattern): each op runs only on the samples that drew it.

    Same results as :func:`apply_ops`, several times faster on a CPU because no sample pays for the other ops or
    for an identity step. The samples are sorted by op so that every group is a contiguous slice; the group
    sizes are read back to the host, so on a GPU this would synchronise every step: use :func:`apply_ops` there.

    Args and returns: as :func:`apply_ops`.
    """
    _check_step(images, ops, fill)
    order = torch.argsort(op_index, stable=True)
    counts = torch.bincount(op_index, minlength=len(ops) + 1).tolist()  # the host read (free on a CPU)
    images, param = images.index_select(0, order), param.to(torch.float64).index_select(0, order)
    pieces, start = [], 0
    for k, count in enumerate(counts):
        subset, value = images[start:start + count], param[start:start + count]
        start += count
        if count == 0 or k == len(ops):  # nothing drew this op, or the chain has ended (identity)
            pieces.append(subset)
        elif ops[k] in ("translate_x", "translate_y") and torch.equal(value, value.trunc()):  # AugMix: whole px
            zero = torch.zeros_like(value)
            columns, rows = (value, zero) if ops[k] == "translate_x" else (zero, value)
            pieces.append(_shift(subset, columns, rows, fill))
        elif ops[k] in OPS_WITHOUT_LEVEL:
            pieces.append(OPS[ops[k]](subset))
        elif ops[k] in AFFINE_OPS:
            pieces.append(OPS[ops[k]](subset, value, fill))
        else:
            pieces.append(OPS[ops[k]](subset, value))
    return torch.cat(pieces).index_select(0, torch.argsort(order))  # back to the input order
