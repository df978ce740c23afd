"""Where a result came from: one record of versions and hardware, written into results, manifests and benchmarks."""

from __future__ import annotations

import os
import platform
import re
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

PACKAGE = "augmix-robustness"


def package_version() -> str:
    """This repository's version (``pyproject.toml``), else the installed distribution's, else ``"unknown"``.
    Read with a regular expression, not ``tomllib``, which Python 3.10 lacks."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        match = re.search(r'(?ms)^\[project\].*?^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"))
        if match:
            return match.group(1)
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def distribution_version(name: str) -> str | None:
    """An installed distribution's version from its metadata (no import: importing torchvision costs seconds)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown"


def environment_record(device: str | torch.device, **extra: Any) -> dict[str, Any]:
    """Versions and hardware: Python, torch, torchvision, NumPy, Pillow, this package, the device (with the GPU's
    name and CUDA version on CUDA), the CPU model, cores and torch threads. ``extra`` keys are added as given."""
    import PIL

    device = torch.device(device)
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "torchvision": distribution_version("torchvision"), "numpy": np.__version__, "Pillow": PIL.__version__,
        PACKAGE: package_version(), "device": str(device), "cpu": cpu_model(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads()}
    if device.type == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    env.update(extra)
    return env


def torch_version_tag() -> str:
    """``torch`` + its full release (``2.9.0``, not a prefix that cuts ``2.10`` to ``2.1``), for result file names."""
    return "torch" + torch.__version__.split("+")[0]
