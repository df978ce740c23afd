"""The chunk-seeding contract: how a generated -C or -P set splits into chunks and seeds each one.

Generation writes files with it and evaluation replays it in memory (``--generate``), so a cell evaluated on the fly
equals the same cell read back from a generated file. Chunk ``k`` of a unit (images or videos ``k*B .. k*B+B-1``)
draws from its own ``torch.Generator`` seeded with ``derive_seed(seed, name index, [severity,] k)``: a resumed
run, a subset of units, or a single unit regenerated later gives the same bytes as one full run (same device type
and chunk size; both are recorded in the manifest and checked on resume).
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from corruptions import ALL_CORRUPTIONS, get_corruption
from runtime.seeding import derive_seed

# images per -C chunk by preset; part of the seeding (changes the random draws), recorded in the manifest
C_CHUNK_SIZE = MappingProxyType({"cifar": 500, "tiny": 250, "imagenet": 100})
# videos per -P chunk by preset; part of the seeding as well
P_CHUNK_SIZE = MappingProxyType({"cifar": 100, "imagenet": 8})


def corruption_chunk_generator(seed: int, corruption: str, severity: int, chunk: int,
                               device: torch.device | str) -> torch.Generator:
    """The generator of one -C chunk: independent of which other units a run generates or skips."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, ALL_CORRUPTIONS.index(corruption), severity, chunk))
    return generator


def perturbation_chunk_generator(seed: int, name: str, chunk: int, device: torch.device | str) -> torch.Generator:
    """The generator of one chunk of one -P file (``name`` may carry a difficulty suffix, e.g. ``translate_3``)."""
    from corruptions.sequences import ALL_PERTURBATION_NAMES

    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, ALL_PERTURBATION_NAMES.index(name), chunk))
    return generator


def corrupt_batch(images: torch.Tensor, corruption: str, severity: int, preset: str,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Apply one registered corruption to a batch and check the contract (shape, dtype, device kept).

    Args:
        images: (B, 3, H, W) uint8 on the generation device.

    Returns:
        (B, 3, H, W) uint8, same device.
    """
    out = get_corruption(corruption)(images, severity, preset, generator=generator)
    if out.shape != images.shape or out.dtype != torch.uint8 or out.device != images.device:
        raise RuntimeError(f"{corruption} returned {tuple(out.shape)} {out.dtype} on {out.device}; expected "
                           f"{tuple(images.shape)} uint8 on {images.device}")
    return out
