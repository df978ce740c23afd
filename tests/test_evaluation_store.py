"""evaluation/store.py: finished cells come back only for the same fingerprint; a JSON on disk means a whole cell; a
damaged cell is recomputed; an output folder holds one checkpoint's results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.store import (
    OWNER_FILE,
    CellStore,
    OutputFolderError,
    claim_output_folder,
    folder_owner,
    record_owner,
)


def test_cell_store_resumes_only_matching_cells(tmp_path):
    store = CellStore(tmp_path / "cells")
    fingerprint = {"checkpoint_sha256": "abc", "limit": None, "severity": 3, "severities": (1, 2)}
    arrays = {"confidence": np.array([0.5, 0.9], np.float32), "correct": np.array([True, False])}
    store.save("cifar10-c", "fog-3", fingerprint, {"error": 0.5}, arrays)
    record, loaded = store.load("cifar10-c", "fog-3", fingerprint)  # tuples compare equal to their JSON lists
    assert record == {"error": 0.5}
    np.testing.assert_array_equal(loaded["correct"], arrays["correct"])
    assert store.load("cifar10-c", "fog-3", {**fingerprint, "limit": 10}) is None   # made from other inputs
    assert store.load("cifar10-c", "fog-4", fingerprint) is None
    assert CellStore(tmp_path / "cells", recompute=True).load("cifar10-c", "fog-3", fingerprint) is None
    assert sorted(p.name for p in (tmp_path / "cells" / "cifar10-c").iterdir()) == ["fog-3.json", "fog-3.npz"]


def test_memory_store_keeps_cells_for_one_run_only(tmp_path):
    memory = CellStore(None)
    memory.save("s", "c", {"seed": 1}, {"error": 0.1})
    assert memory.load("s", "c", {"seed": 1}) == ({"error": 0.1}, {})
    assert memory.load("s", "c", {"seed": 2}) is None
    assert CellStore(None).load("s", "c", {"seed": 1}) is None
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_cell_without_its_json_is_not_finished(tmp_path):
    store = CellStore(tmp_path)
    store.save("s", "c", {"k": 1}, {"error": 0.2}, {"correct": np.array([True])})
    (tmp_path / "s" / "c.json").unlink()  # killed between the arrays and the JSON that marks the cell complete
    assert store.load("s", "c", {"k": 1}) is None


def test_a_damaged_cell_is_recomputed_with_a_note(tmp_path):
    store = CellStore(tmp_path)
    arrays = {"correct": np.array([True, False])}
    store.save("s", "c", {"k": 1}, {"error": 0.5}, arrays)
    npz = tmp_path / "s" / "c.npz"
    npz.write_bytes(npz.read_bytes()[:30])  # truncated arrays beside an intact JSON
    assert store.load("s", "c", {"k": 1}) is None
    assert "c.npz is damaged" in store.notes[-1] and store.notes[-1].endswith("recomputed")
    store.save("s", "c", {"k": 1}, {"error": 0.5}, arrays)
    assert store.load("s", "c", {"k": 1})[0] == {"error": 0.5}
    for garbage in ('{"fingerprint": {"k"', "[1, 2]", "\udcff"):
        (tmp_path / "s" / "c.json").write_text(garbage, errors="surrogateescape")
        assert store.load("s", "c", {"k": 1}) is None
        assert "c.json is damaged" in store.notes[-1]
    npz.unlink()
    store.save("s", "d", {"k": 1}, {"error": 0.5}, arrays)
    (tmp_path / "s" / "d.npz").unlink()
    assert store.load("s", "d", {"k": 1}) is None and "d.npz is damaged" in store.notes[-1]


def test_an_output_folder_belongs_to_one_checkpoint(tmp_path):
    out = tmp_path / "out"
    assert folder_owner(out) is None
    claim_output_folder(out, "a" * 64, "a.pt")
    assert folder_owner(out) == ("a" * 64, str(out / OWNER_FILE))
    claim_output_folder(out, "a" * 64, "a.pt")  # the same checkpoint comes back: fine
    (out / "results.json").write_text(json.dumps({"checkpoint": {"sha256": "a" * 64}}))
    (out / "cifar10-c_errors.png").write_bytes(b"png")
    (out / "mine.txt").write_text("the user's")
    CellStore(out / "cells").save("clean", "clean", {"checkpoint_sha256": "a" * 64}, {"error": 0.1})
    record_owner(out, "a" * 64, "a.pt", [out / "results.json", out / "cifar10-c_errors.png"])
    with pytest.raises(OutputFolderError, match=r"holds the results of another checkpoint .*choose a new --out, or "
                                                r"pass --overwrite"):
        claim_output_folder(out, "b" * 64, "b.pt")
    claim_output_folder(out, "b" * 64, "b.pt", check_only=True, overwrite=True)  # checks only: nothing removed
    assert (out / "results.json").is_file()
    claim_output_folder(out, "b" * 64, "b.pt", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [OWNER_FILE, "mine.txt"]  # the user's file stays
    assert folder_owner(out)[0] == "b" * 64
    legacy = tmp_path / "legacy"  # written before owner files existed: the cells say whose it is
    CellStore(legacy / "cells").save("clean", "clean", {"checkpoint_sha256": "c" * 64}, {"error": 0.1})
    assert folder_owner(legacy)[0] == "c" * 64
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        claim_output_folder(tmp_path / "file", "a" * 64, None)
