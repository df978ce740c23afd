"""Visual check of the corruptions: a PNG grid, rows = corruptions, columns = clean + severities 1..5."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from corruptions import SEVERITIES
from corruptions.chunks import corrupt_batch, corruption_chunk_generator
from corruptions.presets import check_image_size
from generation.corruption_sets import GenerationConfig
from generation.output import writing
from generation.sources import preprocess_image
from runtime.files import atomic_write

MIN_CELL = 96        # px; 32-px images are shown 3x (nearest) so single pixels stay visible
LABEL_WIDTH = 150    # px of row labels at the left
HEADER_HEIGHT = 26   # px of column labels at the top
GAP = 2              # px between cells


def load_grid_images(paths: Sequence[str | Path], preset: str) -> torch.Tensor:
    """Read image files and pre-process them as -C generation does (sources.preprocess_image).

    Returns:
        (N, 3, S, S) uint8 on the CPU, S = the preset's image size.
    """
    arrays = []
    for path in paths:
        try:
            with Image.open(path) as image:
                arrays.append(np.asarray(preprocess_image(image, preset), dtype=np.uint8))
        except OSError as exc:
            raise OSError(f"cannot read image {path}: {exc}") from exc
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N,S,S,3) -> (N,3,S,S)


def corruption_cells(images: torch.Tensor, corruptions: Sequence[str], preset: str, seed: int = 0,
                     severities: Sequence[int] = SEVERITIES) -> torch.Tensor:
    """Every image under every corruption and severity, with the same chunk-0 generators as a generated -C set.

    Args:
        images: (N, 3, S, S) uint8, any device.

    Returns:
        (len(corruptions) * N, 1 + len(severities), 3, S, S) uint8 on the CPU; row ``i * N + j`` is image ``j``
        under corruption ``i``, column 0 the clean image.
    """
    check_image_size(preset, images.shape[-2], images.shape[-1])
    GenerationConfig(preset=preset, corruptions=tuple(corruptions), severities=tuple(severities)).validate()
    rows = []
    for corruption in corruptions:
        columns = [images.cpu()]
        for severity in severities:
            generator = corruption_chunk_generator(seed, corruption, severity, 0, images.device)
            columns.append(corrupt_batch(images, corruption, severity, preset, generator).cpu())
        rows.append(torch.stack(columns, dim=1))  # (N, 1 + S, 3, H, W)
    return torch.cat(rows)


def render_grid(cells: torch.Tensor, row_labels: Sequence[str], column_labels: Sequence[str],
                cell_size: int | None = None) -> Image.Image:
    """Lay out a (R, C, 3, H, W) uint8 tensor as a labelled RGB image (white background, black text)."""
    num_rows, num_cols, _, height, _ = cells.shape
    side = cell_size or max(height, MIN_CELL)
    resample = Image.NEAREST if side >= height else Image.BOX
    canvas = Image.new("RGB", (LABEL_WIDTH + num_cols * (side + GAP), HEADER_HEIGHT + num_rows * (side + GAP)),
                       "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    for c, label in enumerate(column_labels):
        draw.text((LABEL_WIDTH + c * (side + GAP) + side // 2, HEADER_HEIGHT // 2), label, fill="black", font=font,
                  anchor="mm")
    tiles = cells.permute(0, 1, 3, 4, 2).numpy()  # (R, C, 3, H, W) -> (R, C, H, W, 3)
    for r in range(num_rows):
        top = HEADER_HEIGHT + r * (side + GAP)
        draw.text((6, top + side // 2), row_labels[r], fill="black", font=font, anchor="lm")
        for c in range(num_cols):
            tile = Image.fromarray(tiles[r, c]).resize((side, side), resample)
            canvas.paste(tile, (LABEL_WIDTH + c * (side + GAP), top))
    return canvas


def save_grid(images: torch.Tensor, out: str | Path, corruptions: Sequence[str], preset: str, seed: int = 0,
              cell_size: int | None = None, severities: Sequence[int] = SEVERITIES, colors: int | None = None) -> Path:
    """Corrupt ``images`` (N, 3, S, S) uint8 and write the labelled grid as a PNG (atomically).

    Args:
        colors: when given, a palette PNG of that many colours (median cut, no dithering): about 3x smaller, for
            figures in the docs; None keeps every pixel exact (RGB PNG).

    Returns:
        The path written.
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"grid output must be a .png file, got {out}")
    cells = corruption_cells(images, corruptions, preset, seed, severities)
    n = images.shape[0]
    row_labels = [c if n == 1 else f"{c} #{j}" for c in corruptions for j in range(n)]
    column_labels = ["clean", *(f"severity {s}" for s in severities)]
    grid = render_grid(cells, row_labels, column_labels, cell_size)
    if colors is not None:
        if not 2 <= colors <= 256:
            raise ValueError(f"colors must be in 2..256, got {colors}")
        grid = grid.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with writing(out), atomic_write(out, "wb") as f:
        grid.save(f, format="PNG", optimize=True)
    return out
