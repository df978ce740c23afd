"""evaluation/store.py: finished cells come back only for the same fingerprint; a JSON on disk means a whole cell."""

from __future__ import annotations

import numpy as np

from evaluation.store import CellStore


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
