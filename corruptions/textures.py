"""The six frost textures of the frost corruption: locating, decoding and rescaling them, cached per device.

The files ship with hendrycks/robustness and, byte-identical, in the package data of imagecorruptions-imaug
(docs/corruptions.md §4.5, §11). We read them from that folder without importing the package
(which would pull in OpenCV and numba), or from a folder the user names.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

FROST_FILES: tuple[str, ...] = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
# The reference draws np.random.randint(5): frost6.jpg is listed but never used (§4.5, pitfall 7).
REFERENCE_TEXTURE_COUNT = 5
FROST_DIR_ENV = "AUGMIX_FROST_DIR"
_PACKAGE = "imagecorruptions"  # PyPI imagecorruptions-imaug; textures in <package>/frost/
_DECODABLE_MODES = ("RGB", "RGBA", "L")
_COEF_BITS = 11  # OpenCV INTER_RESIZE_COEF_BITS: bilinear weights are integers out of 2048
_HOW_TO_GET = (f"install the package that ships them (pip install imagecorruptions-imaug), or put "
               f"{', '.join(FROST_FILES)} in a folder and pass it as frost_dir= or set ${FROST_DIR_ENV}")


@dataclass(frozen=True)
class FrostTextures:
    """Rescaled frost textures on one device, zero-padded into one stack so crops can be gathered in a batch.

    Attributes:
        stack: (6, 3, H_max, W_max) uint8 RGB; texture k occupies ``stack[k, :, :heights[k], :widths[k]]``.
            Shared by every caller through the cache: never modify it in place.
        heights: per texture, rows after rescaling.
        widths: per texture, columns after rescaling.
    """

    stack: Tensor
    heights: tuple[int, ...]
    widths: tuple[int, ...]


def find_frost_dir(frost_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding frost1.png .. frost6.jpg.

    Order: ``frost_dir`` if given, else ``$AUGMIX_FROST_DIR`` if set, else the ``frost/`` folder of the
    installed imagecorruptions-imaug package (found with ``importlib.util.find_spec``, not imported). A folder
    named explicitly (argument or variable) that lacks a file is an error, never a silent fallback.

    Raises:
        FileNotFoundError: naming the folder searched, its source, the missing files and how to get them.
    """
    if frost_dir is not None:
        folder, source = Path(frost_dir).expanduser(), "the frost_dir argument"
    elif os.environ.get(FROST_DIR_ENV):
        folder, source = Path(os.environ[FROST_DIR_ENV]).expanduser(), f"${FROST_DIR_ENV}"
    else:
        spec = importlib.util.find_spec(_PACKAGE)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise FileNotFoundError(f"frost textures not found: package {_PACKAGE!r} is not installed and "
                                    f"${FROST_DIR_ENV} is not set; {_HOW_TO_GET}")
        folder, source = Path(locations[0]) / "frost", f"the installed {_PACKAGE!r} package"
    missing = [name for name in FROST_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"frost textures missing in {folder} (from {source}): {', '.join(missing)}; "
                                f"{_HOW_TO_GET}")
    return folder


def read_frost_texture(path: str | os.PathLike) -> np.ndarray:
    """Decode one texture as the reference's ``cv2.imread(path)[..., ::-1]`` does: alpha dropped, RGB order.

    Pillow is used because, for these six files, it decodes bit-identically to OpenCV on our reference
    machine (libjpeg-turbo in both; checked in tests/test_corruptions_textures.py) and avoids importing
    OpenCV. Unlike ``cv2.imread`` it ignores EXIF orientation, which none of the six files carries.

    Returns:
        (H, W, 3) uint8 RGB NumPy array.
    """
    with Image.open(path) as image:
        if image.mode not in _DECODABLE_MODES:
            raise ValueError(f"frost texture {path}: unsupported image mode {image.mode!r}; "
                             f"expected one of {', '.join(_DECODABLE_MODES)} (8-bit)")
        return np.asarray(image.convert("RGB"))  # RGBA -> RGB drops alpha without compositing, like OpenCV


def resize_linear_opencv(image: np.ndarray, scale: float) -> np.ndarray:
    """``cv2.resize(image, (0, 0), fx=scale, fy=scale)`` (INTER_LINEAR) for uint8 images, in NumPy.

    OpenCV's fixed-point path: output side ``round_half_even(side * scale)``; source coordinate
    ``(o + 0.5) / scale - 0.5`` in float32, clamped at the borders; weights rounded to 1/2048; the
    horizontal pass keeps integers, the vertical pass is OpenCV's SIMD kernel
    ``(((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1 >> 16) + 2) >> 2``. Bit-exact against OpenCV 5.0 for the
    frost scales 0.2 and 0.3 (tested). At scale 0.2 the weights are exactly (1, 0), so the result is
    ``image[2::5, 2::5]`` (§4.5).

    Args:
        image: (H, W, C) uint8.
        scale: factor for both axes, a reduction: 0 < scale < 1 and not 0.5 (OpenCV switches to INTER_AREA
            for an exact 2x reduction, and enlargements take another code path; neither is reproduced).

    Returns:
        (round(H * scale), round(W * scale), C) uint8.
    """
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"resize_linear_opencv expects an (H, W, C) uint8 array, got {image.dtype} {image.shape}")
    if not 0 < scale < 1 or scale == 0.5:
        raise ValueError(f"resize_linear_opencv supports reductions 0 < scale < 1 other than 0.5, got {scale}")
    rows, row_weights = _linear_taps(image.shape[0], scale)
    cols, col_weights = _linear_taps(image.shape[1], scale)
    src = image.astype(np.int64)
    horizontal = src[:, cols[:, 0]] * col_weights[None, :, 0, None] + src[:, cols[:, 1]] * col_weights[None, :, 1, None]
    top = (horizontal[rows[:, 0]] >> 4) * row_weights[:, 0, None, None] >> 16
    bottom = (horizontal[rows[:, 1]] >> 4) * row_weights[:, 1, None, None] >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def _linear_taps(size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source index pairs (out, 2) and integer weights (out, 2) of OpenCV's bilinear resize along one axis."""
    out = int(np.rint(size * scale))  # saturate_cast<int>: round half to even
    inverse = 1.0 / scale
    fx = ((np.arange(out) + 0.5) * inverse - 0.5).astype(np.float32)  # OpenCV computes in double, stores float
    sx = np.floor(fx).astype(np.int64)
    fx = (fx - sx.astype(np.float32)).astype(np.float32)
    clamp_low, clamp_high = sx < 0, sx >= size - 1
    fx = np.where(clamp_low | clamp_high, np.float32(0), fx)
    sx = np.where(clamp_low, 0, np.where(clamp_high, size - 1, sx))
    one = np.float32(1)
    w0 = np.rint((one - fx) * np.float32(1 << _COEF_BITS)).astype(np.int64)  # saturate_cast<short>: cvRound
    w1 = np.rint(fx * np.float32(1 << _COEF_BITS)).astype(np.int64)
    index = np.stack([sx, np.minimum(sx + 1, size - 1)], axis=1)
    return index, np.stack([w0, w1], axis=1)


def load_frost_textures(scale: float, device: torch.device | str = "cpu",
                        frost_dir: str | os.PathLike | None = None) -> FrostTextures:
    """All six textures decoded, rescaled by ``scale`` (1 = full size), stacked on ``device``; cached.

    Decoding and rescaling happen once per (scale, device, folder) in a process; the reference re-read
    the file on every call (§10).

    Args:
        scale: the preset's texture factor (CIFAR 0.2, 64 px 0.3, ImageNet 1).
        device: where the stack lives.
        frost_dir: folder with the files; see :func:`find_frost_dir`.
    """
    folder = find_frost_dir(frost_dir).resolve()
    return _load_cached(float(scale), str(torch.device(device)), str(folder))


@functools.lru_cache(maxsize=16)
def _load_cached(scale: float, device: str, folder: str) -> FrostTextures:
    textures = [read_frost_texture(Path(folder) / name) for name in FROST_FILES]
    if scale != 1.0:
        textures = [resize_linear_opencv(t, scale) for t in textures]
    heights = tuple(t.shape[0] for t in textures)
    widths = tuple(t.shape[1] for t in textures)
    stack = np.zeros((len(textures), 3, max(heights), max(widths)), dtype=np.uint8)
    for k, texture in enumerate(textures):
        stack[k, :, : heights[k], : widths[k]] = texture.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    return FrostTextures(torch.from_numpy(stack).to(device), heights, widths)
