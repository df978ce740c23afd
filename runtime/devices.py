"""Device names from the command line or a config, resolved once for every door (train, evaluate, generate)."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device that does not exist or is not available here (the message names the value and the option)."""


def resolve_device(name: str | None, option: str = "--device") -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else the CPU. Anything else must be a torch device this machine
    has; ``option`` names the flag or config key in the error (``--device``, ``train.device``)."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"{option}={name!r} is not a torch device (expected auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{option}={name} but CUDA is not available on this machine; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{option}={name} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps"):
        raise DeviceError(f"{option}={name!r}: only cpu and cuda devices are supported (expected auto, cpu, cuda[:N])")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{option}={name} but MPS is not available on this machine; use cpu or auto")
    return device
