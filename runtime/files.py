"""Atomic file writes (temp file in the same folder, fsync, ``os.replace``) and the data root.

A reader never sees a half-written checkpoint, result file or dataset shard: either the old file or
the complete new one is at the path.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DATA_ROOT_ENV = "AUGMIX_DATA_ROOT"
DEFAULT_DATA_ROOT = "./data"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder that holds datasets: ``explicit`` if given, else ``$AUGMIX_DATA_ROOT``, else ``./data``."""
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get(DATA_ROOT_ENV, DEFAULT_DATA_ROOT)).expanduser()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", fsync: bool = True) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on a clean exit (fsync it and) rename it over ``path``.

    On an exception the temp file is removed and ``path`` is left as it was. The file gets the usual
    permissions (0666 minus the umask), not mkstemp's private 0600. ``fsync=False`` skips the flush to disk for
    bulk data (millions of small files) where a crash may lose recent files but never leaves a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    with atomic_write(path, "wb", fsync=fsync) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file and ``os.replace``."""
    import torch  # local: runtime stays importable without torch for tiny tools

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_save_npy(path: str | os.PathLike, array: Any) -> None:
    """``numpy.save`` through a temp file and ``os.replace``."""
    import numpy as np

    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
