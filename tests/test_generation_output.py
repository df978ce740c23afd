"""Released-format writers and the manifest helpers of corruptions/writers.py."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from corruptions import writers as W


def test_cifar_c_labels_repeat_the_test_labels_once_per_severity():
    labels = np.array([3, 1, 2])
    out = W.cifar_c_labels(labels, 5)
    # 3 test labels x 5 severity blocks = 15 entries: [3,1,2, 3,1,2, ...], uint8 as released (§7.1)
    assert out.dtype == np.uint8 and out.shape == (15,)
    assert out.tolist() == [3, 1, 2] * 5


def test_cifar_c_labels_switch_to_int64_above_255_classes():
    out = W.cifar_c_labels(np.array([0, 300]), 2)
    assert out.dtype == np.int64 and out.tolist() == [0, 300, 0, 300]
    with pytest.raises(ValueError, match="1-D"):
        W.cifar_c_labels(np.zeros((2, 2), int), 5)


def test_assemble_npy_streams_the_same_bytes_as_np_save(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for n in (3, 3, 1)]
    parts = []
    for i, block in enumerate(blocks):
        W.write_npy(tmp_path / f"part{i}.npy", block)
        parts.append(tmp_path / f"part{i}.npy")
    sha, size = W.assemble_npy(parts, tmp_path / "all.npy", (7, 4, 4, 3))
    expected = io.BytesIO()
    np.save(expected, np.concatenate(blocks))
    data = (tmp_path / "all.npy").read_bytes()
    assert data == expected.getvalue()
    assert sha == hashlib.sha256(data).hexdigest() and size == len(data)
    assert np.load(tmp_path / "all.npy", mmap_mode="r").shape == (7, 4, 4, 3)


def test_assemble_npy_rejects_parts_that_do_not_fit_and_writes_nothing(tmp_path):
    W.write_npy(tmp_path / "a.npy", np.zeros((2, 4, 4, 3), np.uint8))
    W.write_npy(tmp_path / "b.npy", np.zeros((2, 5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="expected 5 rows|hold 2 rows"):
        W.assemble_npy([tmp_path / "a.npy"], tmp_path / "out.npy", (5, 4, 4, 3))
    with pytest.raises(ValueError, match="b.npy"):
        W.assemble_npy([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "out.npy", (4, 4, 4, 3))
    assert not (tmp_path / "out.npy").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_npy_is_complete_detects_truncation_and_wrong_shape(tmp_path):
    path = tmp_path / "chunk.npy"
    W.write_npy(path, np.ones((4, 8, 8, 3), np.uint8))
    assert W.npy_is_complete(path, (4, 8, 8, 3))
    assert not W.npy_is_complete(path, (5, 8, 8, 3))
    assert not W.npy_is_complete(path, (4, 8, 8, 3), np.int64)
    data = path.read_bytes()
    path.write_bytes(data[:-1])  # one byte short: header intact, body truncated
    assert not W.npy_is_complete(path, (4, 8, 8, 3))
    path.write_bytes(data[:40])  # header cut
    assert not W.npy_is_complete(path, (4, 8, 8, 3))
    assert not W.npy_is_complete(tmp_path / "missing.npy", (4, 8, 8, 3))


def test_encode_jpeg_is_quality_85_with_420_subsampling_and_deterministic():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    data = W.encode_jpeg(image)
    assert data == W.encode_jpeg(image)
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
    digest = W.write_jpeg(path, image)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_jpeg_relpath_is_the_released_layout():
    assert W.jpeg_relpath("fog", 3, "n01440764", "ILSVRC2012_val_00000293.JPEG") == \
        "fog/3/n01440764/ILSVRC2012_val_00000293.JPEG"
    assert W.jpeg_relpath("fog", 1, "cat", "photo.png") == "fog/1/cat/photo.JPEG"


def test_checksum_lists_round_trip_and_verify(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.JPEG").write_bytes(b"abc")
    entries = [(hashlib.sha256(b"abc").hexdigest(), "x/a.JPEG")]
    text = W.format_checksums(entries)
    assert text == f"{entries[0][0]}  x/a.JPEG\n"  # sha256sum -c format
    assert W.parse_checksums(text) == entries
    assert W.verify_checksums(tmp_path, entries, rehash=True) is None
    (tmp_path / "x" / "a.JPEG").write_bytes(b"abd")
    assert W.verify_checksums(tmp_path, entries, rehash=False) is None  # cheap check: present, non-empty
    assert "sha256" in W.verify_checksums(tmp_path, entries, rehash=True)
    (tmp_path / "x" / "a.JPEG").unlink()
    assert "missing" in W.verify_checksums(tmp_path, entries, rehash=False)
    with pytest.raises(ValueError, match="list.sha256:2"):
        W.parse_checksums(text + "garbage\n", "list.sha256")


def test_remove_stale_temps_removes_only_writer_temp_files(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".fog.npy.abc123.tmp", tmp_path / "sub" / ".x.JPEG.k9.tmp"]
    keep = [tmp_path / "fog.npy", tmp_path / "notes.tmp"]
    for path in stale + keep:
        path.write_bytes(b"1")
    assert W.remove_stale_temps(tmp_path, recursive=True) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


def test_new_manifest_marks_the_set_as_generated_with_versions(tmp_path):
    manifest = W.new_manifest("cifar-c-npy", {"seed": 0}, {"name": "cifar10", "fingerprint": "f"})
    assert manifest["generated"] is True and manifest["released"] is False
    assert manifest["format"] == W.MANIFEST_FORMAT and manifest["format_version"] == W.MANIFEST_VERSION
    assert {"torch", "numpy", "Pillow", "augmix-robustness", "libjpeg"} <= set(manifest["versions"])
    assert manifest["complete"] is False and manifest["created"]
    W.save_manifest(tmp_path, manifest)
    assert W.load_manifest(tmp_path)["settings"] == {"seed": 0}
    assert W.load_manifest(tmp_path / "nothing-here") is None


def test_load_manifest_rejects_foreign_or_broken_json(tmp_path):
    (tmp_path / W.MANIFEST_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a generation manifest"):
        W.load_manifest(tmp_path)
    (tmp_path / W.MANIFEST_NAME).write_text("{ truncated")
    with pytest.raises(ValueError, match="manifest.json is not a readable JSON"):
        W.load_manifest(tmp_path)
