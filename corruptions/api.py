"""``corrupt()``: one entry point for all 19 corruptions, familiar to users of the per-image package.

Accepts torch tensors (N, 3, H, W) / (3, H, W) or, like ``imagecorruptions.corrupt``, NumPy arrays
(H, W, 3) / (N, H, W, 3), all uint8, and returns the same type and layout it was given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from corruptions import ALL_CORRUPTIONS, get_corruption
from corruptions.presets import check_image_size, check_preset, check_severity


def _to_batch(images: Any) -> tuple[Tensor, str]:
    """(N, 3, H, W) uint8 tensor view of ``images`` and a tag for restoring the input's type and layout."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8 (0..255), got NumPy dtype {images.dtype}")
        if images.ndim == 3 and images.shape[2] == 3:
            return torch.from_numpy(np.ascontiguousarray(images)).permute(2, 0, 1)[None].contiguous(), "numpy_hwc"
        if images.ndim == 4 and images.shape[3] == 3:
            return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous(), "numpy_nhwc"
        raise ValueError(f"NumPy images must have shape (H, W, 3) or (N, H, W, 3), got {images.shape}; "
                         "stack grey images to 3 channels first")
    if isinstance(images, Tensor):
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8 (0..255), got tensor dtype {images.dtype}")
        if images.ndim == 3 and images.shape[0] == 3:
            return images[None].contiguous(), "torch_chw"
        if images.ndim == 4 and images.shape[1] == 3:
            return images.contiguous(), "torch_nchw"
        raise ValueError(f"tensor images must have shape (3, H, W) or (N, 3, H, W), got {tuple(images.shape)}")
    raise TypeError(f"images must be a torch.Tensor or a NumPy array, got {type(images).__name__}")


def _from_batch(batch: Tensor, layout: str) -> Any:
    if layout == "torch_nchw":
        return batch
    if layout == "torch_chw":
        return batch[0]
    hwc = batch.permute(0, 2, 3, 1).cpu().numpy()
    return hwc[0] if layout == "numpy_hwc" else hwc


def corrupt(images: Any, name: str, severity: int, preset: str, generator: torch.Generator | None = None,
            **fields: Any) -> Any:
    """Apply corruption ``name`` at ``severity`` with the parameters of ``preset``.

    Args:
        images: uint8 torch tensor (N, 3, H, W) or (3, H, W) on any device, or uint8 NumPy array (H, W, 3) or
            (N, H, W, 3); H = W = the preset's size (32 "cifar", 64 "tiny", 224 "imagenet").
        name: one of the 19 names of :data:`corruptions.ALL_CORRUPTIONS`.
        severity: 1..5.
        preset: "cifar", "tiny" or "imagenet"; chosen explicitly, never guessed from the size.
        generator: random source (on the images' device) for the random corruptions.
        **fields: injected random fields of that corruption (documented on its function, always in the
            batched channels-first layout), e.g. ``noise=`` for gaussian_noise.

    Returns:
        The corrupted images as uint8, in the type, layout and device they came in.
    """
    if name not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(ALL_CORRUPTIONS)}")
    check_severity(severity)
    check_preset(preset)
    batch, layout = _to_batch(images)
    check_image_size(preset, batch.shape[2], batch.shape[3])
    out = get_corruption(name)(batch, int(severity), preset, generator, **fields)
    return _from_batch(out, layout)
