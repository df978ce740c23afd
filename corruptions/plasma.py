"""Diamond-square plasma fractal on a torus, batched over images: the fog corruption's height map.

Follows the reference's ``plasma_fractal`` (hendrycks/robustness, itself adapted from FLHerne/mapgen), as
specified in docs/corruptions.md §4.3, including its arithmetic order so float64 maps are
bit-identical given the same uniform draws.
"""

from __future__ import annotations

import torch
from torch import Tensor

INITIAL_WIBBLE = 100.0  # the reference's starting noise half-width


def plasma_levels(mapsize: int) -> int:
    """Number of diamond-square levels for a power-of-two ``mapsize`` (step = mapsize, mapsize/2, ..., 2)."""
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma mapsize must be a power of two >= 2, got {mapsize}")
    return mapsize.bit_length() - 1


def draw_plasma(n: int, mapsize: int, decay: float, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
    """The random draws of ``n`` plasma maps: per level, three ``U(-w, w)`` fields as the reference draws them.

    Returns:
        One (n, 3, k, k) float64 tensor per level, k = 1, 2, 4, ..., mapsize / 2; index 1 of each holds the
        squares, diamonds-1 and diamonds-2 draws, in the reference's order. ``w`` starts at 100 and is divided
        by ``decay`` after each level.
    """
    draws, wibble = [], INITIAL_WIBBLE
    for level in range(plasma_levels(mapsize)):
        k = 1 << level
        u = torch.rand((n, 3, k, k), generator=generator, dtype=torch.float64, device=device)
        draws.append(-wibble + (2 * wibble) * u)  # NumPy's uniform(low, high): low + (high - low) * U[0, 1)
        wibble /= decay
    return tuple(draws)


def plasma_fractal(draws: tuple[Tensor, ...] | list[Tensor], decay: float) -> Tensor:
    """Diamond-square maps from their per-level draws, normalised per map to [0, 1].

    Each level turns the (n, k, k) grid of corners C into a (n, 2k, 2k) grid: square centres
    ``D = (C + C[i+1,j] + C[i,j+1] + C[i+1,j+1]) / 4 + w * U``, then the two diamond sets
    ``(D + D[i-1,j] + C + C[i,j+1]) / 4 + w * U`` and ``(D + D[i,j-1] + C + C[i+1,j]) / 4 + w * U``, indices
    wrapping around. The draws are already ``U(-w, w)``, so the added noise has amplitude ``w^2``: the
    reference's quirk (pitfall 6), kept. Finally ``P -= min(P)``, ``P /= max(P)`` per map.

    Args:
        draws: per level k = 1, 2, ..., mapsize/2, a (n, 3, k, k) float64 tensor (see :func:`draw_plasma`);
            any device.
        decay: the wibble decay of the fog severity.

    Returns:
        (n, mapsize, mapsize) float64 in [0, 1], on the draws' device.
    """
    first = draws[0]
    n = first.shape[0]
    grid = torch.zeros((n, 1, 1), dtype=torch.float64, device=first.device)  # P[0, 0] = 0
    wibble = INITIAL_WIBBLE
    for level, u in enumerate(draws):
        k = 1 << level
        if tuple(u.shape) != (n, 3, k, k):
            raise ValueError(f"plasma draws for level {level} must have shape {(n, 3, k, k)}, got {tuple(u.shape)}")
        grid = _refine(grid, u.to(torch.float64), wibble)
        wibble /= decay
    grid = grid - grid.amin(dim=(1, 2), keepdim=True)
    return grid / grid.amax(dim=(1, 2), keepdim=True)


def _refine(corners: Tensor, u: Tensor, wibble: float) -> Tensor:
    """One diamond-square level: (n, k, k) corners -> (n, 2k, 2k) map, summing in the reference's order."""
    n, k, _ = corners.shape
    squares = corners + corners.roll(-1, dims=1)  # C[i, j] + C[i+1, j]
    squares = squares + squares.roll(-1, dims=2)  # ... + (C[i, j+1] + C[i+1, j+1])
    centres = squares / 4 + wibble * u[:, 0]
    left = (centres + centres.roll(1, dims=1)) + (corners + corners.roll(-1, dims=2))
    top = (centres + centres.roll(1, dims=2)) + (corners + corners.roll(-1, dims=1))
    out = torch.empty((n, 2 * k, 2 * k), dtype=corners.dtype, device=corners.device)
    out[:, 0::2, 0::2] = corners
    out[:, 1::2, 1::2] = centres
    out[:, 0::2, 1::2] = left / 4 + wibble * u[:, 1]  # points (i*step, j*step + step/2)
    out[:, 1::2, 0::2] = top / 4 + wibble * u[:, 2]  # points (i*step + step/2, j*step)
    return out
