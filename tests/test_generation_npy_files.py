"""The .npy layouts (generation/npy_files.py): labels.npy, streamed assembly of chunk files, truncation checks."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from generation import npy_files as N


def test_repeated_labels_repeat_the_test_labels_once_per_severity():
    labels = np.array([3, 1, 2])
    out = N.repeated_labels(labels, 5)
    # 3 test labels x 5 severity blocks = 15 entries: [3,1,2, 3,1,2, ...], uint8 as released (§7.1)
    assert out.dtype == np.uint8 and out.shape == (15,)
    assert out.tolist() == [3, 1, 2] * 5


def test_repeated_labels_switch_to_int64_above_255_classes():
    out = N.repeated_labels(np.array([0, 300]), 2)
    assert out.dtype == np.int64 and out.tolist() == [0, 300, 0, 300]
    with pytest.raises(ValueError, match="1-D"):
        N.repeated_labels(np.zeros((2, 2), int), 5)


def test_assemble_npy_streams_the_same_bytes_as_np_save(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for n in (3, 3, 1)]
    parts = []
    for i, block in enumerate(blocks):
        N.write_npy(tmp_path / f"part{i}.npy", block)
        parts.append(tmp_path / f"part{i}.npy")
    sha, size = N.assemble_npy(parts, tmp_path / "all.npy", (7, 4, 4, 3))
    expected = io.BytesIO()
    np.save(expected, np.concatenate(blocks))
    data = (tmp_path / "all.npy").read_bytes()
    assert data == expected.getvalue()
    assert sha == hashlib.sha256(data).hexdigest() and size == len(data)
    assert np.load(tmp_path / "all.npy", mmap_mode="r").shape == (7, 4, 4, 3)


def test_assemble_npy_rejects_parts_that_do_not_fit_and_writes_nothing(tmp_path):
    N.write_npy(tmp_path / "a.npy", np.zeros((2, 4, 4, 3), np.uint8))
    N.write_npy(tmp_path / "b.npy", np.zeros((2, 5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="expected 5 rows|hold 2 rows"):
        N.assemble_npy([tmp_path / "a.npy"], tmp_path / "out.npy", (5, 4, 4, 3))
    with pytest.raises(ValueError, match="b.npy"):
        N.assemble_npy([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "out.npy", (4, 4, 4, 3))
    assert not (tmp_path / "out.npy").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_npy_is_complete_detects_truncation_and_wrong_shape(tmp_path):
    path = tmp_path / "chunk.npy"
    N.write_npy(path, np.ones((4, 8, 8, 3), np.uint8))
    assert N.npy_is_complete(path, (4, 8, 8, 3))
    assert not N.npy_is_complete(path, (5, 8, 8, 3))
    assert not N.npy_is_complete(path, (4, 8, 8, 3), np.int64)
    data = path.read_bytes()
    path.write_bytes(data[:-1])  # one byte short: header intact, body truncated
    assert not N.npy_is_complete(path, (4, 8, 8, 3))
    path.write_bytes(data[:40])  # header cut
    assert not N.npy_is_complete(path, (4, 8, 8, 3))
    assert not N.npy_is_complete(tmp_path / "missing.npy", (4, 8, 8, 3))
