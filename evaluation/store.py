"""Finished evaluation cells on disk (or in memory), saved as they complete so an interrupted run resumes where it
stopped. A cell is one (suite, corruption, severity) or (suite, perturbation, difficulty) unit of work."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from runtime.files import atomic_write, atomic_write_json


class CellStore:
    """Finished evaluation cells, saved as they complete so an interrupted run resumes without recomputing them.

    Layout: ``<folder>/<suite>/<cell>.json`` (the record and the fingerprint of what produced it) and, when the cell
    has per-sample arrays, ``<cell>.npz`` written before the JSON, so a JSON on disk always means a complete cell.
    With ``folder=None`` cells are kept in memory only.

    Args:
        folder: where cells live (``<out>/cells``), or None.
        recompute: ignore finished cells (they are overwritten as they are recomputed).
    """

    def __init__(self, folder: str | Path | None, recompute: bool = False):
        self.folder = None if folder is None else Path(folder)
        self.recompute = recompute
        self._memory: dict[tuple[str, str], tuple[dict, dict, dict]] = {}

    def load(self, suite: str, cell: str, fingerprint: Mapping) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The record and arrays of a finished cell made with this ``fingerprint``, else None."""
        if self.recompute:
            return None
        if self.folder is None:
            hit = self._memory.get((suite, cell))
            return (hit[0], hit[1]) if hit is not None and hit[2] == dict(fingerprint) else None
        path = self.folder / suite / f"{cell}.json"
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None  # cannot happen with atomic writes; recompute rather than trust it
        if saved.get("fingerprint") != json.loads(json.dumps(dict(fingerprint))):
            return None
        arrays = {}
        if saved.get("arrays"):
            with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        return saved["record"], arrays

    def save(self, suite: str, cell: str, fingerprint: Mapping, record: dict,
             arrays: Mapping[str, np.ndarray] | None = None) -> None:
        """Store one finished cell (atomically: arrays first, then the JSON that marks it complete)."""
        arrays = dict(arrays or {})
        if self.folder is None:
            self._memory[(suite, cell)] = (record, arrays, dict(fingerprint))
            return
        path = self.folder / suite / f"{cell}.json"
        if arrays:
            with atomic_write(path.with_suffix(".npz"), "wb") as f:
                np.savez(f, **arrays)
        atomic_write_json(path, {"fingerprint": dict(fingerprint), "record": record, "arrays": sorted(arrays)})
