"""The output folder of a generated set: who may write it, its ``manifest.json``, the records that vouch for every
file, and finishing it.

Every set is written under one folder with a manifest recording the byte-determining settings, the source's
fingerprint, the environment (versions and device), the requested units and each finished file with its checksum.
A folder is resumed only with the same settings and source; a folder of other files is refused before anything in
it is written or removed. One process writes a folder at a time (``.augmix.lock``); the shards of one job each hold
``.shards/K-of-N/`` and take ``.shards/manifest/`` for the short moments they change the manifest.

Trust on resume: a finished file counts only when the manifest records it with its checksum, an unfinished chunk only
when its chunk record (``.work/<unit>/chunk_<k>.sha256``, sha256sum format) lists its files with their checksums.
Files at our output paths that no record vouches for are another program's (or a person's): they are named in an
error, never adopted, never deleted. The only files removed are those the records name (chunks of an assembled
unit, a damaged recorded file) and the temp files of our own writer (``.<name>.<8 random>.tmp``) beside an output
this process is about to write.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from generation.shards import Shard
from runtime.environment import environment_record
from runtime.files import atomic_write_json, atomic_write_text, sha256_file
from runtime.locks import LOCK_NAME, FolderLockedError, folder_lock

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "augmix-robustness/generated-corruptions"
MANIFEST_VERSION = 3          # 3: "requested" units; checksum lists for MP4 folders; class names of folder sources
WORK_DIR = ".work"            # hidden folder of per-chunk files and chunk records; removed once a unit is assembled
SHARDS_DIR = ".shards"        # the lock folders of the shards of a job (K-of-N/) and of the manifest (manifest/)
CHECKSUM_DIR = "checksums"    # one sha256sum-format list per finished unit of an image tree
MANIFEST_LOCK_WAIT_S = 3600.0  # a shard waits this long for another shard's manifest update (assembly included)
# runtime.files.atomic_write names its temp file ".<target name>.<8 characters of mkstemp>.tmp"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")
# errors of the machine, not of the command: the output folder is full, read-only or not ours to write
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})


class OutputError(OSError):
    """Writing the output folder failed (disk full, read-only, permissions); ``filename`` is the path written."""


class ForeignFilesError(ValueError):
    """Files at output paths that no record of this generation vouches for (the message names them)."""

    def __init__(self, out_dir: Path, relpaths: Sequence[str]):
        more = f" and {len(relpaths) - 5} more" if len(relpaths) > 5 else ""
        super().__init__(f"{out_dir} holds {', '.join(relpaths[:5])}{more} where this generation writes, but its "
                         f"records do not list them (not written by it, or written by another version): they are "
                         "neither used nor removed. Move them out of the folder, or choose another --out.")


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise an OSError of the body as an :class:`OutputError` naming ``path`` (a failed ``write`` does not)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OutputError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc


def libjpeg_version() -> str:
    """The libjpeg(-turbo) Pillow encodes with: it decides the bytes of every JPEG of a -C tree."""
    from PIL import features

    return str(features.version("jpg") or "unknown")


def git_commit() -> str | None:
    """The commit of this checkout (suffixed ``-dirty`` with uncommitted changes), or None outside git."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def new_manifest(layout: str, settings: dict[str, Any], source: dict[str, Any], listed: str = "corruptions",
                 note: str = "", environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """A manifest for an empty output folder; generation fills ``files`` and the ``listed`` names as units finish.

    Args:
        layout: "cifar-c-npy", "imagenet-c-jpeg", "cifar-p-npy" or "imagenet-p-mp4".
        settings: everything that changes the generated bytes (preset, seed, device type, batch size, ...); a
            resumed run must present the same.
        source: dataset name, path, number of images and a fingerprint of its content or file list.
        listed: the key naming the finished units ("corruptions" or "perturbations").
        note: what the set is (and is not) for a reader of the folder.
        environment: versions and device (runtime.environment.environment_record); default the CPU's record.
    """
    now = utc_now()
    return {
        "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
        "generated": True, "released": False, "note": note,
        "layout": layout, "source": source, "settings": settings,
        listed: [], "complete": False, "files": {},
        "environment": environment or environment_record("cpu", libjpeg=libjpeg_version()),
        "git_commit": git_commit(), "created": now, "updated": now,
    }


def load_manifest(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of ``out_dir``, None if there is none; a corrupt one raises ValueError naming the file."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable JSON manifest ({exc}); move it away to start afresh") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a generation manifest (format {manifest.get('format')!r}, "
                         f"expected {MANIFEST_FORMAT!r}); choose another --out")
    return manifest


def save_manifest(out_dir: str | os.PathLike, manifest: dict[str, Any]) -> None:
    manifest["updated"] = utc_now()
    path = Path(out_dir) / MANIFEST_NAME
    with writing(path):
        atomic_write_json(path, manifest)


def npy_file_entry(sha256: str, size: int, shape: tuple[int, ...], dtype: np.dtype, **extra: Any) -> dict:
    return {"sha256": sha256, "bytes": int(size), "shape": [int(s) for s in shape], "dtype": np.dtype(dtype).name,
            **extra}


def refuse_foreign_folder(out_dir: Path) -> None:
    """Refuse, before anything is created, locked or removed there, an ``--out`` that is a file or a non-empty
    folder without our manifest (a folder holding only our lock files counts as ours)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputError(errno.ENOTDIR, "not a directory", str(out_dir))
    if (out_dir / MANIFEST_NAME).exists():
        load_manifest(out_dir)  # a foreign or broken manifest.json is refused here
        return
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in (LOCK_NAME, SHARDS_DIR))
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise ValueError(f"output folder {out_dir} already holds {', '.join(foreign[:5])}{more} but no "
                         f"{MANIFEST_NAME}; refusing to mix a generated set into it (nothing was changed). "
                         "Choose an empty or new --out.")


class OutputFolder:
    """The output folder of one generation (or of one shard of it): its locks and its manifest.

    ``claim()`` holds the folder for the run: the whole folder (``.augmix.lock``) for a single process, or the shard's
    own ``.shards/K-of-N/`` for shard K of N (the shards of one job run at once into one folder). ``editing()`` is the
    only way to change the manifest: it re-reads it, and for a shard holds ``.shards/manifest/`` meanwhile.
    """

    def __init__(self, out_dir: str | os.PathLike, shard: Shard | None = None,
                 wait_s: float = MANIFEST_LOCK_WAIT_S):
        self.out_dir, self.shard, self.wait_s = Path(out_dir), shard or Shard(), wait_s
        self.manifest: dict[str, Any] | None = None

    @contextlib.contextmanager
    def claim(self) -> Iterator[OutputFolder]:
        refuse_foreign_folder(self.out_dir)  # first: a folder of other files gets no lock file, no removal
        with writing(self.out_dir):
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=self.out_dir).close()  # writable now, not after an hour of work
            except OSError as exc:
                raise OutputError(exc.errno or errno.EIO, f"cannot write to output folder ({exc.strerror or exc})",
                                  str(self.out_dir)) from exc
        if self.shard.whole:
            with folder_lock(self.out_dir, "output folder"):
                refuse_foreign_folder(self.out_dir)  # again, now that no other generation can change it
                self._refuse_live_shards()
                yield self
            self._prune_shard_folders()
            return
        with folder_lock(self.out_dir / SHARDS_DIR / self.shard.label, f"shard {self.shard} of output folder"):
            with self._manifest_lock():
                with folder_lock(self.out_dir, "output folder"):
                    pass  # no single-process generation or --finalize is running there
            yield self

    def _refuse_live_shards(self) -> None:
        """A single process (or --finalize) must not run beside live shards: each shard's lock is taken and
        released (a live one is refused with its holder named; a stale one is taken over)."""
        shards = self.out_dir / SHARDS_DIR
        if shards.is_dir():
            for folder in sorted(shards.iterdir()):
                if (folder / LOCK_NAME).exists():
                    with folder_lock(folder, f"output folder {self.out_dir} (shard lock {folder.name})"):
                        pass

    def _prune_shard_folders(self) -> None:
        shards = self.out_dir / SHARDS_DIR
        if shards.is_dir():
            for folder in shards.iterdir():
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            if not any(shards.iterdir()):
                shards.rmdir()

    @contextlib.contextmanager
    def _manifest_lock(self) -> Iterator[None]:
        if self.shard.whole:
            yield
            return
        deadline = time.monotonic() + self.wait_s
        with contextlib.ExitStack() as stack:
            while True:  # another shard is updating the manifest (or assembling a file): wait for it
                try:
                    stack.enter_context(folder_lock(self.out_dir / SHARDS_DIR / "manifest",
                                                    f"manifest of output folder {self.out_dir}"))
                    break
                except FolderLockedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield

    @contextlib.contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        """The manifest as on disk, to change in the body; saved on a clean exit."""
        with self._manifest_lock():
            manifest = load_manifest(self.out_dir)
            if manifest is None:
                raise ValueError(f"{self.out_dir / MANIFEST_NAME} is missing: the output folder was changed by "
                                 "another program during the generation")
            yield manifest
            save_manifest(self.out_dir, manifest)
            self.manifest = manifest

    @contextlib.contextmanager
    def opening(self, layout: str, settings: dict[str, Any], source: dict[str, Any], listed: str, note: str,
                environment: dict[str, Any], requested: Sequence[str]) -> Iterator[dict[str, Any]]:
        """:meth:`editing` of a new or resumed folder: a new one gets a fresh manifest (:func:`new_manifest`); one
        whose manifest records other byte-determining ``settings`` or another source fingerprint is an error naming
        the differences. ``requested`` (the units this run is asked for) is recorded; the shards of one job must
        all ask for the same units."""
        with self._manifest_lock():
            settings = json.loads(json.dumps(settings))  # as the manifest stores them (tuples -> lists)
            manifest = load_manifest(self.out_dir)
            if manifest is None:
                refuse_foreign_folder(self.out_dir)
                manifest = new_manifest(layout, settings, source, listed, note, environment)
                manifest["requested"] = list(requested)
            else:
                check_resume(self.out_dir, manifest, layout, settings, source)
                if self.shard.whole or "requested" not in manifest:
                    manifest["requested"] = list(requested)
                elif manifest["requested"] != list(requested):
                    raise ValueError(f"{self.out_dir / MANIFEST_NAME} was started for {listed} "
                                     f"{', '.join(manifest['requested'])}; shard {self.shard} asks for "
                                     f"{', '.join(requested)}. Every shard of a job needs the same selection.")
            remove_own_temps(self.out_dir, [MANIFEST_NAME])
            yield manifest
            save_manifest(self.out_dir, manifest)
            self.manifest = manifest


def check_resume(out_dir: Path, manifest: dict[str, Any], layout: str, settings: dict[str, Any],
                 source: dict[str, Any]) -> None:
    """Refuse to resume a folder started with other byte-determining settings or another source."""
    recorded = manifest.get("settings", {})
    differing = [k for k in settings if recorded.get(k) != settings[k]]
    if manifest.get("layout") != layout and "layout" not in differing:
        differing.append("layout")
    if manifest.get("source", {}).get("fingerprint") != source["fingerprint"]:
        differing.append("source (images or file list)")
    if differing:
        raise ValueError(f"{out_dir / MANIFEST_NAME} was started with other settings: {', '.join(differing)} "
                         f"(recorded { {k: recorded.get(k) for k in differing if k in settings} }, now "
                         f"{ {k: settings[k] for k in differing if k in settings} }). Resume with the same settings or "
                         "choose another --out.")


def record_file(manifest: dict[str, Any], key: str, entry: dict[str, Any]) -> None:
    """Record a finished file (or folder) under ``files[key]`` (saved when the editing block ends)."""
    manifest["files"][key] = entry


def finish_output(out_dir: Path, manifest: dict[str, Any], listed: str, done: Sequence[str]) -> None:
    """List the finished units (canonical order) under ``listed``, mark the set complete when every requested one
    is done, and remove what is left of the work folder once it holds no chunk (saved by the editing block)."""
    manifest[listed] = list(done)
    manifest["complete"] = all(name in done for name in manifest.get("requested", ()))
    prune_empty_dirs(out_dir / WORK_DIR)


def work_dir(out_dir: Path, unit: tuple) -> Path:
    """``.work/<name>[/<severity>]``: the chunk files and chunk records of a unit while it is in progress."""
    return out_dir.joinpath(WORK_DIR, *map(str, unit))


def discard_work(out_dir: Path, *unit: str | int) -> None:
    """Remove the chunk files and records of a unit (``.work/<name>[/<severity>]``) once its output is finished."""
    shutil.rmtree(work_dir(out_dir, unit), ignore_errors=True)


def prune_empty_dirs(folder: Path) -> None:
    """Remove empty folders under and including ``folder`` (the work folder once its units are assembled)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            with contextlib.suppress(OSError):  # a shard may be writing a new chunk there right now
                path.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def remove_own_temps(out_dir: Path, relpaths: Iterable[str]) -> int:
    """Delete the temp files our atomic writer left beside these outputs (``.<name>.<8 random>.tmp``, written by a
    killed run); nothing else, and only beside the given paths, which the caller is about to write."""
    wanted: dict[Path, set[str]] = defaultdict(set)
    for relpath in relpaths:
        path = out_dir / relpath
        wanted[path.parent].add(path.name)
    removed = 0
    for folder, names in wanted.items():
        try:
            entries = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _TEMP_NAME.match(entry)
            if match and match["target"] in names:
                (folder / entry).unlink(missing_ok=True)
                removed += 1
    return removed


def checksum_list_path(out_dir: str | os.PathLike, *unit: str | int) -> Path:
    """``checksums/<name>[_<severity>].sha256``: the sha256sum list of a finished unit of an image tree."""
    return Path(out_dir) / CHECKSUM_DIR / f"{'_'.join(map(str, unit))}.sha256"


def format_checksums(entries: Iterable[tuple[str, str]]) -> str:
    """``sha256sum`` text ("<hex>  <relative path>" per line) for (sha256, relative path) pairs."""
    return "".join(f"{digest}  {relpath}\n" for digest, relpath in entries)


def parse_checksums(text: str, source: str | os.PathLike = "<checksums>") -> list[tuple[str, str]]:
    """Inverse of :func:`format_checksums`; a malformed line raises ValueError naming ``source`` and the line."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, relpath = line.partition("  ")
        if not sep or len(digest) != 64 or not relpath:
            raise ValueError(f"{source}:{number}: expected '<sha256>  <path>', got {line!r}")
        entries.append((digest, relpath))
    return entries


def file_is_good(root: Path, relpath: str, digest: str, rehash: bool) -> bool:
    """Whether a recorded file is there, not empty, and (``rehash``) still has its recorded sha256."""
    path = root / relpath
    try:
        if path.stat().st_size == 0:
            return False
    except OSError:
        return False
    return not rehash or sha256_file(path) == digest


def verify_checksums(root: str | os.PathLike, entries: Sequence[tuple[str, str]], rehash: bool) -> str | None:
    """Check the files of a checksum list under ``root``; return None when fine, else the first problem.

    Without ``rehash`` only existence and a non-zero size are checked (cheap on 50,000 files: writes are
    atomic, so a present file is complete unless damaged afterwards); with ``rehash`` every digest is recomputed.
    """
    root = Path(root)
    for digest, relpath in entries:
        path = root / relpath
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{path} is missing"
        if size == 0:
            return f"{path} is empty"
        if rehash and sha256_file(path) != digest:
            return f"{path} does not match its recorded sha256"
    return None


def chunk_record_path(out_dir: Path, unit: tuple, chunk: int) -> Path:
    return work_dir(out_dir, unit) / f"chunk_{chunk:05d}.sha256"


def read_chunk_record(out_dir: Path, unit: tuple, chunk: int) -> dict[str, str]:
    """``{relative path: sha256}`` of a chunk record; empty when there is none or it is unreadable (then the chunk
    is simply redone)."""
    path = chunk_record_path(out_dir, unit, chunk)
    try:
        return {relpath: digest for digest, relpath in parse_checksums(path.read_text(), path)}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def write_chunk_record(out_dir: Path, unit: tuple, chunk: int, entries: Iterable[tuple[str, str]]) -> None:
    """Vouch for a chunk's files, (sha256, relative path) in output order: written once they are all on disk."""
    path = chunk_record_path(out_dir, unit, chunk)
    remove_own_temps(out_dir, [str(path.relative_to(out_dir))])
    with writing(path):
        atomic_write_text(path, format_checksums(entries))


def kept_summary(out_dir: str | os.PathLike) -> str:
    """What a failed run leaves for the next one: finished files and vouched-for chunks (for error messages)."""
    out_dir = Path(out_dir)
    try:
        manifest = load_manifest(out_dir)
    except ValueError:
        manifest = None
    finished = len(manifest["files"]) if manifest else 0
    chunks = sum(1 for _ in (out_dir / WORK_DIR).rglob("chunk_*.sha256")) if (out_dir / WORK_DIR).is_dir() else 0
    return f"kept {finished} finished file(s) or folder(s) and {chunks} finished chunk(s) in {out_dir}"
