"""runtime/locks.py: one writer per folder, the holder named, stale locks taken over, nothing else touched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.locks import LOCK_NAME, FolderLockedError, folder_lock

ROOT = Path(__file__).resolve().parents[1]


def test_second_process_is_refused_with_the_holder_named(tmp_path):
    with folder_lock(tmp_path, "run folder"):
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r})\nfrom runtime.locks import folder_lock\n" \
               f"with folder_lock({str(tmp_path)!r}, 'run folder'): pass"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0
        assert f"process {os.getpid()}" in proc.stderr and "in use" in proc.stderr
    assert not (tmp_path / LOCK_NAME).exists()  # released on exit


def test_lock_is_released_when_the_body_raises(tmp_path):
    with pytest.raises(KeyError), folder_lock(tmp_path):
        raise KeyError("boom")
    with folder_lock(tmp_path):
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "start": "0",
                                                  "since": "earlier", "command": "train.py"}))
    (tmp_path / "metrics.jsonl").write_text("kept\n")
    with folder_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "stale lock" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl").read_text() == "kept\n"


def test_lock_from_another_host_is_respected(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "some-other-node", "pid": 1, "since": "earlier"}))
    with pytest.raises(FolderLockedError, match="some-other-node"), folder_lock(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).exists()  # not ours to remove
