"""Test data and per-image reference transcriptions of the -P sequences (docs/corruptions.md §8.2), written the way the
reference scripts work: one PIL / OpenCV / scikit-image / SciPy call per image and frame. The test oracles for
corruptions/sequences*.py; bench/perturbations_throughput.py times them as the per-image peer.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.ndimage as ndi
import skimage.color
import skimage.data
import torch
from PIL import Image

CROP = {"cifar": 32, "imagenet": 224}


def photo_cifar(num: int = 2) -> np.ndarray:
    """(num, 32, 32, 3) uint8: scikit-image's public-domain photos (astronaut, chelsea, ...) box-resized to 32 px."""
    names = ("astronaut", "chelsea", "coffee", "rocket")
    return np.stack([np.asarray(Image.fromarray(getattr(skimage.data, names[i % 4])()).resize((32, 32), Image.BOX))
                     for i in range(num)])


def resize_256(photo: np.ndarray) -> np.ndarray:
    """torchvision Resize(256) (shorter side 256, long side ``int(256 * long / short)``, PIL bilinear): (H, W, 3)."""
    h, w = photo.shape[:2]
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)  # PIL (width, height)
    return np.asarray(Image.fromarray(photo).resize(size, Image.BILINEAR))


def photo_imagenet() -> list[np.ndarray]:
    """Two Resize(256) photos of different shapes: astronaut cut to 512x400 (-> 327x256), chelsea (-> 256x384)."""
    return [resize_256(skimage.data.astronaut()[:, 50:450]), resize_256(skimage.data.chelsea())]


def to_canvas(images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, Hmax, Wmax) uint8 canvas with each (h, w, 3) image at the top-left, and (N, 2) int64 sizes."""
    hmax, wmax = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    canvas = np.zeros((len(images), hmax, wmax, 3), np.uint8)
    for k, image in enumerate(images):
        canvas[k, :image.shape[0], :image.shape[1]] = image
    sizes = torch.tensor([i.shape[:2] for i in images], dtype=torch.int64)
    return torch.from_numpy(canvas).permute(0, 3, 1, 2).contiguous(), sizes


def center_crop(image: np.ndarray, side: int) -> np.ndarray:
    """torchvision CenterCrop: offsets ``int(round((h - side) / 2.))``."""
    h, w = image.shape[:2]
    top, left = int(round((h - side) / 2.)), int(round((w - side) / 2.))
    return image[top:top + side, left:left + side]


def forward_affine(width: int, height: int, angle: float, translate: tuple[float, float], scale: float,
                   shear: float) -> np.ndarray:
    """The 3x3 forward map of torchvision 0.2's ``affine`` as its docstring describes it: ``T C RSS C^-1`` with the
    centre ``(w/2 + .5, h/2 + .5)`` and ``RSS = [[cos a s, -sin(a + sh) s], [sin a s, cos(a + sh) s]]``."""
    a, sh = math.radians(angle), math.radians(shear)
    cx, cy = width * 0.5 + 0.5, height * 0.5 + 0.5
    rss = np.array([[math.cos(a) * scale, -math.sin(a + sh) * scale, 0], [math.sin(a) * scale,
                    math.cos(a + sh) * scale, 0], [0, 0, 1]])
    c = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]])
    t = np.array([[1, 0, translate[0]], [0, 1, translate[1]], [0, 0, 1.0]])
    return t @ c @ rss @ np.linalg.inv(c)


def torchvision_inverse(width: int, height: int, angle: float, translate: tuple[float, float], scale: float,
                        shear: float) -> list[float]:
    """The six coefficients torchvision 0.2-0.4 ``functional.affine`` hands to PIL, scalar Python as it computes them:
    the inverse of :func:`forward_affine` in closed form (rotation-shear inverse over its determinant d)."""
    a, sh, inv = math.radians(angle), math.radians(shear), 1.0 / scale
    cx, cy = width * 0.5 + 0.5, height * 0.5 + 0.5
    d = math.cos(a + sh) * math.cos(a) + math.sin(a + sh) * math.sin(a)
    m = [inv / d * v for v in (math.cos(a + sh), math.sin(a + sh), 0, -math.sin(a), math.cos(a), 0)]
    m[2] += m[0] * (-cx - translate[0]) + m[1] * (-cy - translate[1])
    m[5] += m[3] * (-cx - translate[0]) + m[4] * (-cy - translate[1])
    m[2] += cx
    m[5] += cy
    return m


def affine_reference(image: np.ndarray, angle: float, translate: tuple[float, float], scale: float, shear: float,
                     bilinear: bool) -> np.ndarray:
    """PIL's AFFINE transform with torchvision 0.2's coefficients (:func:`torchvision_inverse`)."""
    h, w = image.shape[:2]
    matrix = torchvision_inverse(w, h, angle, translate, scale, shear)
    out = Image.fromarray(image).transform((w, h), Image.AFFINE, tuple(matrix),
                                           Image.BILINEAR if bilinear else Image.NEAREST)
    return np.asarray(out)


def geometric_reference(image: np.ndarray, perturbation: str, preset: str) -> np.ndarray:
    """(T, S, S, 3) uint8 frames of a geometric sequence of one base image, per frame with PIL / OpenCV."""
    side = CROP[preset]
    frames = []
    if perturbation == "translate":
        shifts = range(-7, 9) if preset == "cifar" else range(-20, 21)
        frames = [affine_reference(image, 0, (t, 0), 1, 0, bilinear=False) for t in shifts]
    elif perturbation == "rotate":
        frames = [affine_reference(image, i - 15, (0, 0), 1.0, 0, bilinear=True) for i in range(31)]
    elif perturbation == "scale":
        factors = [(i * 2 + 70) / 100. if preset == "cifar" else (i * 2.5 + 40) / 100. for i in range(31)]
        frames = [affine_reference(image, 0, (0, 0), z, 0, bilinear=True) for z in factors]
    elif perturbation == "shear":
        frames = [affine_reference(image, 0, (0, 0), 1.0, i - 15, bilinear=True) for i in range(31)]
    elif perturbation == "tilt":
        frames = [tilt_reference(image, 0.75 * (i - 15) if preset == "cifar" else i - 15) for i in range(31)]
    elif perturbation == "zoom_blur":
        return zoom_blur_reference(image, side)
    return np.stack([center_crop(f, side) for f in frames])


def tilt_matrix(width: int, height: int, angle_deg: float, lift: float = 1.0) -> np.ndarray:
    """The tilt homography of §8.2 with NumPy: ``P2 T Rx Ry P1``, phi = theta = angle; ``lift`` is P1's z."""
    t = np.deg2rad(angle_deg)
    f = np.sqrt(width**2 + height**2)
    p1 = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, lift], [0, 0, 1]])
    rx = np.array([[1, 0, 0, 0], [0, np.cos(t), -np.sin(t), 0], [0, np.sin(t), np.cos(t), 0], [0, 0, 0, 1]])
    ry = np.array([[np.cos(t), 0, -np.sin(t), 0], [0, 1, 0, 0], [np.sin(t), 0, np.cos(t), 0], [0, 0, 0, 1]])
    depth = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    p2 = np.array([[f, 0, width / 2, 0], [0, f, height / 2, 0], [0, 0, 1, 0]])
    return p2 @ depth @ rx @ ry @ p1


def tilt_reference(image: np.ndarray, angle_deg: float) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpPerspective(image, tilt_matrix(w, h, angle_deg), (w, h))


def zoom_blur_reference(image: np.ndarray, side: int) -> np.ndarray:
    """Running float32 mean of the clean crop and the PIL-zoomed crops (ToTensor / ToPILImage arithmetic)."""
    clean = center_crop(image, side)
    total = clean.astype(np.float32) / np.float32(255)
    frames = [clean]
    for i in range(1, 31):
        zoomed = center_crop(affine_reference(image, 0, (0, 0), 1 + 0.004 * i, 0, bilinear=True), side)
        total = total + zoomed.astype(np.float32) / np.float32(255)
        frames.append((total / np.float32(i + 1) * np.float32(255)).astype(np.uint8))
    return np.stack(frames)


def motion_blur_reference(image: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """imagecorruptions' NumPy port of ImageMagick's motion blur, rounded to 8 bits as ImageMagick's PNG output."""
    from imagecorruptions.corruptions import _motion_blur

    return np.clip(np.floor(_motion_blur(image, radius, sigma, angle) + 0.5), 0, 255).astype(np.uint8)


def brightness_reference(image: np.ndarray, delta: float) -> np.ndarray:
    hsv = skimage.color.rgb2hsv(image / 255.)
    hsv[..., 2] = np.clip(hsv[..., 2] + delta, 0, 1)
    return np.uint8(skimage.color.hsv2rgb(hsv) * 255)


def gaussian_blur_reference(image: np.ndarray, sigma: float, truncate: float) -> np.ndarray:
    """scikit-image ``gaussian(x / 255., sigma, channel_axis=-1, truncate)`` = SciPy with sigma 0 on channels."""
    return np.uint8(255 * ndi.gaussian_filter(image / 255., (sigma, sigma, 0), mode="nearest", truncate=truncate))


def snow_reference(image: np.ndarray, flake_noise: np.ndarray, preset: str) -> np.ndarray:
    """(31, S, S, 3): the reference snow loop on one image with its flake layer draw (§8.2)."""
    zoom, radius, sigma = (2, 10, 2) if preset == "cifar" else (3, 14, 4)
    s = image.shape[0]
    ch = int(np.ceil(s / zoom))
    top = (s - ch) // 2
    layer = ndi.zoom(flake_noise[top:top + ch, top:top + ch], zoom, order=1)[:s, :s]  # clipped_zoom, §4.2
    layer[layer < 0.5] = 0
    layer8 = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
    x = image / 255.
    gray = cv2.cvtColor(np.float32(x), cv2.COLOR_RGB2GRAY)[..., None]
    frames = []
    for i in range(31):
        flakes = motion_blur_reference(layer8, radius, sigma, i * 4 - 150)[..., None] / 255.
        z = 0.85 * x + (1 - 0.85) * np.maximum(x, gray * 1.5 + 0.5)
        frames.append(np.uint8(np.clip(z + flakes + np.rot90(flakes, k=2), 0, 1) * 255))
    return np.stack(frames)


def spatter_reference(image: np.ndarray, liquid_noise: np.ndarray, preset: str) -> np.ndarray:
    """(31, S, S, 3): the reference spatter loop (water mode, OpenCV chain, downward np.convolve smear)."""
    sigma, threshold = (1.75, 0.7) if preset == "cifar" else (3.7, 0.69)
    kernel = np.array([0.2, 0.8]) if preset == "cifar" else np.array([0.05, 0.1, 0.15, 0.7])
    x = np.asarray(image, dtype=np.float32) / 255.
    liquid = ndi.gaussian_filter(liquid_noise, sigma, mode="nearest", truncate=4.0)
    liquid[liquid < threshold] = 0
    colour = np.array([175, 238, 238], dtype=np.float64) / 255.
    frames = []
    for _ in range(31):
        layer = (liquid * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = layer * dist
        m = m / m.max() * np.float32(0.6)
        frames.append(np.uint8(np.clip(x + m[..., None] * colour.astype(np.float32), 0, 1) * 255))
        liquid = np.apply_along_axis(lambda col: np.convolve(col, kernel, mode="same"), 0, liquid)
    return np.stack(frames)


def noise_reference(image: np.ndarray, name: str, level: float, rng: np.random.RandomState) -> np.ndarray:
    """(31, S, S, 3): frame 0 clean, then 30 noisy frames drawn one at a time as the reference loops do (gaussian
    in float32 like its torch code, shot and speckle in float64 NumPy)."""
    frames = [image]
    for _ in range(30):
        if name == "gaussian_noise":
            x = image.astype(np.float32) / np.float32(255)
            noisy = (np.clip(x + np.float32(level) * rng.normal(size=x.shape).astype(np.float32), 0, 1)
                     * np.float32(255)).astype(np.uint8)
        elif name == "shot_noise":
            noisy = np.uint8(255 * np.clip(rng.poisson(image / 255. * level) / level, 0, 1))
        else:
            x = image / 255.
            noisy = np.uint8(255 * np.clip(x + x * rng.normal(size=x.shape, scale=level), 0, 1))
        frames.append(noisy)
    return np.stack(frames)


def to_hwc(videos: torch.Tensor) -> np.ndarray:
    """(N, T, 3, S, S) uint8 tensor -> (N, T, S, S, 3) NumPy array."""
    return videos.permute(0, 1, 3, 4, 2).cpu().numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)
