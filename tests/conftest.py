"""Shared pytest setup: the ``gpu`` marker skips without CUDA; one intra-op thread per xdist worker, or per module
with the ``single_thread`` fixture."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("AUGMIX_DATA_ROOT", str(ROOT / "tests" / ".no-data-here"))


def pytest_configure(config):
    import torch

    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # as the CLIs do: far fewer page faults for large temporaries

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)  # one thread per xdist worker: no oversubscription on small CI machines


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("single_thread")``): on a shared
    2-core machine two threads under contention made small tensor ops up to 50x slower (measured)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
