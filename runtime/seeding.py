"""Seeding and capture/restore of every RNG a run touches (Python, NumPy, torch CPU, CUDA)."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's legacy global and torch's (CPU and all CUDA devices) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (e.g. run seed, epoch, sample index), via NumPy's SeedSequence."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(2, np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


def capture_rng_state() -> dict:
    """Every global RNG state as tensors and plain Python values (safe for ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()
    state = {
        "python": _python_state_to_plain(random.getstate()),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(_plain_to_python_state(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def generator_state(generator: torch.Generator) -> torch.Tensor:
    return generator.get_state()


def _python_state_to_plain(state: tuple) -> dict:
    version, internal, gauss_next = state
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next}


def _plain_to_python_state(plain: dict) -> tuple:
    return plain["version"], tuple(int(v) for v in plain["internal"].tolist()), plain["gauss_next"]
