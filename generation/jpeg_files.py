"""The ImageNet-C JPEG layout: ``<corruption>/<severity>/<wnid>/<name>.JPEG`` encoded as released (Pillow JPEG
quality 85, docs/corruptions.md §7.2)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from generation.output import writing
from runtime.files import atomic_write_bytes

JPEG_QUALITY = 85             # §7.2: every ImageNet-C / 64-px image is re-encoded at quality 85 ...
JPEG_OPTIMIZE = True          # ... with optimize=True and Pillow's default 4:2:0 chroma subsampling
JPEG_SUFFIX = ".JPEG"


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of one (H, W, 3) uint8 RGB image as ImageNet-C stores it (quality 85, optimize, 4:2:0)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=JPEG_OPTIMIZE)
    return buffer.getvalue()


def write_listed_jpeg(out_dir: Path, relpath: str, image: np.ndarray) -> tuple[str, str]:
    """Write one JPEG of a tree; return its checksum-list entry (sha256, relative path)."""
    return write_jpeg(out_dir / relpath, image), relpath


def write_jpeg(path: str | os.PathLike, image: np.ndarray) -> str:
    """Encode ``image`` (H, W, 3) uint8 with :func:`encode_jpeg`, write it atomically; return its sha256.

    No per-file fsync (ImageNet-C is 4.75M files): the generator syncs once before recording a finished chunk.
    """
    data = encode_jpeg(image)
    with writing(path):
        atomic_write_bytes(path, data, fsync=False)
    return hashlib.sha256(data).hexdigest()


def jpeg_relpath(corruption: str, severity: int, wnid: str, source_name: str) -> str:
    """``<corruption>/<severity>/<wnid>/<stem>.JPEG``: the released path of one image (§7.2).

    ImageNet validation files are already ``*.JPEG``; other sources keep their stem and take the JPEG suffix
    because the content is JPEG.
    """
    return f"{corruption}/{severity}/{wnid}/{Path(source_name).stem}{JPEG_SUFFIX}"
