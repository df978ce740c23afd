"""The bad-input table: every row is a mistake or a fault a user makes, the exit code and message it must get, and
the proof that it lost nothing (tests/badinput.py). Rows live in tests/bad_inputs_<door>.py, one list per door;
the count of handled inputs is the number of collected cases and only grows."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.badinput import Row, SharedArtifacts, Workspace, check_row

HERE = Path(__file__).resolve().parent
ROW_MODULES = sorted(p.stem for p in HERE.glob("bad_inputs_*.py"))


MODULES = [importlib.import_module(f"tests.{name}") for name in ROW_MODULES]
ROWS: list[Row] = [row for module in MODULES for row in module.ROWS]
BUILDERS = {key: build for module in MODULES for key, build in getattr(module, "SHARED", {}).items()}


@pytest.fixture(scope="session")
def bad_input_shared(tmp_path_factory) -> SharedArtifacts:
    return SharedArtifacts(tmp_path_factory.mktemp("bad-input-shared"), BUILDERS)


def test_row_ids_are_unique():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input(row: Row, tmp_path: Path, bad_input_shared: SharedArtifacts):
    check_row(row, Workspace(root=tmp_path / "ws", shared=bad_input_shared))
