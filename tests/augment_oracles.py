"""Test data and NumPy oracles for the AugMix ops, shared by the PIL- and the tensor-backend tests.

The ``np_*`` functions transcribe the pixel semantics of docs/augmix.md §2.5 in plain NumPy,
written from the formulas (not from Pillow's code), so they are an independent oracle for both backends.
Every one takes and returns one (H, W, 3) uint8 array (PIL's HWC layout) and the same concrete parameter
as the op of the same name in ``augment.pil_reference`` (``NUMPY_OPS`` pairs them by name).
One detail refines §2.5 where bit-exactness needs it: enhance blends run in float32 (Pillow's blend factor is
a C float), and bilinear lerps are written in the ``v0 + (v1 - v0) t`` form (see np_affine).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

Fill = int | tuple[int, int, int]


# ---------------------------------------------------------------- images


def random_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` random (size, size, 3) uint8 arrays, uniform over 0..255."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def real_images(size: int) -> list[np.ndarray]:
    """Photographs bundled with scikit-image (no download), centre-cropped square and resized to ``size``.

    Returns:
        Three (size, size, 3) uint8 arrays: astronaut, chelsea, coffee.
    """
    import skimage.data

    out = []
    for name in ("astronaut", "chelsea", "coffee"):
        arr = getattr(skimage.data, name)()
        h, w = arr.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(arr[top:top + side, left:left + side])
        out.append(np.asarray(square.resize((size, size), Image.Resampling.BILINEAR)).copy())
    return out


def pil(array: np.ndarray) -> Image.Image:
    """(H, W, 3) uint8 array -> RGB PIL image."""
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB")


def flip_crop(img: Image.Image, rng: np.random.RandomState, padding: int = 4) -> Image.Image:
    """CIFAR-style base transform for the dataset tests: flip with p = 0.5, then a zero-padded random crop."""
    arr = np.asarray(img)
    if rng.random_sample() < 0.5:
        arr = arr[:, ::-1]
    h, w = arr.shape[:2]
    padded = np.pad(arr, ((padding, padding), (padding, padding), (0, 0)))
    top, left = rng.randint(0, 2 * padding + 1, size=2)
    return pil(padded[top:top + h, left:left + w])


# ---------------------------------------------------------------- LUT ops (§2.5.3 - §2.5.5)


def _apply_channel_luts(x: np.ndarray, luts: list[np.ndarray]) -> np.ndarray:
    return np.stack([lut[x[..., c]] for c, lut in enumerate(luts)], axis=-1).astype(np.uint8)


def np_autocontrast(x: np.ndarray) -> np.ndarray:
    """§2.5.3: per channel stretch [lo, hi] to [0, 255] with truncation; constant channels unchanged."""
    luts = []
    for c in range(x.shape[-1]):
        lo, hi = int(x[..., c].min()), int(x[..., c].max())
        if hi <= lo:
            luts.append(np.arange(256))
            continue
        scale = 255.0 / (hi - lo)
        offset = -lo * scale
        luts.append(np.clip(np.trunc(np.arange(256) * scale + offset), 0, 255).astype(np.int64))
    return _apply_channel_luts(x, luts)


def np_equalize(x: np.ndarray) -> np.ndarray:
    """§2.5.4: LUT[v] = min(255, (step // 2 + sum_{j<v} h[j]) // step), step = (N - h[last]) // 255."""
    luts = []
    for c in range(x.shape[-1]):
        hist = np.bincount(x[..., c].ravel(), minlength=256)
        nonzero = np.flatnonzero(hist)
        step = (hist.sum() - hist[nonzero[-1]]) // 255 if len(nonzero) > 1 else 0
        if step == 0:
            luts.append(np.arange(256))
            continue
        below = np.concatenate([[0], np.cumsum(hist)[:-1]])  # sum of h[j] for j < v
        luts.append(np.minimum(255, (step // 2 + below) // step))
    return _apply_channel_luts(x, luts)


def np_posterize(x: np.ndarray, bits: int) -> np.ndarray:
    """§2.5.5: keep the top ``bits`` bits (bits = 4 -> v & 0xF0)."""
    return x & np.uint8((0xFF << (8 - int(bits))) & 0xFF)


def np_solarize(x: np.ndarray, threshold: int) -> np.ndarray:
    """§2.5.5: v >= threshold becomes 255 - v."""
    return np.where(x >= threshold, 255 - x, x).astype(np.uint8)


# ---------------------------------------------------------------- affine warps (§2.5.2)


def _fill_rgb(fill: Fill) -> np.ndarray:
    return np.array([fill] * 3 if isinstance(fill, int) else fill, dtype=np.uint8)


def np_affine(x: np.ndarray, coeffs: tuple[float, ...], fill: Fill = 0) -> np.ndarray:
    """§2.5.2: inverse map at pixel centres in float64, fill outside [0,W)x[0,H), clamped bilinear, truncation.

    Output pixel (col, row) reads source (a(col+.5) + b(row+.5) + c, d(col+.5) + e(row+.5) + f). The bilinear
    lerps are written ``v0 + (v1 - v0) * t`` (x first, then y): with truncation, the algebraically equal
    ``v0 (1 - t) + v1 t`` would differ at float rounding where the exact value is an integer.
    """
    h, w = x.shape[:2]
    a, b, c, d, e, f = (float(v) for v in coeffs)
    cols = np.arange(w, dtype=np.float64)[None, :] + 0.5
    rows = np.arange(h, dtype=np.float64)[:, None] + 0.5
    sx = a * cols + b * rows + c
    sy = d * cols + e * rows + f
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    sx, sy = sx - 0.5, sy - 0.5
    x0, y0 = np.floor(sx), np.floor(sy)
    tx, ty = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    src = x.astype(np.float64)
    top = src[ya, xa] + (src[ya, xb] - src[ya, xa]) * tx
    bottom = src[yb, xa] + (src[yb, xb] - src[yb, xa]) * tx
    value = np.trunc(top + (bottom - top) * ty).astype(np.uint8)
    return np.where(inside[..., None], value, _fill_rgb(fill)).astype(np.uint8)


def rotate_coefficients(degrees: float, width: int, height: int) -> tuple[float, ...]:
    """Inverse-map coefficients of §2.5.2's counter-clockwise rotation about the centre (W/2, H/2).

    With t = degrees * pi / 180 and (x', y') = (x + .5 - W/2, y + .5 - H/2): X = cos t x' - sin t y' + W/2,
    Y = sin t x' + cos t y' + H/2, expanded into the six affine coefficients. (Pillow reduces the angle mod 360
    and rounds cos/sin to 15 decimals; that changed no pixel over every integer angle in [-29, 29] at 32 and
    224 px in our checks.)
    """
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = width / 2.0, height / 2.0
    return (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)


def np_rotate(x: np.ndarray, degrees: float, fill: Fill = 0) -> np.ndarray:
    """§2.5.2 rotate; 0 degrees (mod 360) is an exact copy."""
    if degrees % 360.0 == 0:
        return x.copy()
    h, w = x.shape[:2]
    return np_affine(x, rotate_coefficients(degrees, w, h), fill)


def np_shear_x(x: np.ndarray, coef: float, fill: Fill = 0) -> np.ndarray:
    return np_affine(x, (1, coef, 0, 0, 1, 0), fill)


def np_shear_y(x: np.ndarray, coef: float, fill: Fill = 0) -> np.ndarray:
    return np_affine(x, (1, 0, 0, coef, 1, 0), fill)


def np_translate_x(x: np.ndarray, pixels: int, fill: Fill = 0) -> np.ndarray:
    return np_affine(x, (1, 0, pixels, 0, 1, 0), fill)


def np_translate_y(x: np.ndarray, pixels: int, fill: Fill = 0) -> np.ndarray:
    return np_affine(x, (1, 0, 0, 0, 1, pixels), fill)


# ---------------------------------------------------------------- enhancers (§2.5.6)


def np_luma(x: np.ndarray) -> np.ndarray:
    """PIL's integer ITU-R 601 luma: (19595 R + 38470 G + 7471 B + 32768) >> 16, (H, W) int64."""
    r, g, b = (x[..., i].astype(np.int64) for i in range(3))
    return (19595 * r + 38470 * g + 7471 * b + 32768) >> 16


def _blend(degenerate: np.ndarray, x: np.ndarray, factor: float) -> np.ndarray:
    """trunc(g + f (v - g)), clipped to [0, 255]; in float32 because Pillow's blend takes a C float factor."""
    g = degenerate.astype(np.float32)
    out = g + np.float32(factor) * (x.astype(np.float32) - g)
    return np.trunc(np.clip(out, 0, 255)).astype(np.uint8)


def np_color(x: np.ndarray, factor: float) -> np.ndarray:
    return _blend(np.repeat(np_luma(x)[..., None], 3, axis=-1), x, factor)


def np_contrast(x: np.ndarray, factor: float) -> np.ndarray:
    mean = int(np_luma(x).mean() + 0.5)
    return _blend(np.full_like(x, mean), x, factor)


def np_brightness(x: np.ndarray, factor: float) -> np.ndarray:
    return _blend(np.zeros_like(x), x, factor)


def np_smooth(x: np.ndarray) -> np.ndarray:
    """3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 rounded to nearest (exact in integers: no ties can occur),
    the 1-pixel border copied from the input."""
    src = x.astype(np.int64)
    h, w = x.shape[:2]
    acc = 4 * src[1:-1, 1:-1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            acc = acc + src[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
    out = x.copy()
    out[1:-1, 1:-1] = (acc + 6) // 13  # round(acc / 13); acc / 13 is never k + 0.5
    return out


def np_sharpness(x: np.ndarray, factor: float) -> np.ndarray:
    return _blend(np_smooth(x), x, factor)


NUMPY_OPS: dict[str, Callable[..., np.ndarray]] = {
    "autocontrast": np_autocontrast, "equalize": np_equalize, "posterize": np_posterize,
    "rotate": np_rotate, "solarize": np_solarize, "shear_x": np_shear_x, "shear_y": np_shear_y,
    "translate_x": np_translate_x, "translate_y": np_translate_y, "color": np_color,
    "contrast": np_contrast, "brightness": np_brightness, "sharpness": np_sharpness,
}

# Concrete parameters spanning each op's range under severities 1..10 (signed where the op has a sign),
# for parametrised op-equivalence tests.
OP_PARAMETERS: dict[str, tuple] = {
    "autocontrast": (None,),
    "equalize": (None,),
    "posterize": (4, 3, 2, 1),
    "rotate": (0, 1, -1, 5, -8, 17, -29),
    "solarize": (254, 231, 180, 128, 2),
    "shear_x": (0.003, -0.003, 0.0457, -0.09, 0.29),
    "shear_y": (0.003, -0.003, 0.0457, -0.09, 0.29),
    "translate_x": (0, 1, -1, 3, -7, 20),
    "translate_y": (0, 1, -1, 3, -7, 20),
    "color": (0.1, 0.118, 0.37, 0.64, 1.0, 1.9),
    "contrast": (0.1, 0.118, 0.37, 0.64, 1.0, 1.9),
    "brightness": (0.1, 0.118, 0.37, 0.64, 1.0, 1.9),
    "sharpness": (0.1, 0.118, 0.37, 0.64, 1.0, 1.9),
}
