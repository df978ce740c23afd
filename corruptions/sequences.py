"""Perturbation sequences (-P) of Hendrycks & Dietterich (ICLR 2019): CIFAR-10/100-P and ImageNet-P videos, batched
over videos and frames on any device (docs/corruptions.md §8; the reference scripts are
``ImageNet-P/create_p/make_cifar_p.py`` and ``make_imagenet_p.py``).

``make_sequences(images, perturbation, preset)`` returns (N, T, 3, S, S) uint8 videos. The geometric sequences live
in :mod:`corruptions.sequences_geometry`; noise, blur, weather and digital ones here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
from torch import Tensor

from corruptions import sequences_geometry as geometry
from corruptions.color import hsv_to_rgb, rgb_to_hsv
from corruptions.extra import water_colour, water_mask
from corruptions.filters import (
    clipped_zoom,
    gaussian_filter,
    motion_blur_offsets,
    motion_blur_weights,
    to_uint8,
    to_unit_float,
)
from corruptions.presets import check_field
from corruptions.sequences_geometry import SIDE, BaseImages, base_images, frame_blocks
from corruptions.weather import GRAY_WEIGHTS

# §8.1, names as the released files.
IMAGENET_P_TEST: tuple[str, ...] = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness",
                                    "translate", "rotate", "tilt", "scale")
IMAGENET_P_VALIDATION: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "shear")
# The authors' CIFAR-P evaluation script averages spatter instead of snow (docs/metrics.md §4.5); both lists are kept.
CIFAR_P_SCRIPT: tuple[str, ...] = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter", "brightness",
                                   "translate", "rotate", "tilt", "scale")
CIFAR_P_BENCHMARK: tuple[str, ...] = IMAGENET_P_TEST
PERTURBATIONS: tuple[str, ...] = IMAGENET_P_TEST + IMAGENET_P_VALIDATION  # all 14, canonical order
# The frame-0 rule (docs/metrics.md §4.2): frame 0 is the clean image and every frame is compared with it.
NOISE_PERTURBATIONS: tuple[str, ...] = ("gaussian_noise", "shot_noise", "speckle_noise")
DIFFICULTIES: tuple[int, ...] = (1, 2, 3)
# Stronger-noise datasets <name>_2, <name>_3 (§8.2 "Difficulty levels"); other perturbations have none.
DIFFICULTY_VARIANTS: tuple[str, ...] = tuple(f"{n}_{d}" for n in NOISE_PERTURBATIONS for d in DIFFICULTIES[1:])
ALL_PERTURBATION_NAMES: tuple[str, ...] = PERTURBATIONS + DIFFICULTY_VARIANTS  # every file name we can write

PERTURBATION_SUBSETS = MappingProxyType({
    "imagenet-p-test": IMAGENET_P_TEST, "imagenet-p-validation": IMAGENET_P_VALIDATION,
    "cifar-p-script": CIFAR_P_SCRIPT, "cifar-p-benchmark": CIFAR_P_BENCHMARK,
    "noise": NOISE_PERTURBATIONS, "all": PERTURBATIONS,
})

# Frames per video (§8.2), the same at every difficulty.
FRAMES = MappingProxyType({
    "cifar": MappingProxyType({**{p: 31 for p in PERTURBATIONS}, "motion_blur": 21, "translate": 16}),
    "imagenet": MappingProxyType({**{p: 31 for p in PERTURBATIONS}, "translate": 41}),
})

# Noise level per difficulty 1/2/3: gaussian sigma, shot photon scale, speckle sigma (§8.2).
NOISE_LEVELS = MappingProxyType({
    "cifar": MappingProxyType({"gaussian_noise": (0.02, 0.04, 0.06), "shot_noise": (700, 400, 200),
                               "speckle_noise": (0.05, 0.07, 0.10)}),
    "imagenet": MappingProxyType({"gaussian_noise": (0.03, 0.05, 0.08), "shot_noise": (300, 120, 60),
                                  "speckle_noise": (0.05, 0.10, 0.15)}),
})


class MotionSequence(NamedTuple):
    radius: float                  # ImageMagick radius (2 radius + 1 taps, §4.4)
    sigma: float                   # one-sided Gaussian sigma of the taps
    angles_deg: tuple[float, ...]  # one per frame


class SnowSequence(NamedTuple):
    loc: float         # flake layer N(loc, scale), one per video
    scale: float
    zoom: float        # clipped_zoom factor of the layer (§4.2)
    threshold: float   # layer values below it become 0
    radius: float      # motion blur of the 8-bit layer, per frame
    sigma: float
    blend: float       # weight of the image against its brightened grey (§5.10 step 5)
    angles_deg: tuple[float, ...]


class SpatterSequence(NamedTuple):
    loc: float                 # liquid layer N(loc, scale), one per video
    scale: float
    sigma: float               # Gaussian smoothing of the layer (border nearest)
    threshold: float           # smoothed values below it become 0, once
    intensity: float           # water mask scale
    smear: tuple[float, ...]   # np.convolve kernel applied down every column after each frame


MOTION = MappingProxyType({
    "cifar": MotionSequence(6, 1.8, tuple((i - 20) * 9 for i in range(21))),        # -180 .. 0 degrees
    "imagenet": MotionSequence(10, 3, tuple((i - 30) * 4 for i in range(31))),      # -120 .. 0 degrees
})
SNOW = MappingProxyType({
    "cifar": SnowSequence(0.05, 0.3, 2, 0.5, 10, 2, 0.85, tuple(i * 4 - 150 for i in range(31))),
    "imagenet": SnowSequence(0.05, 0.3, 3, 0.5, 14, 4, 0.85, tuple(i * 4 - 150 for i in range(31))),
})
BRIGHTNESS_DELTAS = MappingProxyType({
    "cifar": tuple((i - 15) * 1.5 / 100. for i in range(31)),     # V += -0.225 .. +0.225
    "imagenet": tuple((i - 15) * 2 / 100. for i in range(31)),    # V += -0.30 .. +0.30
})
GAUSSIAN_BLUR = MappingProxyType({  # (sigma per frame, truncate)
    "cifar": (tuple(0.3 + 0.015 * i for i in range(31)), 7.0),
    "imagenet": (tuple(0.25 + 0.035 * i for i in range(31)), 6.0),
})
SPATTER = MappingProxyType({
    "cifar": SpatterSequence(0.6, 0.265, 1.75, 0.7, 0.6, (0.2, 0.8)),
    "imagenet": SpatterSequence(0.65, 0.27, 3.7, 0.69, 0.6, (0.05, 0.1, 0.15, 0.7)),
})

# Pixels per water_distance_map call: its chamfer and hysteresis passes loop over rows in Python, so few large
# calls beat many small ones (31 frames of two 224-px videos fit in one call, ~13 MB per float32 temporary).
_SPATTER_BUDGET = 1 << 22

# Random fields a caller may inject (keyword-only), per perturbation.
FIELDS = MappingProxyType({"gaussian_noise": ("noise",), "shot_noise": ("counts",), "speckle_noise": ("noise",),
                           "snow": ("flake_noise",), "spatter": ("liquid_noise",)})


def is_noise_perturbation(name: str) -> bool:
    """The metrics' frame-0 rule applies to every name containing "noise", difficulty variants included."""
    return "noise" in name


def resolve_perturbation(name: str, difficulty: int = 1) -> tuple[str, int]:
    """``("gaussian_noise_2", 1)`` or ``("gaussian_noise", 2)`` -> ``("gaussian_noise", 2)``; errors name the problem.
    """
    match = re.fullmatch(r"(.+)_([23])", name)
    base, suffix = (match.group(1), int(match.group(2))) if match else (name, None)
    if base not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; valid: {', '.join(ALL_PERTURBATION_NAMES)}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    if suffix is not None and difficulty not in (1, suffix):
        raise ValueError(f"{name!r} already names difficulty {suffix}; got difficulty={difficulty} as well")
    level = suffix or difficulty
    if level > 1 and base not in NOISE_PERTURBATIONS:
        raise ValueError(f"difficulty {level} exists only for the noise perturbations "
                         f"({', '.join(NOISE_PERTURBATIONS)}); for {base!r} the difficulty is the frame stride of the "
                         "metric (docs/metrics.md §4.2), the videos are the same")
    return base, level


def perturbation_file_name(name: str, difficulty: int = 1) -> str:
    """The released file stem: ``gaussian_noise`` at difficulty 1, ``gaussian_noise_2`` at 2, ..."""
    base, level = resolve_perturbation(name, difficulty)
    return base if level == 1 else f"{base}_{level}"


def num_frames(perturbation: str, preset: str) -> int:
    """Frames T per video of a perturbation (difficulty variants included) at a preset."""
    if preset not in FRAMES:
        raise ValueError(f"unknown -P preset {preset!r}; valid: {', '.join(FRAMES)}")
    return FRAMES[preset][resolve_perturbation(perturbation)[0]]


def make_sequences(images: Tensor, perturbation: str, preset: str, difficulty: int = 1,
                   generator: torch.Generator | None = None, *, sizes: Tensor | None = None,
                   exact_affine_center: bool = False, tilt_identity_at_zero: bool = False, **fields: Any) -> Tensor:
    """The -P videos of a batch of clean images.

    Input contract. CIFAR-P (``preset="cifar"``): ``images`` are the (N, 3, 32, 32) test images. ImageNet-P
    (``preset="imagenet"``): ``images`` are torchvision Resize(256) images (shorter side exactly 256, as
    ``generation.sources.resize_shorter_side`` makes them), **not** the 224 crop: the geometric sequences
    (translate, rotate, scale, shear, tilt, zoom_blur) transform the whole resized image and crop 224 afterwards,
    so content from outside the crop moves in; the others crop first (§8.2 "ImageNet-P base image"). Images of
    different sizes are passed on one canvas, each at the top-left, with ``sizes`` (N, 2) = their (h, w).

    Affine convention (UNCERTAIN in the spec, §8.2): torchvision 0.2-0.4 ``affine`` on PIL images, the version of
    2018 the reference used: positive angles rotate clockwise on screen, x-shear, fixed point
    ``(w/2 + .5, h/2 + .5)``; ``exact_affine_center=True`` uses the true centre. ``tilt_identity_at_zero=True``
    removes the reference's f/(f+1) shrink of the tilt homography (see ``sequences_geometry.tilt_homographies``).

    Args:
        images: (N, 3, H, W) uint8 on any device (see the input contract).
        perturbation: one of :data:`PERTURBATIONS`, or a difficulty variant such as ``"gaussian_noise_2"``.
        preset: "cifar" (32 px frames) or "imagenet" (224 px frames).
        difficulty: 1..3, noise perturbations only (stronger noise, same length).
        generator: source of every random field (noise, flake and liquid layers), drawn on the images' device.
        sizes: ImageNet-P only, (N, 2) int heights and widths of the images on the canvas.
        exact_affine_center: corrected affine fixed point (not the reference).
        tilt_identity_at_zero: corrected tilt lift (not the reference).
        **fields: injected random fields, see :data:`FIELDS` and each sequence's docstring.

    Returns:
        (N, T, 3, S, S) uint8 on the images' device, T = :func:`num_frames`, S = 32 or 224; every frame truncated
        to uint8 as the reference.
    """
    base_name, level = resolve_perturbation(perturbation, difficulty)
    unknown = sorted(set(fields) - set(FIELDS.get(base_name, ())))
    if unknown:
        raise TypeError(f"{base_name} takes no field(s) {', '.join(unknown)}; its fields: "
                        f"{', '.join(FIELDS.get(base_name, ())) or 'none (deterministic)'}")
    base = base_images(images, preset, sizes)
    if base_name in _GEOMETRIC:
        option = tilt_identity_at_zero if base_name == "tilt" else exact_affine_center
        videos = _GEOMETRIC[base_name](base, preset, option)
    else:
        videos = _PHOTOMETRIC[base_name](base.crop(), preset, level, generator, **fields)
    side, frames = SIDE[preset], FRAMES[preset][base_name]
    if tuple(videos.shape) != (len(images), frames, 3, side, side) or videos.dtype != torch.uint8:
        raise RuntimeError(f"{perturbation} produced {videos.dtype} {tuple(videos.shape)}, expected uint8 "
                           f"{(len(images), frames, 3, side, side)}")
    return videos


def _noise_frames(clean: Tensor, noisy: Tensor) -> Tensor:
    """Frame 0 the clean image, then the noisy frames: (N, 1 + T', 3, S, S)."""
    return torch.cat([clean[:, None], noisy], dim=1)


def gaussian_noise(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None, *,
                   noise: Tensor | None = None) -> Tensor:
    """Frame 0 clean, then 30 frames ``clamp(x + sigma * randn)`` in float32 (the reference draws with torch).

    Args:
        clean: (N, 3, S, S) uint8, any device.
        noise: optional (N, 30, 3, S, S) float32, the noise already times sigma.

    Returns:
        (N, 31, 3, S, S) uint8.
    """
    sigma = NOISE_LEVELS[preset]["gaussian_noise"][difficulty - 1]
    shape = (len(clean), FRAMES[preset]["gaussian_noise"] - 1, *clean.shape[1:])
    if noise is None:
        noise = sigma * torch.randn(shape, generator=generator, dtype=torch.float32, device=clean.device)
    else:
        noise = check_field(noise, "noise", shape, torch.float32, clean.device)
    x = clean.to(torch.float32)[:, None] / 255  # ToTensor: float32 v / 255
    return _noise_frames(clean, ((x + noise).clamp(0, 1) * 255).to(torch.uint8))


def shot_noise(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None, *,
               counts: Tensor | None = None) -> Tensor:
    """Frame 0 clean, then 30 frames ``Poisson(x c) / c`` in float64 (NumPy in the reference).

    Args:
        clean: (N, 3, S, S) uint8, any device.
        counts: optional (N, 30, 3, S, S) Poisson counts drawn with rate ``x * c``.
    """
    c = NOISE_LEVELS[preset]["shot_noise"][difficulty - 1]
    shape = (len(clean), FRAMES[preset]["shot_noise"] - 1, *clean.shape[1:])
    rate = to_unit_float(clean)[:, None].expand(shape) * c
    if counts is None:
        counts = torch.poisson(rate, generator=generator)
    else:
        counts = check_field(counts, "counts", shape, torch.float64, clean.device)
    return _noise_frames(clean, to_uint8(counts / float(c)))


def speckle_noise(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None, *,
                  noise: Tensor | None = None) -> Tensor:
    """Frame 0 clean, then 30 frames ``x + x * N(0, sigma^2)`` in float64.

    Args:
        clean: (N, 3, S, S) uint8, any device.
        noise: optional (N, 30, 3, S, S) float64, the noise already times sigma.
    """
    sigma = NOISE_LEVELS[preset]["speckle_noise"][difficulty - 1]
    shape = (len(clean), FRAMES[preset]["speckle_noise"] - 1, *clean.shape[1:])
    if noise is None:
        noise = sigma * torch.randn(shape, generator=generator, dtype=torch.float64, device=clean.device)
    else:
        noise = check_field(noise, "noise", shape, torch.float64, clean.device)
    x = to_unit_float(clean)[:, None]
    return _noise_frames(clean, to_uint8(x + x * noise))


def _line_blur(x: Tensor, radius: float, sigma: float, angle_deg: float) -> Tensor:
    """``filters.motion_blur_line`` for one angle shared by the whole batch: same taps, weights and summation order
    (bit-identical), but each tap is a slice of one edge-replicated padding instead of two per-image gathers.

    Args:
        x: (B, C, S, S) float64.

    Returns:
        (B, C, S, S) float64, not rounded.
    """
    angle = torch.tensor([angle_deg], dtype=torch.float64)
    offsets = motion_blur_offsets(radius, angle)[0].tolist()  # [(dy, dx)] per tap, on the CPU
    weights = motion_blur_weights(radius, sigma).tolist()
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")  # clamp-to-edge reads
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    for (dy, dx), weight in zip(offsets, weights):
        out = out + weight * padded[..., pad + dy:pad + dy + h, pad + dx:pad + dx + w]
    return out


def _imagemagick_blur(images: Tensor, radius: float, sigma: float, angles_deg: tuple[float, ...]) -> Tensor:
    """ImageMagick motion blur of every image at every angle, rounded to 8 bits as its PNG output is (§4.4).

    Args:
        images: (N, C, S, S) uint8.

    Returns:
        (N, T, C, S, S) uint8, T = len(angles_deg).
    """
    x = images.to(torch.float64)
    frames = [_line_blur(x, radius, sigma, angle) for angle in angles_deg]  # one angle per frame, all videos
    return torch.stack([torch.floor(f + 0.5).clamp(0, 255).to(torch.uint8) for f in frames], dim=1)


def motion_blur(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Frame i: ImageMagick motion blur at angle ``(i - 20) 9`` (CIFAR, radius 6, sigma 1.8, 21 frames) or
    ``(i - 30) 4`` degrees (ImageNet, radius 10, sigma 3, 31 frames), rounded to 8 bits."""
    radius, sigma, angles = MOTION[preset]
    return _imagemagick_blur(clean, radius, sigma, angles)


def snow(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None, *,
         flake_noise: Tensor | None = None) -> Tensor:
    """One flake layer per video, blurred at a new angle ``4 i - 150`` degrees each frame (§8.2).

    The layer ``N(0.05, 0.3)`` is zoomed (clipped_zoom x2 / x3), thresholded at 0.5 and stored as 8 bits; each
    frame ImageMagick-blurs that 8-bit layer (rounded), and adds it and its 180-degree rotation to the brightened
    image ``0.85 x + 0.15 max(x, 1.5 gray + 0.5)``. Unlike -C snow, ``x`` is float64 here (``np.array(img) / 255.``)
    and only the grey conversion runs in float32.

    Args:
        clean: (N, 3, S, S) uint8, any device.
        flake_noise: optional (N, S, S) float64, the layer before zooming (``np.random.normal(size=(S, S),
            loc=0.05, scale=0.3)``).

    Returns:
        (N, 31, 3, S, S) uint8.
    """
    p = SNOW[preset]
    n, _, s, _ = clean.shape
    if flake_noise is None:
        flake_noise = p.loc + p.scale * torch.randn((n, s, s), generator=generator, dtype=torch.float64,
                                                    device=clean.device)
    else:
        flake_noise = check_field(flake_noise, "flake_noise", (n, s, s), torch.float64, clean.device)
    layer = clipped_zoom(flake_noise, p.zoom)
    layer = torch.where(layer < p.threshold, torch.zeros_like(layer), layer)
    layer8 = (layer.clamp(0, 1) * 255).to(torch.uint8)[:, None]  # (N, 1, S, S): the 8-bit 'L' PNG
    flakes = _imagemagick_blur(layer8, p.radius, p.sigma, p.angles_deg)  # (N, T, 1, S, S) uint8
    x = to_unit_float(clean)
    r, g, b = x.to(torch.float32).unbind(1)  # cv2.cvtColor(np.float32(x), RGB2GRAY)
    gray = (r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2])[:, None] * 1.5 + 0.5  # float32
    bright = (p.blend * x + (1 - p.blend) * torch.maximum(x, gray.to(torch.float64)))[:, None]  # (N, 1, 3, S, S)
    out = []
    for block in frame_blocks(n, flakes.shape[1], s):
        layer = flakes[:, block].to(torch.float64) / 255  # cv2.imdecode(...) / 255.
        out.append(to_uint8(bright + layer + layer.flip(-2, -1)))
    return torch.cat(out, dim=1)


def brightness(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Frame i: scikit-image HSV round trip with ``V <- clip(V + (i - 15) 1.5 / 100)`` (CIFAR) or ``(i - 15) 2 / 100``
    (ImageNet), in float64 (bit-identical to scikit-image through corruptions.color)."""
    hsv = rgb_to_hsv(to_unit_float(clean))  # (N, 3, S, S): one conversion for all frames
    deltas = torch.tensor(BRIGHTNESS_DELTAS[preset], dtype=torch.float64, device=clean.device)[None, :, None, None]
    h, s, v = (c[:, None] for c in hsv.unbind(1))  # (N, 1, S, S)
    out = []
    for block in frame_blocks(len(clean), deltas.shape[1], clean.shape[-1]):
        shifted = (v + deltas[:, block]).clamp(0, 1)  # (N, F, S, S)
        frames = torch.stack([h.expand_as(shifted), s.expand_as(shifted), shifted], dim=2)  # (N, F, 3, S, S)
        out.append(to_uint8(hsv_to_rgb(frames)))
    return torch.cat(out, dim=1)


def gaussian_blur(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Frame i: scikit-image ``gaussian`` (border nearest) with sigma ``0.3 + 0.015 i``, truncate 7 (CIFAR) or
    ``0.25 + 0.035 i``, truncate 6 (ImageNet); float64, truncated (bit-identical to SciPy's filter)."""
    sigmas, truncate = GAUSSIAN_BLUR[preset]
    x = to_unit_float(clean)
    # One filter per frame: each frame has its own kernel (31 calls over the whole batch).
    return torch.stack([to_uint8(gaussian_filter(x, sigma, mode="nearest", truncate=truncate)) for sigma in sigmas],
                       dim=1)


def smear_down(layer: Tensor, kernel: tuple[float, ...]) -> Tensor:
    """``np.convolve(column, kernel, mode='same')`` down every column of (..., H, W) float64 layers, zero outside.

    'same' keeps outputs ``(len(kernel) - 1) // 2`` ... of the full convolution, so ``[0.2, 0.8]`` gives
    ``new[r] = 0.2 old[r] + 0.8 old[r - 1]`` and ``[0.05, 0.1, 0.15, 0.7]`` gives
    ``new[r] = 0.05 old[r + 1] + 0.1 old[r] + 0.15 old[r - 1] + 0.7 old[r - 2]`` (§8.2).
    """
    k, h = len(kernel), layer.shape[-2]
    start = (k - 1) // 2
    padded = torch.nn.functional.pad(layer, (0, 0, k - 1, k - 1))  # zero rows above and below
    out = torch.zeros_like(layer)
    for j in reversed(range(k)):  # NumPy correlates with the reversed kernel, largest tap index first
        shift = start + k - 1 - j  # padded row of old[r + start - j]
        out = out + kernel[j] * padded[..., shift:shift + h, :]
    return out


def spatter(clean: Tensor, preset: str, difficulty: int = 1, generator: torch.Generator | None = None, *,
            liquid_noise: Tensor | None = None) -> Tensor:
    """Water spatter (§5.18 water mode, intensity 0.6) from one liquid layer per video, smeared down after every frame.

    The layer ``N(loc, scale)`` is smoothed (border nearest) and thresholded once; frame i uses the layer smeared i
    times by :func:`smear_down` (no re-thresholding, as the reference). Quirks kept as -C spatter: the 8-bit layer
    wraps modulo 256 where it exceeds 1; an empty mask (0/0 in the reference) is treated as no spatter.

    Args:
        clean: (N, 3, S, S) uint8, any device.
        liquid_noise: optional (N, S, S) float64, the unsmoothed layer (``np.random.normal(size=(S, S), loc, scale)``).

    Returns:
        (N, 31, 3, S, S) uint8.
    """
    p = SPATTER[preset]
    n, _, s, _ = clean.shape
    frames = FRAMES[preset]["spatter"]
    if liquid_noise is None:
        liquid_noise = p.loc + p.scale * torch.randn((n, s, s), generator=generator, dtype=torch.float64,
                                                     device=clean.device)
    else:
        liquid_noise = check_field(liquid_noise, "liquid_noise", (n, s, s), torch.float64, clean.device)
    layer = gaussian_filter(liquid_noise, p.sigma, mode="nearest", truncate=4.0)
    layer = torch.where(layer < p.threshold, torch.zeros_like(layer), layer)
    layers = [layer]
    for _ in range(frames - 1):  # the smear is a recurrence over frames; each step covers the whole batch
        layers.append(smear_down(layers[-1], p.smear))
    layers = torch.stack(layers, dim=1)  # (N, T, S, S)
    colour = water_colour(clean.device)
    x = clean.to(torch.float32)[:, None] / 255  # np.array(img, dtype=float32) / 255.
    out = []
    for block in frame_blocks(n, frames, s, budget=_SPATTER_BUDGET):  # few big calls: its loops run per row
        mask = water_mask(layers[:, block].reshape(-1, s, s), p.intensity)  # (N F, S, S), video-major
        wet = x + mask.reshape(n, -1, 1, s, s) * colour[:, None, None]  # (N, F, 3, S, S) float32
        out.append(to_uint8(wet))
    return torch.cat(out, dim=1)


_PHOTOMETRIC: dict[str, Callable[..., Tensor]] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "speckle_noise": speckle_noise,
    "motion_blur": motion_blur, "snow": snow, "brightness": brightness, "gaussian_blur": gaussian_blur,
    "spatter": spatter,
}
_GEOMETRIC: dict[str, Callable[[BaseImages, str, bool], Tensor]] = {
    "translate": geometry.translate, "rotate": geometry.rotate, "scale": geometry.scale, "shear": geometry.shear,
    "tilt": geometry.tilt, "zoom_blur": geometry.zoom_blur,
}
