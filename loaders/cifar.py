"""CIFAR-10/100 in torchvision's on-disk format (the pickled batches of the official tarballs).

Read with a restricted unpickler that only rebuilds NumPy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR_SPLITS = {
    "cifar10": {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    "cifar100": {"train": ("train",), "test": ("test",)},
}
CIFAR_LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
CIFAR_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR batches hold only NumPy arrays")
        return super().find_class(module, name)


def _read_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        batch = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def cifar_folder(root: str | Path, name: str) -> Path:
    if name not in CIFAR_FOLDERS:
        raise ValueError(f"unknown CIFAR dataset {name!r}; valid: {', '.join(CIFAR_FOLDERS)}")
    return Path(root) / CIFAR_FOLDERS[name]


def missing_files(root: str | Path, name: str) -> list[Path]:
    folder = cifar_folder(root, name)
    files = CIFAR_SPLITS[name]["train"] + CIFAR_SPLITS[name]["test"]
    return [folder / f for f in files if not (folder / f).is_file()]


def ensure_cifar(root: str | Path, name: str, download: bool = False) -> None:
    """Check the batches are on disk; with ``download`` fetch them through torchvision first.

    Raises:
        FileNotFoundError: naming the folder and the files expected there and how to get them.
    """
    if not missing_files(root, name):
        return
    error = None
    if download:
        try:
            from torchvision import datasets

            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            cls(str(root), train=True, download=True)
        except Exception as exc:  # no network, checksum failure, ...
            error = exc
    missing = missing_files(root, name)
    if missing:
        folder = cifar_folder(root, name)
        tar = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
        reason = f" (download failed: {error})" if error else " (set data.download=true to fetch it)"
        raise FileNotFoundError(
            f"{name} not found{reason}: expected {', '.join(p.name for p in missing)} in {folder}. "
            f"Download {tar} from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into {Path(root)}, "
            f"or point data.root / $AUGMIX_DATA_ROOT at the folder that contains {folder.name}/.")


def load_cifar(root: str | Path, name: str, train: bool, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of CIFAR-10 or CIFAR-100.

    Args:
        root: folder containing ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: "cifar10" or "cifar100" (fine labels).
        train: the 50,000-image training split, else the 10,000-image test split.
        download: fetch with torchvision when files are missing (needs network).

    Returns:
        images (N, 32, 32, 3) uint8 RGB in file order, labels (N,) int64.
    """
    ensure_cifar(root, name, download)
    folder = cifar_folder(root, name)
    images, labels = [], []
    for file in CIFAR_SPLITS[name]["train" if train else "test"]:
        path = folder / file
        try:
            batch = _read_batch(path)
            data = np.asarray(batch["data"], dtype=np.uint8)
            label = np.asarray(batch[CIFAR_LABEL_KEY[name]], dtype=np.int64)
        except (KeyError, pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise ValueError(f"{path} is not a valid {name} batch: {exc}") from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(label) != len(data):
            raise ValueError(f"{path}: expected data (N, 3072) and N labels, got data {data.shape} and "
                             f"{len(label)} labels")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(label)
    labels_all = np.concatenate(labels)
    if labels_all.min() < 0 or labels_all.max() >= CIFAR_NUM_CLASSES[name]:
        raise ValueError(f"{folder}: labels outside 0..{CIFAR_NUM_CLASSES[name] - 1}")
    return np.ascontiguousarray(np.concatenate(images)), labels_all
