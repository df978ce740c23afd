"""The output folder and manifest of a generated set (generation/output.py)."""

from __future__ import annotations

import hashlib
import json

import pytest

from generation import output as O


def test_remove_own_temps_removes_only_our_writer_temps_beside_the_named_outputs(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".fog.npy.abc12_x9.tmp", tmp_path / "sub" / ".x.JPEG.k9k9k9k9.tmp"]
    keep = [tmp_path / "fog.npy", tmp_path / "notes.tmp", tmp_path / ".snow.npy.abc12_x9.tmp",  # not named
            tmp_path / ".fog.npy.short.tmp", tmp_path / "sub" / ".y.JPEG.k9k9k9k9.tmp",  # not our pattern / name
            tmp_path / "sub" / "deeper" / ".x.JPEG.k9k9k9k9.tmp"]  # another folder: never swept recursively
    for path in stale + keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"1")
    assert O.remove_own_temps(tmp_path, ["fog.npy", "sub/x.JPEG", "missing/z.npy"]) == 2
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


def test_checksum_lists_round_trip_and_verify(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.JPEG").write_bytes(b"abc")
    entries = [(hashlib.sha256(b"abc").hexdigest(), "x/a.JPEG")]
    text = O.format_checksums(entries)
    assert text == f"{entries[0][0]}  x/a.JPEG\n"  # sha256sum -c format
    assert O.parse_checksums(text) == entries
    assert O.verify_checksums(tmp_path, entries, rehash=True) is None
    (tmp_path / "x" / "a.JPEG").write_bytes(b"abd")
    assert O.verify_checksums(tmp_path, entries, rehash=False) is None  # cheap check: present, non-empty
    assert "sha256" in O.verify_checksums(tmp_path, entries, rehash=True)
    (tmp_path / "x" / "a.JPEG").unlink()
    assert "missing" in O.verify_checksums(tmp_path, entries, rehash=False)
    with pytest.raises(ValueError, match="list.sha256:2"):
        O.parse_checksums(text + "garbage\n", "list.sha256")
