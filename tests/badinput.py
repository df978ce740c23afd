"""Machinery of the bad-input table (tests/test_bad_inputs.py): rows, a workspace, an in-process CLI runner.

A row is one command line or file fault: what to prepare, the command, the exit code and a fragment of the message
it must print, and which files may change. Every file that exists before the command must come through with the
same bytes (unless a row names it), and no new file may appear outside the row's ``creates`` patterns: a refused
command loses nothing and leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIS = ("train", "evaluate", "generate")

EXIT_USAGE = 2        # usage or data: the user can fix the command or the files
EXIT_ENVIRONMENT = 1  # environment: no GPU, disk full, read-only folder


class SharedArtifacts:
    """Artifacts built once per test session (a tiny checkpoint, a tiny dataset) by the builders that row modules
    declare in ``SHARED = {name: build(folder) -> path}``; each is built on first use, in its own folder."""

    def __init__(self, folder: Path, builders: dict[str, Callable[[Path], Path]]):
        self.folder, self.builders, self.built = folder, builders, {}

    def __getitem__(self, key: str) -> Path:
        if key not in self.built:
            target = self.folder / key
            target.mkdir(parents=True, exist_ok=True)
            self.built[key] = self.builders[key](target)
        return self.built[key]


@dataclass
class Workspace:
    """One row's scratch folder (``root``) and the session's shared, read-only artifacts (``shared``)."""
    root: Path
    shared: SharedArtifacts | dict[str, Path] = field(default_factory=dict)

    def path(self, relative: str) -> Path:
        return self.root / relative


@dataclass(frozen=True)
class Row:
    id: str                                     # unique, short: "train-negative-val-size"
    covers: str                                 # what behaviour it pins (an issue item, a promise)
    cli: str                                    # train | evaluate | generate
    argv: Callable[[Workspace], list[str]]      # the command line after the script name
    code: int                                   # expected exit code
    message: str                                # case-insensitive fragment of stdout + stderr
    prepare: Callable[[Workspace], None] | None = None
    creates: tuple[str, ...] = ()               # globs (relative to the workspace) that may appear or change
    subprocess: bool = False                    # run as a separate process (signals, threads, process state)
    timeout: float = 180.0


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def _chdir(path: Path):  # contextlib.chdir needs Python 3.11
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _load_cli(name: str):
    spec = importlib.util.spec_from_file_location(f"_cli_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(name: str, argv: list[str], cwd: Path, in_subprocess: bool = False,
            timeout: float = 180.0) -> tuple[int, str]:
    """Run ``python <name>.py argv`` from ``cwd``; return (exit code, stdout + stderr). In-process by default: the
    CLI's ``main(get_args_parser().parse_args(argv))``, with argparse's exits caught. An exception that escapes
    ``main`` is a traceback, which no bad input may produce: it is returned as code -1 with the traceback."""
    assert name in CLIS, name
    if in_subprocess:
        proc = subprocess.run([sys.executable, str(ROOT / f"{name}.py"), *argv], cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
        code = proc.returncode if "Traceback (most recent call last)" not in proc.stderr else -1
        return code, proc.stdout + proc.stderr
    module = _load_cli(name)
    out, err = io.StringIO(), io.StringIO()
    with _chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = module.main(module.get_args_parser().parse_args(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except Exception:  # reported, not swallowed: the row fails with the traceback in its message
            import traceback

            code = -1
            err.write(traceback.format_exc())
    return int(code or 0), out.getvalue() + err.getvalue()


def check_row(row: Row, ws: Workspace) -> None:
    """Prepare, snapshot, run, and assert code, message and untouched files."""
    ws.root.mkdir(parents=True, exist_ok=True)
    if row.prepare is not None:
        row.prepare(ws)
    before = snapshot(ws.root)
    code, output = run_cli(row.cli, row.argv(ws), ws.root, row.subprocess, row.timeout)
    tail = output[-3000:]
    assert code == row.code, f"{row.id}: exit {code}, expected {row.code}; output:\n{tail}"
    assert row.message.lower() in output.lower(), f"{row.id}: message lacks {row.message!r}; output:\n{tail}"
    after = snapshot(ws.root)

    def allowed(rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, pattern) for pattern in row.creates)

    changed = [rel for rel, digest in before.items() if after.get(rel) != digest and not allowed(rel)]
    assert not changed, f"{row.id}: files changed or removed: {changed}"
    new = [rel for rel in after if rel not in before and not allowed(rel)]
    assert not new, f"{row.id}: files left behind: {new}"


def copy_shared(ws: Workspace, key: str, relative: str) -> Path:
    """Copy a shared artifact (file or folder) into the workspace; returns the copy's path."""
    src, dst = ws.shared[key], ws.root / relative
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    return dst
