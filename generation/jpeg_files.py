"""The ImageNet-C JPEG layout: ``<corruption>/<severity>/<wnid>/<name>.JPEG`` encoded as released (Pillow JPEG
quality 85, docs/corruptions.md §7.2) and the ``sha256sum`` lists that vouch for a finished folder."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from runtime.files import atomic_write_bytes, sha256_file

CHECKSUM_DIR = "checksums"    # one sha256sum-format list per (corruption, severity)
JPEG_QUALITY = 85             # §7.2: every ImageNet-C / 64-px image is re-encoded at quality 85 ...
JPEG_OPTIMIZE = True          # ... with optimize=True and Pillow's default 4:2:0 chroma subsampling
JPEG_SUFFIX = ".JPEG"


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of one (H, W, 3) uint8 RGB image as ImageNet-C stores it (quality 85, optimize, 4:2:0)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=JPEG_OPTIMIZE)
    return buffer.getvalue()


def write_jpeg(path: str | os.PathLike, image: np.ndarray) -> str:
    """Encode ``image`` (H, W, 3) uint8 with :func:`encode_jpeg`, write it atomically; return its sha256.

    No per-file fsync (ImageNet-C is 4.75M files): the generator syncs once before recording a finished chunk.
    """
    data = encode_jpeg(image)
    atomic_write_bytes(path, data, fsync=False)
    return hashlib.sha256(data).hexdigest()


def jpeg_relpath(corruption: str, severity: int, wnid: str, source_name: str) -> str:
    """``<corruption>/<severity>/<wnid>/<stem>.JPEG``: the released path of one image (§7.2).

    ImageNet validation files are already ``*.JPEG``; other sources keep their stem and take the JPEG suffix
    because the content is JPEG.
    """
    return f"{corruption}/{severity}/{wnid}/{Path(source_name).stem}{JPEG_SUFFIX}"


def checksum_list_path(out_dir: str | os.PathLike, corruption: str, severity: int) -> Path:
    return Path(out_dir) / CHECKSUM_DIR / f"{corruption}_{severity}.sha256"


def format_checksums(entries: Iterable[tuple[str, str]]) -> str:
    """``sha256sum`` text ("<hex>  <relative path>" per line) for (sha256, relative path) pairs."""
    return "".join(f"{digest}  {relpath}\n" for digest, relpath in entries)


def parse_checksums(text: str, source: str | os.PathLike = "<checksums>") -> list[tuple[str, str]]:
    """Inverse of :func:`format_checksums`; a malformed line raises ValueError naming ``source`` and the line."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, relpath = line.partition("  ")
        if not sep or len(digest) != 64 or not relpath:
            raise ValueError(f"{source}:{number}: expected '<sha256>  <path>', got {line!r}")
        entries.append((digest, relpath))
    return entries


def verify_checksums(root: str | os.PathLike, entries: Sequence[tuple[str, str]], rehash: bool) -> str | None:
    """Check the files of a checksum list under ``root``; return None when fine, else the first problem.

    Without ``rehash`` only existence and a non-zero size are checked (cheap on 50,000 files: writes are
    atomic, so a present file is complete unless damaged afterwards); with ``rehash`` every digest is recomputed.
    """
    root = Path(root)
    for digest, relpath in entries:
        path = root / relpath
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{path} is missing"
        if size == 0:
            return f"{path} is empty"
        if rehash and sha256_file(path) != digest:
            return f"{path} does not match its recorded sha256"
    return None
