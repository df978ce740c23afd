"""The ImageNet-C JPEG layout (generation/jpeg_files.py): the released encoding and paths."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, JpegImagePlugin

from generation import jpeg_files as J


def test_encode_jpeg_is_quality_85_with_420_subsampling_and_deterministic():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    data = J.encode_jpeg(image)
    assert data == J.encode_jpeg(image)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "JPEG" and decoded.size == (48, 32) and decoded.mode == "RGB"
    assert JpegImagePlugin.get_sampling(decoded) == 2  # Pillow's code for 4:2:0
    reference = io.BytesIO()
    Image.fromarray(image).save(reference, format="JPEG", quality=85)
    assert decoded.quantization == Image.open(reference).quantization  # the q85 tables
    unoptimised = reference.getvalue()
    assert len(data) <= len(unoptimised)  # optimize=True: Huffman tables fitted to the image


def test_write_jpeg_returns_the_sha256_of_the_file(tmp_path):
    image = np.full((8, 8, 3), 100, np.uint8)
    path = tmp_path / "a" / "b.JPEG"
    digest = J.write_jpeg(path, image)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_jpeg_relpath_is_the_released_layout():
    assert J.jpeg_relpath("fog", 3, "n01440764", "ILSVRC2012_val_00000293.JPEG") == \
        "fog/3/n01440764/ILSVRC2012_val_00000293.JPEG"
    assert J.jpeg_relpath("fog", 1, "cat", "photo.png") == "fog/1/cat/photo.JPEG"

