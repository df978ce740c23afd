"""The ``.npy`` layouts (CIFAR-10/100-C ``<corruption>.npy``, CIFAR-10/100-P ``<perturbation>.npy``, ``labels.npy``)
and the chunked, resumable way both are written (docs/corruptions.md §7.1, §8.3).

A file is built from chunk files under ``.work/<name>/``, each written atomically by its own seeded computation; a
resumed run keeps every whole chunk, redoes missing or truncated ones, and streams them into the final file.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generation.output import WORK_DIR, discard_work, npy_file_entry, record_file, save_manifest
from runtime.files import atomic_save_npy, atomic_write, sha256_file


def repeated_labels(labels: np.ndarray, repeats: int) -> np.ndarray:
    """``labels.npy`` of a set: the test labels repeated once per severity block (CIFAR-C, §7.1; once for -P).

    Args:
        labels: (N,) integer class indices in test-set order.
        repeats: number of severity blocks in the data files (5 for the released CIFAR-C layout, 1 for -P).

    Returns:
        (repeats * N,) uint8 as released; int64 when a label exceeds 255 (uint8 cannot hold it).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {labels.shape}")
    if labels.size and (labels.min() < 0):
        raise ValueError(f"labels must be non-negative class indices, got minimum {labels.min()}")
    dtype = np.uint8 if labels.size == 0 or labels.max() <= 255 else np.int64
    return np.tile(labels.astype(dtype), repeats)


def npy_is_complete(path: str | os.PathLike, shape: tuple[int, ...], dtype: np.dtype = np.uint8) -> bool:
    """Whether ``path`` is a whole ``.npy`` of ``shape`` and ``dtype``: header parses and the size matches.

    A truncated or foreign file returns False (it is then regenerated), never raises.
    """
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    complete = (array.shape == tuple(shape) and array.dtype == np.dtype(dtype)
                and path.stat().st_size == array.offset + array.nbytes)
    del array  # release the mapping before the caller may replace the file
    return complete


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` through a temp file and rename (runtime.files.atomic_save_npy)."""
    atomic_save_npy(path, np.ascontiguousarray(array))


def assemble_npy(parts: Sequence[str | os.PathLike], path: str | os.PathLike,
                 shape: tuple[int, ...], dtype: np.dtype = np.uint8) -> tuple[str, int]:
    """Concatenate ``.npy`` parts along axis 0 into one ``.npy`` at ``path``, streaming, atomically.

    The bytes equal ``np.save(path, np.concatenate(parts))``, without holding the whole array in memory.

    Args:
        parts: ``.npy`` files whose rows, in order, make up ``shape``; same trailing shape and dtype.
        path: destination; replaced only once every byte is written and synced.
        shape: the final shape (checked against the parts).

    Returns:
        (sha256 hex digest, size in bytes) of the written file.
    """
    dtype = np.dtype(dtype)
    rows = 0
    for part in parts:  # check every part before writing a byte
        array = np.load(part, mmap_mode="r", allow_pickle=False)
        if array.shape[1:] != tuple(shape[1:]) or array.dtype != dtype:
            raise ValueError(f"{part}: expected rows of shape {tuple(shape[1:])} {dtype}, got {array.shape} "
                             f"{array.dtype}")
        rows += array.shape[0]
        del array
    if rows != shape[0]:
        raise ValueError(f"the parts of {path} hold {rows} rows, expected {shape[0]}")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})
    digest = hashlib.sha256(header.getvalue())
    with atomic_write(path, "wb") as f:
        f.write(header.getvalue())
        for part in parts:
            block = np.ascontiguousarray(np.load(part, allow_pickle=False)).tobytes()  # one chunk in memory
            f.write(block)
            digest.update(block)
        size = f.tell()
    return digest.hexdigest(), size


def write_labels(out_dir: Path, manifest: dict, labels: np.ndarray, repeats: int, **entry: Any) -> None:
    """Write ``labels.npy`` (:func:`repeated_labels`) unless the recorded one is already there."""
    expected = repeated_labels(labels, repeats)
    path, recorded = out_dir / "labels.npy", manifest["files"].get("labels.npy")
    if recorded is None or not path.is_file() or sha256_file(path) != recorded["sha256"]:
        write_npy(path, expected)
        record_file(out_dir, manifest, "labels.npy", npy_file_entry(sha256_file(path), path.stat().st_size,
                                                                    expected.shape, expected.dtype, **entry))


@dataclass(frozen=True)
class NpyChunk:
    """One chunk of a ``.npy`` file: its rows come from ``make()`` and are kept at ``.work/<name>/<relpath>``."""

    relpath: str                          # e.g. "3/chunk_00002.npy" (severity 3) or "chunk_00002.npy"
    rows: int                             # leading-axis length of the chunk
    make: Callable[[], np.ndarray]        # computes the rows (seeded: the same bytes on every call)
    key: tuple                            # passed to the chunk hook once the chunk is on disk


def write_npy_file(out_dir: Path, manifest: dict, name: str, shape: tuple[int, ...], chunks: Sequence[NpyChunk],
                   verify: bool, on_rows: Callable[[int], None], on_chunk: Callable[..., None] | None,
                   **entry: Any) -> None:
    """Write (or keep, when finished) ``<name>.npy`` of ``shape`` uint8 from ``chunks`` and record it.

    Args:
        verify: re-hash a finished file against the manifest (default check: its size).
        on_rows: called with the number of rows done (kept or written), for a progress bar.
        on_chunk: called as ``on_chunk(*chunk.key)`` after each newly written chunk (tests raise from it).
        entry: extra fields of the file's manifest record (severities, frames).
    """
    if _npy_done(out_dir, manifest, name, shape, verify, entry):
        on_rows(shape[0])
        return
    parts = []
    for chunk in chunks:
        part = out_dir / WORK_DIR / name / chunk.relpath
        if not npy_is_complete(part, (chunk.rows, *shape[1:])):  # missing or truncated: (re)generate
            write_npy(part, chunk.make())
            if on_chunk is not None:
                on_chunk(*chunk.key)
        parts.append(part)
        on_rows(chunk.rows)
    sha, size = assemble_npy(parts, out_dir / f"{name}.npy", shape)
    record_file(out_dir, manifest, f"{name}.npy", npy_file_entry(sha, size, shape, np.uint8, **entry))
    discard_work(out_dir, name)


def _npy_done(out_dir: Path, manifest: dict, name: str, shape: tuple[int, ...], verify: bool,
              entry: dict[str, Any]) -> bool:
    """Whether ``<name>.npy`` is finished; a damaged file is dropped from the manifest and regenerated."""
    key = f"{name}.npy"
    path, recorded = out_dir / key, manifest["files"].get(key)
    if not path.is_file():
        manifest["files"].pop(key, None)
        return False
    if recorded is not None:
        ok = path.stat().st_size == recorded["bytes"] and (not verify or sha256_file(path) == recorded["sha256"])
    else:  # renamed into place, killed before the manifest update: accept a whole file of the right shape
        ok = npy_is_complete(path, shape)
        if ok:
            record_file(out_dir, manifest, key, npy_file_entry(sha256_file(path), path.stat().st_size, shape,
                                                               np.uint8, **entry))
    if ok:
        discard_work(out_dir, name)
    else:
        warnings.warn(f"{path} is damaged or incomplete; regenerating it", stacklevel=3)
        manifest["files"].pop(key, None)
        save_manifest(out_dir, manifest)
        path.unlink()
    return ok
