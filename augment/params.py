"""AugMix op lists and the level -> parameter formulas, shared by the PIL and the tensor backend.

Follows google-research/augmix ``augmentations.py`` (see docs/augmix.md §2). Every formula
works on Python floats, NumPy arrays and torch tensors alike, so both backends compute identical
parameters from identical levels. Pass levels as float64 to reproduce the reference's truncations exactly.
"""

from __future__ import annotations

from typing import Any

# Order matters: op indices drawn uniformly from these tuples must replay the reference stream.
AUGMIX_OPS: tuple[str, ...] = (
    "autocontrast", "equalize", "posterize", "rotate", "solarize",
    "shear_x", "shear_y", "translate_x", "translate_y",
)
# The four enhancers overlap ImageNet-C test corruptions and are withheld in the paper.
ALL_OPS: tuple[str, ...] = AUGMIX_OPS + ("color", "contrast", "brightness", "sharpness")

OPS_WITHOUT_LEVEL: frozenset[str] = frozenset({"autocontrast", "equalize"})  # consume no random numbers
OPS_WITH_SIGN: frozenset[str] = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y"})

LEVEL_LOW = 0.1      # level u ~ U[LEVEL_LOW, severity), re-drawn on every op call
MAX_LEVEL = 10       # levels are scaled by value / MAX_LEVEL
ROTATE_MAX = 30      # degrees (integer parameter)
SHEAR_MAX = 0.3      # affine coefficient (float parameter)
POSTERIZE_MAX = 4    # bits removed from 4 (so at most 4 bits are kept)
SOLARIZE_MAX = 256   # threshold = 256 - t
ENHANCE_MAX = 1.8    # enhance factor = u * 1.8 / 10 + 0.1


def op_list(all_ops: bool) -> tuple[str, ...]:
    return ALL_OPS if all_ops else AUGMIX_OPS


def _trunc(value: Any) -> Any:
    """Truncation toward zero, Python ``int()`` semantics, for floats, NumPy arrays and torch tensors."""
    if isinstance(value, float | int):
        return int(value)
    if hasattr(value, "trunc"):  # torch.Tensor
        return value.trunc()
    import numpy as np

    return np.trunc(value)


def int_parameter(level: Any, maxval: float) -> Any:
    """``trunc(level * maxval / 10)``: the reference's integer magnitude."""
    return _trunc(level * maxval / MAX_LEVEL)


def float_parameter(level: Any, maxval: float) -> Any:
    """``level * maxval / 10``: the reference's float magnitude."""
    return level * maxval / MAX_LEVEL


def op_magnitude(name: str, level: Any, image_size: int) -> Any:
    """The unsigned parameter an op uses at ``level`` (None for autocontrast / equalize).

    posterize -> bits kept (4 - j); rotate -> integer degrees; solarize -> threshold (256 - t);
    shear_* -> affine coefficient; translate_* -> integer pixels (``image_size / 3`` is a float maximum);
    color / contrast / brightness / sharpness -> enhance factor.
    """
    if name in OPS_WITHOUT_LEVEL:
        return None
    if name == "posterize":
        return POSTERIZE_MAX - int_parameter(level, POSTERIZE_MAX)
    if name == "rotate":
        return int_parameter(level, ROTATE_MAX)
    if name == "solarize":
        return SOLARIZE_MAX - int_parameter(level, SOLARIZE_MAX)
    if name in ("shear_x", "shear_y"):
        return float_parameter(level, SHEAR_MAX)
    if name in ("translate_x", "translate_y"):
        return int_parameter(level, image_size / 3)
    if name in ("color", "contrast", "brightness", "sharpness"):
        return float_parameter(level, ENHANCE_MAX) + 0.1
    raise KeyError(f"unknown AugMix op {name!r}; valid: {', '.join(ALL_OPS)}")


