"""Test data and reference transcriptions for the weather and extra corruptions (snow, frost, fog, brightness,
speckle_noise, gaussian_blur, spatter, saturate).

Images are real photographs bundled with scikit-image and the scikit-learn digits, at the preset size. The
``ref_*`` functions transcribe the hendrycks/robustness functions (docs/corruptions.md §5) one
image at a time in NumPy / OpenCV / SciPy / scikit-image, taking the random fields as arguments, so tests can
replay the same draws through our batched code.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import skimage.data
import torch
from PIL import Image
from scipy.ndimage import zoom as scipy_zoom
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian

_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def photos(size: int) -> np.ndarray:
    """(4, size, size, 3) uint8: centre squares of four scikit-image photographs, Lanczos-resized."""
    out = []
    for name in _PHOTOS:
        image = getattr(skimage.data, name)()
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(image[top: top + side, left: left + side])
        out.append(np.asarray(square.resize((size, size), Image.LANCZOS)))
    return np.stack(out)


def digits(size: int, count: int = 2) -> np.ndarray:
    """(count, size, size, 3) uint8: scikit-learn 8x8 digits upsampled (bilinear) and tinted, as the quickstart."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:count] * (255 / 16)
    tint = np.array([[1.0, 0.8, 0.6], [0.5, 0.9, 1.0]])
    out = []
    for i, image in enumerate(images):
        grey = np.asarray(Image.fromarray(image.astype(np.float32)).resize((size, size), Image.BILINEAR))
        out.append(np.clip(grey[..., None] * tint[i % 2], 0, 255).astype(np.uint8))
    return np.stack(out)


def sample_images(size: int) -> np.ndarray:
    """(6, size, size, 3) uint8: the photographs and two digits."""
    return np.concatenate([photos(size), digits(size)])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 NumPy -> (N, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def to_numpy(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) uint8 tensor -> (N, H, W, 3) uint8 NumPy."""
    return images.permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------- deterministic
def ref_brightness(x: np.ndarray, delta: float) -> np.ndarray:
    hsv = rgb2hsv(x / 255.0)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + delta, 0, 1)
    return np.uint8(np.clip(hsv2rgb(hsv), 0, 1) * 255)


def ref_saturate(x: np.ndarray, multiplier: float, offset: float) -> np.ndarray:
    hsv = rgb2hsv(x / 255.0)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * multiplier + offset, 0, 1)
    return np.uint8(np.clip(hsv2rgb(hsv), 0, 1) * 255)


def ref_gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.uint8(np.clip(gaussian(x / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255)


# ---------------------------------------------------------------- random, fields injected
def ref_speckle(x: np.ndarray, noise: np.ndarray) -> np.ndarray:
    x = x / 255.0
    return np.uint8(np.clip(x + x * noise, 0, 1) * 255)


def ref_plasma(mapsize: int, decay: float, rng: np.random.RandomState) -> tuple[np.ndarray, list[np.ndarray]]:
    """The reference's float64 plasma_fractal drawing from ``rng``; returns the map and its draws in order."""
    grid = np.empty((mapsize, mapsize), dtype=np.float64)
    grid[0, 0] = 0
    step, wibble, draws = mapsize, 100.0, []

    def wibbled_mean(total):
        u = rng.uniform(-wibble, wibble, total.shape)
        draws.append(u)
        return total / 4 + wibble * u

    while step >= 2:
        half = step // 2
        corners = grid[0:mapsize:step, 0:mapsize:step]
        squares = corners + np.roll(corners, shift=-1, axis=0)
        squares += np.roll(squares, shift=-1, axis=1)
        grid[half:mapsize:step, half:mapsize:step] = wibbled_mean(squares)
        centres = grid[half:mapsize:step, half:mapsize:step]
        corners = grid[0:mapsize:step, 0:mapsize:step]
        left = (centres + np.roll(centres, 1, axis=0)) + (corners + np.roll(corners, -1, axis=1))
        grid[0:mapsize:step, half:mapsize:step] = wibbled_mean(left)
        top = (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=0))
        grid[half:mapsize:step, 0:mapsize:step] = wibbled_mean(top)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max(), draws


def plasma_draws_to_fields(per_image: list[list[np.ndarray]]) -> list[torch.Tensor]:
    """Per-image reference draw lists (3 per level) -> our per-level (N, 3, k, k) fields."""
    levels = len(per_image[0]) // 3
    return [torch.from_numpy(np.stack([np.stack(d[3 * k: 3 * k + 3]) for d in per_image])) for k in range(levels)]


def ref_fog(x: np.ndarray, amplitude: float, plasma: np.ndarray) -> np.ndarray:
    side = x.shape[0]
    x = x / 255.0
    peak = x.max()
    x += amplitude * plasma[:side, :side][..., np.newaxis]
    return np.uint8(np.clip(x * peak / (peak + amplitude), 0, 1) * 255)


def ref_frost_texture(path: str, scale: float) -> np.ndarray:
    """As the reference reads it: OpenCV, BGR, rescaled with cv2.resize(fx=fy=scale) unless full size."""
    texture = cv2.imread(str(path))
    return texture if scale == 1.0 else cv2.resize(texture, (0, 0), fx=scale, fy=scale)


def ref_frost(x: np.ndarray, image_coef: float, frost_coef: float, texture_bgr: np.ndarray, row: int,
              col: int) -> np.ndarray:
    side = x.shape[0]
    crop = texture_bgr[row: row + side, col: col + side][..., [2, 1, 0]]
    return np.uint8(np.clip(image_coef * np.array(x) + frost_coef * crop, 0, 255))


def ref_clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    img = scipy_zoom(img[top: top + ch, top: top + ch], (factor, factor, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim: trim + h, trim: trim + h]


def ref_line_motion_blur(layer: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """The NumPy line-kernel port of ImageMagick's motion blur (§4.4), edge-clamped, on a 2-D array, unrounded."""
    width = int(2 * radius + 1)
    k = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
    k = k / np.sum(k)
    py, px = width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle))
    hyp = math.hypot(py, px)
    h, w = layer.shape
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    out = np.zeros(layer.shape, dtype=np.float64)
    for i in range(width):
        oy, ox = math.ceil(i * py / hyp - 0.5), math.ceil(i * px / hyp - 0.5)
        out = out + k[i] * layer[np.clip(rows + oy, 0, h - 1), np.clip(cols + ox, 0, w - 1)]
    return out


def ref_snow(x: np.ndarray, params, flake_noise: np.ndarray, angle: float) -> np.ndarray:
    """§5.10 with the PNG -> ImageMagick -> PNG step as the line-kernel port on the 8-bit layer, rounded."""
    loc, scale, zoom, threshold, radius, sigma, blend = params
    x = np.array(x, dtype=np.float32) / 255.0
    layer = ref_clipped_zoom(flake_noise[..., np.newaxis], zoom)
    layer[layer < threshold] = 0
    layer8 = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    layer = np.round(ref_line_motion_blur(layer8.astype(np.float64), radius, sigma, angle)) / 255.0
    layer = layer[..., np.newaxis]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(x.shape[0], x.shape[1], 1)
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return np.uint8(np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255)


def ref_spatter(x: np.ndarray, params, liquid_noise: np.ndarray) -> np.ndarray:
    """§5.18 with OpenCV and scikit-image; an empty water mask gives NaN, cast to black as in the reference."""
    loc, scale, sigma, threshold, intensity, mode = params
    x = np.array(x, dtype=np.float32) / 255.0
    liquid = gaussian(liquid_noise, sigma=sigma)
    liquid[liquid < threshold] = 0
    if mode == 0:
        with np.errstate(invalid="ignore"):
            liquid = (liquid * 255).astype(np.uint8)  # wraps modulo 256 above 255, as the reference's cast
        dist = 255 - cv2.Canny(liquid, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid * dist, cv2.COLOR_GRAY2BGRA)
        with np.errstate(invalid="ignore"):
            m /= np.max(m, axis=(0, 1))
        m *= intensity
        colour = np.concatenate([c / 255.0 * np.ones_like(m[..., :1]) for c in (175, 238, 238)], axis=2)
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        with np.errstate(invalid="ignore"):
            return np.uint8(cv2.cvtColor(np.clip(x + m * colour, 0, 1), cv2.COLOR_BGRA2BGR) * 255)
    m = np.where(liquid > threshold, 1, 0)
    m = gaussian(m.astype(np.float32), sigma=intensity)
    m[m < 0.8] = 0
    ones = np.ones_like(x[..., :1], dtype=np.float64)  # the reference's ones_like of a uint8 array times a float
    colour = np.concatenate([c / 255.0 * ones for c in (63, 42, 20)], axis=2)
    colour *= m[..., np.newaxis]
    x *= 1 - m[..., np.newaxis]
    return np.uint8(np.clip(x + colour, 0, 1) * 255)
