"""The output folder and manifest of a generated set (generation/output.py)."""

from __future__ import annotations

import json

import pytest

from generation import output as O


def test_remove_stale_temps_removes_only_writer_temp_files(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".fog.npy.abc123.tmp", tmp_path / "sub" / ".x.JPEG.k9.tmp"]
    keep = [tmp_path / "fog.npy", tmp_path / "notes.tmp"]
    for path in stale + keep:
        path.write_bytes(b"1")
    assert O.remove_stale_temps(tmp_path, recursive=True) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


def test_new_manifest_marks_the_set_as_generated_with_versions(tmp_path):
    manifest = O.new_manifest("cifar-c-npy", {"seed": 0}, {"name": "cifar10", "fingerprint": "f"})
    assert manifest["generated"] is True and manifest["released"] is False
    assert manifest["format"] == O.MANIFEST_FORMAT and manifest["format_version"] == O.MANIFEST_VERSION
    assert {"torch", "numpy", "Pillow", "augmix-robustness", "libjpeg"} <= set(manifest["environment"])
    assert manifest["complete"] is False and manifest["created"]
    O.save_manifest(tmp_path, manifest)
    assert O.load_manifest(tmp_path)["settings"] == {"seed": 0}
    assert O.load_manifest(tmp_path / "nothing-here") is None


def test_load_manifest_rejects_foreign_or_broken_json(tmp_path):
    (tmp_path / O.MANIFEST_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a generation manifest"):
        O.load_manifest(tmp_path)
    (tmp_path / O.MANIFEST_NAME).write_text("{ truncated")
    with pytest.raises(ValueError, match="manifest.json is not a readable JSON"):
        O.load_manifest(tmp_path)
