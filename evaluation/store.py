"""Finished evaluation cells on disk (or in memory), saved as they complete so an interrupted run resumes where it
stopped, and the ownership of an output folder. A cell is one (suite, corruption, severity) or (suite, perturbation,
difficulty) unit of work; its fingerprint names everything its numbers depend on (checkpoint hash, precision, what
the data files were, limit, ...), so a cell is reused only when all of that is unchanged."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from runtime.distributed import print_main
from runtime.files import atomic_write, atomic_write_json

OWNER_FILE = "evaluated-checkpoint.json"  # which checkpoint an output folder's results belong to
CELLS_DIR = "cells"
REPORT_FILES = ("results.json", "results.md")


class CellStore:
    """Finished evaluation cells, saved as they complete so an interrupted run resumes without recomputing them.

    Layout: ``<folder>/<suite>/<cell>.json`` (the record and the fingerprint of what produced it) and, when the cell
    has per-sample arrays, ``<cell>.npz`` written before the JSON, so a JSON on disk always means a complete cell.
    A damaged cell (unreadable JSON, missing or truncated arrays) is recomputed, with a note in ``notes``.
    With ``folder=None`` cells are kept in memory only.

    Args:
        folder: where cells live (``<out>/cells``), or None.
        recompute: ignore finished cells (they are overwritten as they are recomputed).
    """

    def __init__(self, folder: str | Path | None, recompute: bool = False):
        self.folder = None if folder is None else Path(folder)
        self.recompute = recompute
        self.notes: list[str] = []
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
            if not isinstance(saved, dict) or not isinstance(saved.get("record"), dict):
                raise ValueError("not a cell record")
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            return self._damaged(path, exc)
        if saved.get("fingerprint") != json.loads(json.dumps(dict(fingerprint))):
            return None
        arrays = {}
        if saved.get("arrays"):
            npz = path.with_suffix(".npz")
            try:
                with np.load(npz, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                return self._damaged(npz, exc)
            if sorted(arrays) != sorted(saved["arrays"]):
                return self._damaged(npz, ValueError(f"holds {sorted(arrays)}, expected {saved['arrays']}"))
        return saved["record"], arrays

    def _damaged(self, path: Path, exc: BaseException) -> None:
        note = f"stored cell {path} is damaged ({type(exc).__name__}: {exc}); recomputed"
        self.notes.append(note)
        print_main(f"note: {note}")
        return None

    def save(self, suite: str, cell: str, fingerprint: Mapping, record: dict,
             arrays: Mapping[str, np.ndarray] | None = None, writer: Mapping | None = None) -> None:
        """Store one finished cell (atomically: arrays first, then the JSON that marks it complete); ``writer`` (who
        computed it: rank, world size, host) is kept beside the record."""
        arrays = dict(arrays or {})
        if self.folder is None:
            self._memory[(suite, cell)] = (record, arrays, dict(fingerprint))
            return
        path = self.folder / suite / f"{cell}.json"
        if arrays:
            with atomic_write(path.with_suffix(".npz"), "wb") as f:
                np.savez(f, **arrays)
        saved = {"fingerprint": dict(fingerprint), "record": record, "arrays": sorted(arrays)}
        atomic_write_json(path, {**saved, "writer": dict(writer)} if writer else saved)


class OutputFolderError(ValueError):
    """An output folder holds another checkpoint's results (the message offers a new --out or --overwrite)."""


def folder_owner(out_dir: str | Path) -> tuple[str, str] | None:
    """(sha256, where it was read) of the checkpoint whose results ``out_dir`` holds, or None for a folder without
    evaluation results. Read from the owner file, else results.json, else any stored cell."""
    out_dir = Path(out_dir)
    candidates = [(out_dir / OWNER_FILE, ("sha256",)), (out_dir / "results.json", ("checkpoint", "sha256"))]
    cells = out_dir / CELLS_DIR
    if cells.is_dir():
        candidates += [(p, ("fingerprint", "checkpoint_sha256")) for p in sorted(cells.glob("*/*.json"))[:1]]
    for path, keys in candidates:
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_text())
            for key in keys:
                value = value[key]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            continue  # unreadable: the next witness decides
        if isinstance(value, str):
            return value, str(path)
    return None


def claim_output_folder(out_dir: str | Path, sha256: str, checkpoint_path: str | None, overwrite: bool = False,
                        check_only: bool = False) -> None:
    """Make ``out_dir`` the results folder of the checkpoint ``sha256``, never mixing two checkpoints' files.

    A folder holding another checkpoint's results is refused, unless ``overwrite``: then the files this evaluator
    writes there (results.json / .md, its plots, cells/, baseline/) are removed first; other files stay.
    ``check_only`` checks without writing anything (the plan validation calls it before any work).

    Raises:
        OutputFolderError: the folder belongs to another checkpoint and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"--out {out_dir} is a file, not a folder; choose a folder for the results")
    owner = folder_owner(out_dir) if out_dir.is_dir() else None
    if owner is not None and owner[0] != sha256:
        if not overwrite:
            raise OutputFolderError(
                f"--out {out_dir} holds the results of another checkpoint (sha256 {owner[0][:16]}..., from "
                f"{Path(owner[1]).name}), not of {checkpoint_path or 'this model'} (sha256 {sha256[:16]}...); "
                f"choose a new --out, or pass --overwrite to replace the evaluator's files there")
        if not check_only:
            remove_evaluator_files(out_dir)
    if not check_only:
        record_owner(out_dir, sha256, checkpoint_path, ())


def record_owner(out_dir: str | Path, sha256: str, checkpoint_path: str | None, written: Sequence[Path]) -> None:
    """Write the owner file: the checkpoint's sha256 and path, and every file the evaluator wrote in the folder."""
    out_dir = Path(out_dir)
    path = out_dir / OWNER_FILE
    files: list[str] = []
    try:
        previous = json.loads(path.read_text()) if path.is_file() else {}
        if previous.get("sha256") == sha256:
            files = list(previous.get("files", []))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        files = []
    for file in written:
        rel = str(Path(file).resolve().relative_to(out_dir.resolve()))
        if rel not in files:
            files.append(rel)
    atomic_write_json(path, {"sha256": sha256, "checkpoint": checkpoint_path, "files": files})


def remove_evaluator_files(out_dir: Path) -> list[str]:
    """Remove what the evaluator writes in ``out_dir`` (listed in the owner file, plus results.json / .md, the
    plots it names, cells/ and baseline/); returns the removed names. Files the evaluator does not write stay."""
    names: set[str] = set(REPORT_FILES) | {OWNER_FILE}
    try:
        names |= set(json.loads((out_dir / OWNER_FILE).read_text()).get("files", []))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        pass
    names |= {p.name for p in out_dir.glob("*_errors.png")} | {p.name for p in out_dir.glob("*_severity.png")}
    names |= {"reliability.png"}
    removed = []
    for name in sorted(names):
        path = out_dir / name
        if path.is_file() and path.resolve().parent == out_dir.resolve():
            path.unlink()
            removed.append(name)
    for folder in (CELLS_DIR, "baseline"):
        if (out_dir / folder).is_dir():
            shutil.rmtree(out_dir / folder)
            removed.append(folder + "/")
    return removed
