"""Full-state checkpoints: one dict, written atomically, loaded with ``weights_only=True``.

Holds what rebuilds the model (constructor arguments, normalisation, dataset) and everything a bit-identical
resume needs: optimizer, scheduler, grad scaler, epoch and step counters, every RNG state, the resolved config.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from models.weights import FORMAT_VERSION
from runtime.files import atomic_torch_save

CHECKPOINT_KIND = "augmix-robustness"


def save_checkpoint(path: str | Path, **state: Any) -> None:
    """Write ``state`` (the model fields of ``models.weights.checkpoint_model_fields`` plus the training state)
    to ``path`` through a temp file and ``os.replace``."""
    atomic_torch_save({"kind": CHECKPOINT_KIND, "format_version": FORMAT_VERSION, **state}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one of our checkpoints safely (no code execution) and check its format version.

    Raises:
        FileNotFoundError / ValueError: naming the file and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path} is not a readable checkpoint (truncated, or not a torch file, or it holds "
                         f"objects other than tensors and plain containers): {exc}") from exc
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not a training checkpoint of this project (no kind={CHECKPOINT_KIND!r}); "
                         f"to evaluate other weights use evaluate.py, which imports official formats")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state.get('format_version')} is not supported "
                         f"(this code reads format {FORMAT_VERSION})")
    return state


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over a state_dict's names, dtypes, shapes and bytes: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
