"""Severity parameter tables of the three corruption presets (docs/corruptions.md §3).

``cifar`` (32 px): CIFAR-10-C / CIFAR-100-C (``make_cifar_c.py``); ``tiny`` (64 px): Tiny-ImageNet-C and
ImageNet-64x64-C (``make_tinyimagenet_c.py``); ``imagenet`` (224 px): ImageNet-C (``make_imagenet_c.py``).

What :func:`get_params` returns for one severity, per corruption (tuples are NamedTuples, so they unpack
like the reference's ``c`` tuples and also read by field name):

    gaussian_noise float sigma          shot_noise float photons c       impulse_noise float amount
    defocus_blur   DefocusParams        glass_blur GlassParams           motion_blur MotionParams
    zoom_blur      tuple[float, ...] zoom factors (float64 ``np.arange`` values, endpoints included as §3.4)
    snow           SnowParams           frost FrostParams                fog FogParams
    brightness     float delta V        contrast float factor            elastic_transform ElasticParams
    pixelate       PixelateParams       jpeg_compression int quality     speckle_noise float sigma
    gaussian_blur  float sigma          spatter SpatterParams            saturate SaturateParams

Image sizes: a preset accepts only square images of exactly its size (:func:`check_image_size`). Several
reference functions hard-code the size (glass-blur loop bounds, fog map, frost crop, pixelate side, elastic
scale), so there is no faithful answer for other sizes and we raise instead of guessing.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

PRESETS = MappingProxyType({"cifar": 32, "tiny": 64, "imagenet": 224})  # preset -> image side S


class DefocusParams(NamedTuple):
    radius: float       # disk radius in pixels (§4.1)
    alias_sigma: float  # sigmaX of the OpenCV anti-alias GaussianBlur of the disk


class GlassParams(NamedTuple):
    sigma: float     # Gaussian sigma before and after the shuffle (§5.6)
    delta: int       # maximum offset; offsets are drawn from [-delta, delta - 1]
    iterations: int  # number of local-shuffle passes


class MotionParams(NamedTuple):
    radius: float  # ImageMagick radius: the line kernel has 2 * radius + 1 taps (§4.4)
    sigma: float   # one-sided Gaussian sigma of the tap weights


class SnowParams(NamedTuple):
    loc: float           # mean of the N(loc, scale) flake layer (§5.10)
    scale: float         # its standard deviation
    zoom: float          # clipped_zoom factor of the layer
    threshold: float     # layer values below it become 0
    blur_radius: float   # motion-blur radius of the layer
    blur_sigma: float    # motion-blur sigma of the layer
    blend: float         # weight of the image against its brightened grey


class FrostParams(NamedTuple):
    image_coef: float  # weight of the clean image (§5.11)
    frost_coef: float  # weight of the frost texture crop


class FogParams(NamedTuple):
    amplitude: float  # a: weight of the plasma map (§5.12)
    decay: float      # wibble decay of the plasma fractal (§4.3)


class ElasticParams(NamedTuple):
    alpha: float  # displacement scale, already multiplied by the preset's size constant (§5.15)
    sigma: float  # Gaussian sigma of the displacement fields
    delta: float  # maximum jitter of the three affine points


class PixelateParams(NamedTuple):
    factor: float  # the reference's c
    side: int      # int(S * factor): side of the BOX-downscaled image (§5.16)


class SpatterParams(NamedTuple):
    loc: float        # mean of the N(loc, scale) liquid layer (§5.18)
    scale: float      # its standard deviation
    sigma: float      # Gaussian sigma of the liquid layer
    threshold: float  # layer values below it become 0
    intensity: float  # water: mask scale; mud: Gaussian sigma of the mask
    mode: int         # 0 = water, 1 = mud


class SaturateParams(NamedTuple):
    multiplier: float  # S <- clip(S * multiplier + offset, 0, 1) (§5.19)
    offset: float


# Size constants hard-coded in the reference generators.
FOG_MAPSIZE = MappingProxyType({"cifar": 32, "tiny": 64, "imagenet": 256})  # plasma map side (§4.3), top-left crop
FROST_TEXTURE_SCALE = MappingProxyType({"cifar": 0.2, "tiny": 0.3, "imagenet": 1.0})  # OpenCV resize fx=fy (§4.5)
# ImageNet multiplies by 244: "should have been 224, but ultimately nothing is incorrect" (§3.2; kept on purpose).
ELASTIC_SCALE = MappingProxyType({"cifar": 32, "tiny": 64, "imagenet": 244})

# (start, stop, step) of np.arange per severity (§3.4); the 64-px preset reuses the CIFAR lists.
_ZOOM_ARANGES = {
    "cifar": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "imagenet": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
}
_ZOOM_ARANGES["tiny"] = _ZOOM_ARANGES["cifar"]

# Elastic (alpha, sigma, delta) as multiples of ELASTIC_SCALE, exactly as the reference writes them.
_ELASTIC_MULTIPLES = {
    "cifar": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "tiny": ((0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)),
    "imagenet": ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)),
}

_PIXELATE_FACTORS = {
    "cifar": (0.95, 0.9, 0.85, 0.75, 0.65),
    "tiny": (0.9, 0.8, 0.7, 0.6, 0.5),
    "imagenet": (0.6, 0.5, 0.4, 0.3, 0.25),
}


def _zoom_factors(start: float, stop: float, step: float) -> tuple[float, ...]:
    # float64 arange, so rounding includes some endpoints: (1.06 - 1) / 0.01 = 6.000000000000005 -> 7 factors.
    return tuple(float(z) for z in np.arange(start, stop, step, dtype=np.float64))


def _table(preset: str, raw: dict[str, tuple]) -> MappingProxyType:
    """Fill in the derived columns (zoom lists, elastic products, pixelate sides) and freeze."""
    size = PRESETS[preset]
    scale = ELASTIC_SCALE[preset]
    table = dict(raw)
    table["zoom_blur"] = tuple(_zoom_factors(*a) for a in _ZOOM_ARANGES[preset])
    # Products in float64 in the reference's order (scale * multiple), so 244 * 0.7 is 170.79999999999998.
    table["elastic_transform"] = tuple(ElasticParams(scale * a, scale * s, scale * d)
                                       for a, s, d in _ELASTIC_MULTIPLES[preset])
    table["pixelate"] = tuple(PixelateParams(f, int(size * f)) for f in _PIXELATE_FACTORS[preset])
    return MappingProxyType(table)


_CIFAR = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": tuple(DefocusParams(*p) for p in ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))),
    "glass_blur": tuple(GlassParams(*p) for p in
                        ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))),
    "motion_blur": tuple(MotionParams(*p) for p in ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),
    "snow": tuple(SnowParams(*p) for p in (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))),
    "frost": tuple(FrostParams(*p) for p in ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))),
    "fog": tuple(FogParams(*p) for p in ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "spatter": tuple(SpatterParams(*p) for p in (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1))),
    "saturate": tuple(SaturateParams(*p) for p in ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))),
}

_TINY = {
    "gaussian_noise": (0.04, 0.08, 0.12, 0.15, 0.18),
    "shot_noise": (250, 100, 50, 30, 15),
    "impulse_noise": (0.01, 0.02, 0.05, 0.08, 0.14),
    "defocus_blur": tuple(DefocusParams(*p) for p in ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1))),
    "glass_blur": tuple(GlassParams(*p) for p in
                        ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2))),
    "motion_blur": tuple(MotionParams(*p) for p in ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3))),
    "snow": tuple(SnowParams(*p) for p in (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6))),
    "frost": tuple(FrostParams(*p) for p in ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55))),
    "fog": tuple(FogParams(*p) for p in ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75))),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "jpeg_compression": (65, 58, 50, 40, 25),
    "speckle_noise": (0.15, 0.2, 0.25, 0.3, 0.35),
    "gaussian_blur": (0.5, 0.75, 1, 1.25, 1.5),
    "spatter": tuple(SpatterParams(*p) for p in (
        (0.62, 0.1, 0.7, 0.7, 0.6, 0), (0.65, 0.1, 0.8, 0.7, 0.6, 0), (0.65, 0.3, 1, 0.69, 0.6, 0),
        (0.65, 0.1, 0.7, 0.68, 0.6, 1), (0.65, 0.1, 0.5, 0.67, 0.6, 1))),
    "saturate": tuple(SaturateParams(*p) for p in ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2))),
}

_IMAGENET = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": tuple(DefocusParams(*p) for p in ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))),
    "glass_blur": tuple(GlassParams(*p) for p in
                        ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))),
    "motion_blur": tuple(MotionParams(*p) for p in ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))),
    "snow": tuple(SnowParams(*p) for p in (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))),
    "frost": tuple(FrostParams(*p) for p in ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))),
    "fog": tuple(FogParams(*p) for p in ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4))),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "jpeg_compression": (25, 18, 15, 10, 7),
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "spatter": tuple(SpatterParams(*p) for p in (
        (0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1))),
    "saturate": tuple(SaturateParams(*p) for p in ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))),
}

# preset -> corruption -> the five per-severity entries (index severity - 1); read-only.
PARAMS = MappingProxyType({
    "cifar": _table("cifar", _CIFAR),
    "tiny": _table("tiny", _TINY),
    "imagenet": _table("imagenet", _IMAGENET),
})


def check_preset(preset: str) -> None:
    """Raise ValueError naming the valid presets if ``preset`` is not one of them."""
    if preset not in PRESETS:
        sizes = ", ".join(f"{name!r} ({side} px)" for name, side in PRESETS.items())
        raise ValueError(f"unknown corruption preset {preset!r}; valid: {sizes}")


def check_severity(severity: Any) -> None:
    """Raise ValueError unless ``severity`` is an integer in 1..5 (bool and float are rejected)."""
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")


def get_params(preset: str, corruption: str, severity: int) -> Any:
    """The reference parameters of ``corruption`` at ``severity`` under ``preset``.

    Args:
        preset: "cifar", "tiny" or "imagenet".
        corruption: one of the 19 names of corruptions/__init__.py.
        severity: 1..5.

    Returns:
        A float/int for one-parameter corruptions, a tuple of float zoom factors for zoom_blur, otherwise the
        NamedTuple listed in the module docstring.
    """
    check_preset(preset)
    table = PARAMS[preset]
    if corruption not in table:
        raise ValueError(f"unknown corruption {corruption!r}; valid: {', '.join(table)}")
    check_severity(severity)
    return table[corruption][int(severity) - 1]


def check_image_size(preset: str, height: int, width: int) -> None:
    """Raise ValueError unless ``height x width`` is the preset's square size; the message suggests a preset.

    Other sizes are an error on purpose: the reference hard-codes the image side in several corruptions and
    calibrates every severity table to its dataset, so no preset is a faithful choice for them.
    """
    check_preset(preset)
    side = PRESETS[preset]
    if (height, width) == (side, side):
        return
    fitting = [name for name, s in PRESETS.items() if (height, width) == (s, s)]
    if fitting:
        hint = f"choose preset={fitting[0]!r}"
    else:
        sizes = ", ".join(f"{s}x{s} ({name!r})" for name, s in PRESETS.items())
        hint = f"no preset fits this size; resize or crop to one of {sizes} first"
    raise ValueError(f"preset {preset!r} expects {side}x{side} images, got {height}x{width}; {hint}")


def check_batch(images: Any, severity: Any, preset: str) -> None:
    """Validate the common arguments of every corruption function; raise a ValueError/TypeError naming the problem.

    Args:
        images: must be a (N, 3, H, W) uint8 torch.Tensor with H x W the preset's size.
        severity: must be an integer 1..5.
        preset: must be one of :data:`PRESETS`.
    """
    import torch  # local: the tables above stay importable without torch

    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (0..255), got {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    check_preset(preset)
    check_severity(severity)
    check_image_size(preset, images.shape[2], images.shape[3])


def check_field(value: Any, name: str, shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
    """An injected random field as a tensor of ``dtype`` on ``device``, after checking its shape.

    Args:
        value: tensor or array-like holding the field (e.g. NumPy draws replayed from the reference).
        name: keyword name of the field, used in the error message.
        shape: the required shape.
        dtype: torch dtype to convert to.
        device: device of the images.
    """
    import torch

    tensor = torch.as_tensor(value)
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"field {name!r} must have shape {tuple(shape)}, got {tuple(tensor.shape)}")
    return tensor.to(dtype=dtype, device=device)
