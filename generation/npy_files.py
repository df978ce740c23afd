"""The ``.npy`` layouts (CIFAR-10/100-C ``<corruption>.npy``, CIFAR-10/100-P ``<perturbation>.npy``, ``labels.npy``)
and the chunked, resumable, shardable way both are written (docs/corruptions.md §7.1, §8.3).

A file is built from chunk files under ``.work/<unit>/`` (a unit: one severity of a corruption, or one perturbation),
each written atomically by its own seeded computation and vouched for by a chunk record with its sha256. A resumed
run keeps every chunk whose record matches, redoes the others, and streams the chunks into the final file once all
are there: at once in a single process, at the end (by the last shard to finish, or ``--finalize``) under sharding.
The manifest records a final file before it is renamed into place, so an unrecorded file at that path is never ours.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from generation.output import (
    WORK_DIR,
    ForeignFilesError,
    OutputFolder,
    discard_work,
    file_is_good,
    npy_file_entry,
    read_chunk_record,
    record_file,
    remove_own_temps,
    save_manifest,
    write_chunk_record,
    writing,
)
from generation.pipeline import chunk_rows, num_chunks, progress_bar
from generation.shards import shard_items
from runtime.files import atomic_save_npy, atomic_write, atomic_write_bytes, sha256_file


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


def assemble_npy(parts: Sequence[str | os.PathLike], path: str | os.PathLike, shape: tuple[int, ...],
                 dtype: np.dtype = np.uint8,
                 before_replace: Callable[[str, int], None] | None = None) -> tuple[str, int]:
    """Concatenate ``.npy`` parts along axis 0 into one ``.npy`` at ``path``, streaming, atomically.

    The bytes equal ``np.save(path, np.concatenate(parts))``, without holding the whole array in memory.

    Args:
        parts: ``.npy`` files whose rows, in order, make up ``shape``; same trailing shape and dtype.
        path: destination; replaced only once every byte is written and synced.
        shape: the final shape (checked against the parts).
        before_replace: called with (sha256, size) once every byte is written, before the file takes its name
            (the manifest records it then, so that a file at ``path`` is never one it does not know).

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
        if before_replace is not None:
            f.flush()
            before_replace(digest.hexdigest(), size)
    return digest.hexdigest(), size


def write_recorded(out_dir: Path, manifest: dict, key: str, data: bytes, entry: dict[str, Any]) -> None:
    """Write a small output file whose record goes into the manifest first (then an unrecorded file at ``key`` is
    never ours)."""
    record_file(manifest, key, entry)
    save_manifest(out_dir, manifest)
    remove_own_temps(out_dir, [key])
    with writing(out_dir / key):
        atomic_write_bytes(out_dir / key, data)


def write_labels(out_dir: Path, manifest: dict, labels: np.ndarray, repeats: int, **entry: Any) -> None:
    """Write ``labels.npy`` (:func:`repeated_labels`) unless the recorded one is already there."""
    expected = repeated_labels(labels, repeats)
    path, recorded = out_dir / "labels.npy", manifest["files"].get("labels.npy")
    if recorded is None and path.exists():
        raise ForeignFilesError(out_dir, ["labels.npy"])
    if recorded is None or not path.is_file() or sha256_file(path) != recorded["sha256"]:
        buffer = io.BytesIO()
        np.save(buffer, expected, allow_pickle=False)
        data = buffer.getvalue()
        write_recorded(out_dir, manifest, "labels.npy", data, npy_file_entry(
            hashlib.sha256(data).hexdigest(), len(data), expected.shape, expected.dtype, **entry))


@dataclass(frozen=True)
class NpyFile:
    """One ``<name>.npy`` of a set and the units whose chunks make it up, in file order."""

    name: str                             # "fog" -> fog.npy
    shape: tuple[int, ...]                # (S*N, H, W, 3) for -C, (N, T, H, W, 3) for -P
    units: tuple[tuple, ...]              # (("fog", 1), ("fog", 2), ...) for -C, (("translate",),) for -P
    entry: dict[str, Any] = field(default_factory=dict)  # extra fields of the manifest record (severities, frames)

    @property
    def key(self) -> str:
        return f"{self.name}.npy"


def chunk_relpath(unit: tuple, chunk: int) -> str:
    """``.work/<name>[/<severity>]/chunk_<k>.npy``: where a chunk of a unit waits for assembly."""
    return "/".join((WORK_DIR, *map(str, unit), f"chunk_{chunk:05d}.npy"))


def chunk_is_done(out_dir: Path, unit: tuple, chunk: int) -> bool:
    """Whether a chunk's record vouches for its chunk file and the file still has the recorded sha256."""
    relpath = chunk_relpath(unit, chunk)
    record = read_chunk_record(out_dir, unit, chunk)
    return set(record) == {relpath} and file_is_good(out_dir, relpath, record[relpath], rehash=True)


def check_npy_files(out_dir: Path, manifest: dict, files: Sequence[NpyFile], verify: bool) -> set[str]:
    """The finished files among ``files`` (recorded; same size, and same sha256 with ``verify``). A damaged
    recorded file is removed from the record and the folder (it is regenerated); a file the manifest does not
    record is an error (:class:`ForeignFilesError`)."""
    done, foreign = set(), []
    for file in files:
        path, recorded = out_dir / file.key, manifest["files"].get(file.key)
        if recorded is None:
            if path.exists():
                foreign.append(file.key)
            continue
        if not path.is_file():
            manifest["files"].pop(file.key)
            continue
        if path.stat().st_size == recorded["bytes"] and (not verify or sha256_file(path) == recorded["sha256"]):
            done.add(file.name)
            discard_work(out_dir, file.units[0][0])
        else:
            warnings.warn(f"{path} is damaged or incomplete; regenerating it", stacklevel=3)
            manifest["files"].pop(file.key)
            save_manifest(out_dir, manifest)
            path.unlink()
    if foreign:
        raise ForeignFilesError(out_dir, foreign)
    return done


def assemble_file(out_dir: Path, manifest: dict, file: NpyFile, chunks: int) -> list[tuple[tuple, int]]:
    """Assemble and record ``file`` when every chunk of its units is done; return the chunks still missing."""
    missing = [(unit, k) for unit in file.units for k in range(chunks) if not chunk_is_done(out_dir, unit, k)]
    if missing:
        return missing
    path = out_dir / file.key
    if path.exists():
        raise ForeignFilesError(out_dir, [file.key])
    remove_own_temps(out_dir, [file.key])

    def record(sha: str, size: int) -> None:
        record_file(manifest, file.key, npy_file_entry(sha, size, file.shape, np.uint8, **file.entry))
        save_manifest(out_dir, manifest)

    parts = [out_dir / chunk_relpath(unit, k) for unit in file.units for k in range(chunks)]
    with writing(path):
        assemble_npy(parts, path, file.shape, before_replace=record)
    discard_work(out_dir, file.units[0][0])
    return []


def finalize_npy_files(folder: OutputFolder, files: Sequence[NpyFile], chunks: int) -> list[tuple[tuple, int]]:
    """Assemble every file whose chunks are all done (the last shard, or ``--finalize``); return missing chunks."""
    missing = []
    with folder.editing() as manifest:
        for file in files:
            if file.key not in manifest["files"]:
                missing += assemble_file(folder.out_dir, manifest, file, chunks)
    return missing


def write_npy_set(folder: OutputFolder, files: Sequence[NpyFile], done: set[str], n: int, b: int,
                  make: Callable[[tuple, int], np.ndarray], progress: bool | None, desc: str, unit_name: str,
                  on_chunk: Callable[..., None] | None) -> list[tuple[tuple, int]]:
    """Write this process's chunks of the unfinished ``files`` and assemble what it can; return missing chunks.

    Args:
        done: names of the files already finished (:func:`check_npy_files`).
        n, b: items in the set and items per chunk.
        make: ``make(unit, chunk)`` computes a chunk's rows (seeded: the same bytes on every call).
        on_chunk: called as ``on_chunk(*unit, chunk)`` after each newly written chunk (tests raise from it).
    """
    out_dir, shard, chunks = folder.out_dir, folder.shard, num_chunks(n, b)
    owner = {unit: file for file in files for unit in file.units}
    mine: dict[str, list[tuple[tuple, int]]] = defaultdict(list)
    for k, unit in shard_items([u for file in files for u in file.units], chunks, shard):
        if owner[unit].name not in done:
            mine[owner[unit].name].append((unit, k))
    total = sum(len(chunk_rows(n, b, k)) for items in mine.values() for _, k in items)
    with progress_bar(progress, total, desc, unit_name) as bar:
        for file in files:
            for unit, k in sorted(mine[file.name], key=lambda item: (file.units.index(item[0]), item[1])):
                if not chunk_is_done(out_dir, unit, k):
                    relpath = chunk_relpath(unit, k)
                    remove_own_temps(out_dir, [relpath])
                    with writing(out_dir / relpath):
                        write_npy(out_dir / relpath, make(unit, k))
                    write_chunk_record(out_dir, unit, k, [(sha256_file(out_dir / relpath), relpath)])
                    if on_chunk is not None:
                        on_chunk(*unit, k)
                bar.update(len(chunk_rows(n, b, k)))
            if shard.whole and file.name not in done:
                with folder.editing() as manifest:
                    assemble_file(out_dir, manifest, file, chunks)
    return finalize_npy_files(folder, files, chunks)
