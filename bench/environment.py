"""What every benchmark records about where it ran (device, CPU model, threads, versions, load)."""

from __future__ import annotations

import os
import platform

import numpy as np
import torch


def environment(device: torch.device, peer: str) -> dict:
    """Device, CPU model, cores, torch threads, torch/CUDA/NumPy versions, the 1-minute load at the start, the GPU
    name on CUDA, and ``peer`` (what ours is compared with)."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    env = {"device": str(device), "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "numpy": np.__version__,
           "load_avg_start": os.getloadavg()[0], "peer": peer}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
