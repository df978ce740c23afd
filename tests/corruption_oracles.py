"""Test images and reference transcriptions (oracles) of the 19 corruptions, one image at a time.

Images are real photographs bundled with scikit-image and the scikit-learn digits, at a preset's size, as
(N, H, W, 3) uint8 (the reference's HWC layout); ``to_nchw`` / ``to_nhwc`` convert. The ``ref_*`` functions
transcribe the hendrycks/robustness functions (docs/corruptions.md §4-§5) in NumPy / SciPy / scikit-image /
OpenCV / Pillow, taking the severity's parameters and the random fields as arguments, so tests can feed the
same draws to our batched code.
"""

from __future__ import annotations

import functools
import io
import math

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scipy_zoom
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian

PRESET_SIZES = {"cifar": 32, "tiny": 64, "imagenet": 224}
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


@functools.cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def photos(size: int, count: int = 4) -> np.ndarray:
    """(count, size, size, 3) uint8: centre squares of scikit-image photographs (cycled), Lanczos-resized."""
    out = []
    for i in range(count):
        image = _photo(_PHOTOS[i % len(_PHOTOS)])
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(image[top:top + side, left:left + side])
        out.append(np.asarray(square.resize((size, size), Image.LANCZOS)))
    return np.stack(out)


@functools.lru_cache(maxsize=8)
def photo_crops(size: int, count: int, seed: int = 0) -> np.ndarray:
    """(count, size, size, 3) uint8: random square crops (30-100 % of the short side) of the photographs,
    Lanczos-resized; a cheap source of many real images for statistical checks. Read-only (cached)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        image = _photo(_PHOTOS[rng.integers(len(_PHOTOS))])
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(image[top:top + side, left:left + side])
        out.append(np.asarray(crop.resize((size, size), Image.LANCZOS)))
    batch = np.stack(out)
    batch.setflags(write=False)
    return batch


def digits(size: int, count: int = 2) -> np.ndarray:
    """(count, size, size, 3) uint8: scikit-learn 8x8 digits (0..16 -> 0..255) upsampled bilinearly, grey RGB."""
    from sklearn.datasets import load_digits

    small = load_digits().images[:count] * (255.0 / 16.0)
    out = [np.asarray(Image.fromarray(d.astype(np.uint8)).resize((size, size), Image.BILINEAR)) for d in small]
    return np.repeat(np.stack(out)[..., None], 3, axis=-1)


def tinted_digits(size: int, count: int = 2) -> np.ndarray:
    """(count, size, size, 3) uint8: scikit-learn 8x8 digits upsampled (bilinear, in float) and tinted in two
    colours, as the quickstart's data."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:count] * (255 / 16)
    tint = np.array([[1.0, 0.8, 0.6], [0.5, 0.9, 1.0]])
    out = []
    for i, image in enumerate(images):
        grey = np.asarray(Image.fromarray(image.astype(np.float32)).resize((size, size), Image.BILINEAR))
        out.append(np.clip(grey[..., None] * tint[i % 2], 0, 255).astype(np.uint8))
    return np.stack(out)


def sample_images(size: int, photo_count: int = 3, digit_count: int = 1) -> np.ndarray:
    """Photographs and digits together: (photo_count + digit_count, size, size, 3) uint8."""
    return np.concatenate([photos(size, photo_count), digits(size, digit_count)])


def to_nchw(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 array -> (N, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).contiguous()


def to_nhwc(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) tensor -> (N, H, W, 3) array."""
    return images.permute(0, 2, 3, 1).cpu().numpy()


def hwc_fields(fields: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) NumPy draws -> (N, 3, H, W) tensor, the layout of our injectable fields."""
    return torch.from_numpy(np.array(fields)).permute(0, 3, 1, 2).contiguous()


def uint8(x: np.ndarray) -> np.ndarray:
    """The reference caller's final conversion: a uint8 cast (truncation)."""
    return np.uint8(x)


# ---------------------------------------------------------------- noise (§5.1-§5.3)


def ref_gaussian_noise(image: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``clip(x + noise, 0, 1) * 255`` with ``noise = np.random.normal(size=(H, W, 3), scale=sigma)``."""
    return uint8(np.clip(np.array(image) / 255.0 + noise, 0, 1) * 255)


def ref_shot_noise(image: np.ndarray, c: float, counts: np.ndarray) -> np.ndarray:
    """``clip(Poisson(x * c) / c, 0, 1) * 255`` with the Poisson counts given."""
    return uint8(np.clip(counts / float(c), 0, 1) * 255)


def ref_impulse_noise(image: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """scikit-image ``random_noise(mode='s&p')`` seeded with ``seed``, as the per-image package calls it."""
    from skimage.util import random_noise

    return uint8(np.clip(random_noise(np.array(image) / 255.0, "s&p", rng=seed, amount=amount), 0, 1) * 255)


def impulse_fields(shape: tuple[int, ...], amount: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two Bernoulli fields scikit-image draws from ``default_rng(seed)``: flipped, then salted."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(shape) <= amount
    salted = rng.random(shape) <= 0.5
    return flipped, salted


# ---------------------------------------------------------------- blur (§4.1, §4.2, §4.4, §4.6, §5.6-§5.9)


def ref_disk(radius: float, alias_sigma: float) -> np.ndarray:
    """§4.1 with OpenCV: float32 aliased disk normalised, then ``cv2.GaussianBlur`` (3x3 or 5x5, reflect-101)."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 9), (3, 3)
    else:
        grid, ksize = np.arange(-radius, radius + 1), (5, 5)
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_sigma)


def ref_defocus_blur(image: np.ndarray, radius: float, alias_sigma: float) -> np.ndarray:
    """§5.7: ``cv2.filter2D`` of each channel of x / 255 with the disk, clip, x255."""
    x = np.array(image) / 255.0
    kernel = ref_disk(radius, alias_sigma)
    channels = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)], axis=2)
    return uint8(np.clip(channels, 0, 1) * 255)


def ref_clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """§4.2 with SciPy: centre crop ``ceil(h / z)``, ``scipy.ndimage.zoom(order=1)``, keep the top-left h x h."""
    h = x.shape[0]
    ch = int(np.ceil(h / float(factor)))
    top = (h - ch) // 2
    zoom = (factor, factor) + (1,) * (x.ndim - 2)
    zoomed = scipy_zoom(x[top:top + ch, top:top + ch], zoom, order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim:trim + h, trim:trim + h]


def ref_zoom_blur(image: np.ndarray, factors: tuple[float, ...]) -> np.ndarray:
    """§5.9: float32 average of x and its clipped zooms."""
    x = (np.array(image) / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for z in factors:
        out += ref_clipped_zoom(x, z)
    return uint8(np.clip((x + out) / (len(factors) + 1), 0, 1) * 255)


def ref_glass_blur(image: np.ndarray, sigma: float, delta: int, offsets: np.ndarray) -> np.ndarray:
    """§5.6 with the straightforward sequential shuffle of §4.6, one pixel at a time (slow; small images).

    offsets: (iterations, P, 2) (dx, dy) per visited destination, descending raster order.
    """
    size = image.shape[0]
    y = np.uint8(gaussian(np.array(image) / 255.0, sigma=sigma, channel_axis=-1) * 255)
    for it in range(offsets.shape[0]):
        k = 0
        for h in range(size - delta, delta, -1):
            for w in range(size - delta, delta, -1):
                dx, dy = offsets[it, k]
                y[h, w] = y[h + dy, w + dx].copy()  # copy, not swap (§4.6)
                k += 1
    return uint8(np.clip(gaussian(y / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255)


def glass_offsets(size: int, delta: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(iterations, P, 2) offsets in [-delta, delta - 1], P = (size - 2 delta)^2."""
    return rng.integers(-delta, delta, size=(iterations, (size - 2 * delta) ** 2, 2))


def ref_motion_blur(image: np.ndarray, radius: float, sigma: float, angle_deg: float) -> np.ndarray:
    """§4.4 line kernel on the uint8 image: one-sided Gaussian taps along the angle, edge clamp, rounded."""
    width = int(2 * radius + 1)
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    k /= k.sum()
    theta = math.radians(angle_deg)
    h, w = image.shape[:2]
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    out = np.zeros(image.shape, dtype=np.float64)
    for i in range(width):
        oy, ox = math.ceil(i * math.sin(theta) - 0.5), math.ceil(i * math.cos(theta) - 0.5)
        out += k[i] * image[np.clip(rows + oy, 0, h - 1), np.clip(cols + ox, 0, w - 1)]
    return np.uint8(np.clip(np.floor(out + 0.5), 0, 255))


# ---------------------------------------------------------------- digital (§5.14-§5.17)


def ref_contrast(image: np.ndarray, c: float) -> np.ndarray:
    x = np.array(image) / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return uint8(np.clip((x - means) * c + means, 0, 1) * 255)


def ref_pixelate(image: np.ndarray, side: int) -> np.ndarray:
    """§5.16 with Pillow: BOX down to ``side``, BOX back up."""
    size = image.shape[0]
    pil = Image.fromarray(image).resize((side, side), Image.BOX).resize((size, size), Image.BOX)
    return np.asarray(pil)


def ref_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def ref_elastic(image: np.ndarray, alpha: float, sigma: float, jitter: np.ndarray, dx_noise: np.ndarray,
                dy_noise: np.ndarray) -> np.ndarray:
    """§5.15 with OpenCV / scikit-image / SciPy, given the three draws (jitter (3, 2), dx and dy (H, W))."""
    x = np.array(image, dtype=np.float32) / 255.0
    shape = x.shape
    centre = np.float32(shape[:2]) // 2
    sq = min(shape[:2]) // 3
    pts1 = np.float32([centre + sq, [centre[0] + sq, centre[1] - sq], centre - sq])
    pts2 = pts1 + jitter.astype(np.float32)
    warp = cv2.getAffineTransform(pts1, pts2)
    x = cv2.warpAffine(x, warp, shape[:2][::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(dx_noise, sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (gaussian(dy_noise, sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    cols, rows, chans = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    coords = (rows + dy[..., None]).reshape(-1), (cols + dx[..., None]).reshape(-1), chans.reshape(-1)
    out = map_coordinates(x, coords, order=1, mode="reflect").reshape(shape)
    return uint8(np.clip(out, 0, 1) * 255)


def mean_abs_change(corrupted: np.ndarray | torch.Tensor, clean: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-image mean |corrupted - clean| in grey levels: (N,) float64 (layouts must match)."""
    a = np.asarray(corrupted.cpu() if isinstance(corrupted, torch.Tensor) else corrupted, dtype=np.float64)
    b = np.asarray(clean.cpu() if isinstance(clean, torch.Tensor) else clean, dtype=np.float64)
    return np.abs(a - b).reshape(len(a), -1).mean(axis=1)


def assert_same_change_statistics(ours: np.ndarray, theirs: np.ndarray, clean: np.ndarray, sigmas: float = 5.0,
                                  label: str = "") -> None:
    """Per image, the mean |corrupted - clean| of two independently drawn corruptions agree within ``sigmas``
    standard errors (so do their pooled mean and their spread over images).

    Valid for noise drawn independently per element: each mean averages M = H*W*3 values, so its standard error
    is std(|change|) / sqrt(M), and the difference of two independent draws has sqrt(se1^2 + se2^2).
    """
    d_ours = np.abs(ours.astype(np.float64) - clean).reshape(len(clean), -1)
    d_theirs = np.abs(theirs.astype(np.float64) - clean).reshape(len(clean), -1)
    m = d_ours.shape[1]
    se = np.sqrt((d_ours.var(axis=1) + d_theirs.var(axis=1)) / m)
    gap = np.abs(d_ours.mean(axis=1) - d_theirs.mean(axis=1))
    assert np.all(gap <= sigmas * se), f"{label}: per-image mean |change| differs by {gap / se} standard errors"
    pooled_gap = abs(d_ours.mean() - d_theirs.mean())
    assert pooled_gap <= sigmas * np.sqrt((d_ours.var() + d_theirs.var()) / d_ours.size), f"{label}: pooled"


# -------------------------------------------- weather and extra (§5.4, §5.5, §5.10-§5.13, §5.18, §5.19)


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
