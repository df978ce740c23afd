"""Image-tree layouts (ImageNet-C JPEGs, ImageNet-P MP4s): one file per source image and unit, written chunk by
chunk, resumable and shardable.

A unit (one ``(corruption, severity)`` folder, or one perturbation folder) is in progress while ``.work/<unit>/``
exists; that folder is made before the unit's first file is written, and each finished chunk gets a record there
listing its files with their sha256. A finished unit is recorded in the manifest and then gets its sha256sum list
``checksums/<unit>.sha256`` (the concatenated chunk records); its chunk records are then removed.

On resume, files at a unit's output paths are trusted only through those records. In a unit in progress a file no
record lists was written by a killed run of ours and is written again; in a unit not in progress any file at an
output path is someone else's, and the run stops naming it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generation.output import (
    ForeignFilesError,
    OutputFolder,
    checksum_list_path,
    discard_work,
    file_is_good,
    format_checksums,
    parse_checksums,
    read_chunk_record,
    record_file,
    remove_own_temps,
    save_manifest,
    work_dir,
    write_chunk_record,
    writing,
)
from generation.pipeline import num_chunks, progress_bar, write_chunks
from generation.shards import shard_items
from runtime.files import atomic_write_text

Render = Callable[[tuple, int, Any, list[str]], list[Callable[[], tuple[str, str]]]]


@dataclass(frozen=True)
class TreeUnit:
    """One folder of a tree: its unit, the output path of every source image (source order) and its record."""

    unit: tuple                    # ("fog", 3) or ("translate",)
    relpaths: tuple[str, ...]      # "fog/3/<wnid>/<stem>.JPEG", ... relative to the output folder
    entry: dict[str, Any] = field(default_factory=dict)  # extra fields of the manifest record (shape, encoding)

    @property
    def key(self) -> str:
        """The manifest key: ``fog/3`` or ``translate``."""
        return "/".join(map(str, self.unit))

    def chunk(self, k: int, b: int) -> list[str]:
        return list(self.relpaths[k * b:(k + 1) * b])


def _chunk_state(out_dir: Path, unit: TreeUnit, k: int, b: int, rehash: bool) -> tuple[dict[str, str], list[str]]:
    """``(vouched-for files {relpath: sha256}, files still to write)`` of one chunk."""
    record = read_chunk_record(out_dir, unit.unit, k)
    kept = {rel: record[rel] for rel in unit.chunk(k, b)
            if rel in record and file_is_good(out_dir, rel, record[rel], rehash)}
    return kept, [rel for rel in unit.chunk(k, b) if rel not in kept]


def check_tree_units(out_dir: Path, manifest: dict, units: Sequence[TreeUnit], b: int, verify: bool) -> set[str]:
    """The finished units among ``units``; a damaged finished unit is reopened (its intact files kept, vouched for
    by chunk records made from its checksum list); files at the paths of a unit that is neither finished nor in
    progress are an error (:class:`ForeignFilesError`)."""
    done, foreign = set(), []
    for unit in units:
        entry, path = manifest["files"].get(unit.key), checksum_list_path(out_dir, *unit.unit)
        if entry is None:
            if path.exists():
                foreign.append(str(path.relative_to(out_dir)))
            elif not work_dir(out_dir, unit.unit).is_dir():
                folder = out_dir / unit.key
                if folder.exists():
                    foreign += [rel for rel in unit.relpaths if (out_dir / rel).exists()][:5]
            continue
        try:
            text = path.read_text()
            listed = parse_checksums(text, path)
            problem = None if hashlib.sha256(text.encode()).hexdigest() == entry["sha256"] else f"{path} was modified"
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            listed, problem = [], str(exc)
        if problem is None and [rel for _, rel in listed] != list(unit.relpaths):
            problem = f"{path} lists {len(listed)} files, expected {len(unit.relpaths)}"
        if problem is None:
            bad = [rel for digest, rel in listed if not file_is_good(out_dir, rel, digest, verify)]
            problem = f"{out_dir / bad[0]} is missing, empty or changed" if bad else None
        if problem is None:
            done.add(unit.key)
            discard_work(out_dir, *unit.unit)
            continue
        warnings.warn(f"{unit.key} is incomplete ({problem}); regenerating it", stacklevel=2)
        _reopen(out_dir, manifest, unit, listed if not problem.endswith("was modified") else [], b, verify)
    if foreign:
        raise ForeignFilesError(out_dir, foreign)
    return done


def _reopen(out_dir: Path, manifest: dict, unit: TreeUnit, listed: list[tuple[str, str]], b: int,
            verify: bool) -> None:
    """Turn a damaged finished unit back into a unit in progress: chunk records for its intact files (unless the
    records of the interrupted finish are still there), then the checksum list and the manifest entry go."""
    work_dir(out_dir, unit.unit).mkdir(parents=True, exist_ok=True)
    digests = dict((rel, digest) for digest, rel in listed)
    for k in range(num_chunks(len(unit.relpaths), b)):
        if read_chunk_record(out_dir, unit.unit, k):
            continue
        intact = [(digests[rel], rel) for rel in unit.chunk(k, b)
                  if rel in digests and file_is_good(out_dir, rel, digests[rel], verify)]
        if intact:
            write_chunk_record(out_dir, unit.unit, k, intact)
    checksum_list_path(out_dir, *unit.unit).unlink(missing_ok=True)
    del manifest["files"][unit.key]
    save_manifest(out_dir, manifest)


def finalize_tree_unit(out_dir: Path, manifest: dict, unit: TreeUnit, b: int, classes: Iterable[str]) -> list[int]:
    """Record ``unit`` and write its checksum list when every chunk is vouched for; return the chunks missing."""
    n = len(unit.relpaths)
    records = [read_chunk_record(out_dir, unit.unit, k) for k in range(num_chunks(n, b))]
    missing = [k for k, record in enumerate(records) if set(record) != set(unit.chunk(k, b))]
    if missing:
        return missing
    path = checksum_list_path(out_dir, *unit.unit)
    if path.exists():
        raise ForeignFilesError(out_dir, [str(path.relative_to(out_dir))])
    text = "".join(format_checksums((record[rel], rel) for rel in unit.chunk(k, b)) for k, record in enumerate(records))
    record_file(manifest, unit.key, {"files": n, "checksums": str(path.relative_to(out_dir)),
                                     "sha256": hashlib.sha256(text.encode()).hexdigest(), **unit.entry})
    save_manifest(out_dir, manifest)  # recorded before the list exists: an unrecorded list is never ours
    remove_own_temps(out_dir, [str(path.relative_to(out_dir))])
    with writing(path):
        atomic_write_text(path, text)
    for wnid in classes:  # every class folder, even one that --limit left empty: readers index labels by folder
        (out_dir / unit.key / wnid).mkdir(parents=True, exist_ok=True)
    discard_work(out_dir, *unit.unit)
    return []


def finalize_tree(folder: OutputFolder, units: Sequence[TreeUnit], b: int,
                  classes: Sequence[str]) -> list[tuple[tuple, int]]:
    """Finish every unit whose chunks are all there (the last shard, or ``--finalize``); return missing chunks."""
    missing = []
    with folder.editing() as manifest:
        for unit in units:
            if unit.key not in manifest["files"]:
                missing += [(unit.unit, k) for k in finalize_tree_unit(folder.out_dir, manifest, unit, b, classes)]
    return missing


def finalize_tree_from_records(folder: OutputFolder, manifest: dict, keys: Sequence[tuple], n: int, b: int,
                               entry: dict[str, Any], classes: Sequence[str]) -> list[tuple[tuple, int]]:
    """:func:`finalize_tree` without the source at hand (``--finalize``): each unit's files are those its chunk
    records list, which must hold every chunk with its number of files; return missing chunks."""
    units, missing = [], []
    for key in keys:
        if "/".join(map(str, key)) in manifest["files"]:
            continue
        relpaths, gaps = [], []
        for k in range(num_chunks(n, b)):
            record = list(read_chunk_record(folder.out_dir, key, k))
            if len(record) != min(b, n - k * b):
                gaps.append(k)
            relpaths += record
        if gaps:
            missing += [(key, k) for k in gaps]
        else:
            units.append(TreeUnit(key, tuple(relpaths), entry))
    return missing + finalize_tree(folder, units, b, classes)


def write_tree(folder: OutputFolder, units: Sequence[TreeUnit], done: set[str], b: int, classes: Sequence[str],
               decode: Callable[[list[int]], Iterable[tuple[int, Any]]], render: Render, verify: bool, workers: int,
               max_pending: int, progress: bool | None, desc: str, unit_name: str,
               on_chunk: Callable[..., None] | None) -> list[tuple[tuple, int]]:
    """Write this process's chunks of the unfinished ``units`` and finish what it can; return missing chunks.

    Args:
        decode: ``decode(chunks)`` yields ``(chunk, batch)`` for the ascending chunk indices given.
        render: ``render(unit, chunk, batch, relpaths)`` returns the writes of the listed files of a chunk; each
            write returns ``(sha256, relpath)``.
        on_chunk: called as ``on_chunk(*unit, chunk)`` after each chunk's files and record are on disk.
    """
    out_dir, shard = folder.out_dir, folder.shard
    n = len(units[0].relpaths) if units else 0
    by_unit = {unit.unit: unit for unit in units}
    todo: dict[tuple, dict[int, tuple[dict[str, str], list[str]]]] = {unit.unit: {} for unit in units}
    for k, key in shard_items([unit.unit for unit in units], num_chunks(n, b), shard):
        unit = by_unit[key]
        if unit.key not in done:
            kept, missing = _chunk_state(out_dir, unit, k, b, verify)
            if missing:
                todo[key][k] = (kept, missing)

    def draw(key: tuple, k: int, batch: Any) -> list[Callable[[], tuple[str, str]]]:
        missing = todo[key][k][1]
        work_dir(out_dir, key).mkdir(parents=True, exist_ok=True)  # in progress from now on: its files are ours
        remove_own_temps(out_dir, missing)
        return render(key, k, batch, missing)

    def written(key: tuple, k: int, results: list[tuple[str, str]]) -> None:
        os.sync()  # the files skip per-file fsync (4.75M JPEGs); one flush before the record vouches for them
        digests = {**todo[key][k][0], **{rel: digest for digest, rel in results}}
        write_chunk_record(out_dir, key, k, [(digests[rel], rel) for rel in by_unit[key].chunk(k, b)])
        del todo[key][k]
        bar.update(len(results))
        if on_chunk is not None:
            on_chunk(*key, k)
        if shard.whole and not todo[key]:
            with folder.editing() as manifest:
                finalize_tree_unit(out_dir, manifest, by_unit[key], b, classes)

    needed = sorted({k for chunks in todo.values() for k in chunks})
    total = sum(len(state[1]) for chunks in todo.values() for state in chunks.values())
    if needed:
        with progress_bar(progress, total, desc, unit_name) as bar:
            write_chunks(decode(needed), {key: set(chunks) for key, chunks in todo.items()}, draw, written, workers,
                         max_pending)
    return finalize_tree(folder, units, b, classes)
