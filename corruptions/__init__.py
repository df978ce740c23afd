"""The 19 common corruptions of Hendrycks & Dietterich (ICLR 2019) as batched tensor functions.

Names, order and categories follow the released CIFAR-10-C / ImageNet-C files
(docs/corruptions.md §1). Each corruption is a function
``f(images (N, 3, H, W) uint8, severity, preset, generator=None, **fields) -> (N, 3, H, W) uint8``
living in the module named in ``_MODULE_OF``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import MappingProxyType

# The 15 benchmark corruptions, canonical order (used for every mCE / corruption error).
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
# Hendrycks' "validation" corruptions; never part of a benchmark mean.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS + EXTRA_CORRUPTIONS

SUBSETS = MappingProxyType({
    "common": CORRUPTIONS,
    "extra": EXTRA_CORRUPTIONS,
    "validation": EXTRA_CORRUPTIONS,  # the per-image package's name for the same four
    "all": ALL_CORRUPTIONS,
    "noise": CORRUPTIONS[0:3],
    "blur": CORRUPTIONS[3:7],
    "weather": CORRUPTIONS[7:11],
    "digital": CORRUPTIONS[11:15],
})

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

_MODULE_OF = MappingProxyType({
    "gaussian_noise": "noise", "shot_noise": "noise", "impulse_noise": "noise",
    "defocus_blur": "blur", "glass_blur": "blur", "motion_blur": "blur", "zoom_blur": "blur",
    "snow": "weather", "frost": "weather", "fog": "weather", "brightness": "weather",
    "contrast": "digital", "elastic_transform": "digital", "pixelate": "digital", "jpeg_compression": "digital",
    "speckle_noise": "extra", "gaussian_blur": "extra", "spatter": "extra", "saturate": "extra",
})


def get_corruption_names(subset: str = "common") -> tuple[str, ...]:
    """Corruption names of a subset, in canonical order: common, extra (alias validation), all, noise,
    blur, weather, digital."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown corruption subset {subset!r}; valid: {', '.join(SUBSETS)}")
    return SUBSETS[subset]


def get_corruption(name: str) -> Callable:
    """The batched function implementing corruption ``name``."""
    if name not in _MODULE_OF:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(ALL_CORRUPTIONS)}")
    module = importlib.import_module(f"{__name__}.{_MODULE_OF[name]}")
    return getattr(module, name)


# Imported last: api.py reads the names and get_corruption defined above.
from corruptions.api import corrupt  # noqa: E402, F401 (re-exported)

_SEQUENCE_EXPORTS = ("PERTURBATIONS", "PERTURBATION_SUBSETS", "IMAGENET_P_TEST", "CIFAR_P_SCRIPT", "CIFAR_P_BENCHMARK",
                     "make_sequences")


def __getattr__(name: str):
    """-P names (corruptions.PERTURBATIONS, make_sequences, ...) import the sequence code only when first used."""
    if name in _SEQUENCE_EXPORTS:
        from corruptions import sequences

        return getattr(sequences, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
