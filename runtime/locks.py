"""One writer per output folder: a lock file naming the process that holds it, with stale-lock detection.

A training run, an evaluation output folder or a generated dataset is written by one process at a time. The lock
is a small JSON file (``.augmix.lock``) created with ``O_EXCL``; it records the host, the process id, the
process's start time and the command. A lock whose process is gone (same host, and the pid is not running or was
reused by a later process) is stale and taken over, with a note; a live one is refused with a message that names
the holder. It works on network file systems, where ``flock`` often does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".augmix.lock"


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock (the message names it)."""


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    now = _process_start(pid)
    return start is None or now is None or now == start


def _record() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)[:500]}


def describe(holder: dict) -> str:
    return (f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')}: "
            f"{holder.get('command') or '?'})")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold ``folder``'s lock for the body (the folder is created if needed); release it on exit.

    Raises:
        FolderLockedError: a live process (or one on another host, which cannot be checked) holds it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    record = _record()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:  # being written right now, or unreadable: look again shortly
                time.sleep(0.05)
                holder = _read(path)
            if holder is not None and _held(holder):
                raise FolderLockedError(
                    f"{what} {folder} is in use by {describe(holder)}; wait for it to finish, or use another "
                    f"folder (if that process is surely gone, delete {path})") from None
            if holder is not None:
                print(f"note: taking over the stale lock of {describe(holder)} on {folder}", file=sys.stderr)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        break
    else:
        raise FolderLockedError(f"could not take the lock {path}: another process keeps taking it")
    try:
        yield folder
    finally:
        holder = _read(path)
        if holder is not None and holder.get("pid") == record["pid"] and holder.get("host") == record["host"]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _held(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot check a process on another machine: assume it is alive
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return isinstance(pid, int)  # our own earlier lock (same process) counts as held: nested use is a bug
    return _alive(pid, holder.get("start"))
