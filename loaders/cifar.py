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


def _read_batch(path: Path, name: str) -> dict:
    """One pickled batch as a dict with str keys; a file that is not a CIFAR batch raises ValueError naming it."""
    expected = f"a pickled dict with 'data' (N, 3072) uint8 and '{CIFAR_LABEL_KEY[name]}' (N labels)"
    with open(path, "rb") as f:
        try:
            batch = _ArrayOnlyUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
                ImportError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a valid {name} batch ({exc}); expected {expected}") from exc
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a valid {name} batch: it holds a {type(batch).__name__}; expected {expected}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [key for key in ("data", CIFAR_LABEL_KEY[name]) if key not in batch]
    if missing:
        found = ", ".join(repr(k) for k in list(batch)[:8]) or "none"
        raise ValueError(f"{path} is not a valid {name} batch: no {' or '.join(repr(k) for k in missing)} key "
                         f"(keys found: {found}); expected {expected}")
    return batch


def cifar_folder(root: str | Path, name: str) -> Path:
    if name not in CIFAR_FOLDERS:
        raise ValueError(f"unknown CIFAR dataset {name!r}; valid: {', '.join(CIFAR_FOLDERS)}")
    return Path(root) / CIFAR_FOLDERS[name]


def _check_splits(splits: tuple[str, ...]) -> tuple[str, ...]:
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = [s for s in splits if s not in ("train", "test")]
    if unknown or not splits:
        raise ValueError(f"CIFAR splits {splits!r}: expected one or more of 'train', 'test'")
    return splits


def missing_files(root: str | Path, name: str, splits: tuple[str, ...] = ("train", "test")) -> list[Path]:
    """The batch files of ``splits`` that are not on disk (in the order of the official tarball)."""
    folder = cifar_folder(root, name)
    files = [f for split in _check_splits(splits) for f in CIFAR_SPLITS[name][split]]
    return [folder / f for f in files if not (folder / f).is_file()]


def ensure_cifar(root: str | Path, name: str, download: bool = False,
                 splits: tuple[str, ...] = ("train", "test")) -> None:
    """Check the batches of ``splits`` are on disk; with ``download`` fetch the dataset through torchvision first.

    Only the requested splits are required: evaluation needs ``splits=("test",)``, i.e. just ``test_batch``
    (cifar100: ``test``).

    Raises:
        FileNotFoundError: naming the folder and the files expected there and how to get them.
    """
    splits = _check_splits(splits)
    if not missing_files(root, name, splits):
        return
    error = None
    if download:
        try:
            from torchvision import datasets

            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            cls(str(root), train=True, download=True)  # the tarball holds both splits
        except Exception as exc:  # no network, checksum failure, ...
            error = exc
    missing = missing_files(root, name, splits)
    if missing:
        folder = cifar_folder(root, name)
        tar = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
        reason = f" (download failed: {error})" if error else " (set data.download=true to fetch it)"
        where = folder if folder.is_dir() else f"{folder} (which does not exist)"
        raise FileNotFoundError(
            f"{name} {'/'.join(splits)} split not found{reason}: expected {', '.join(p.name for p in missing)} "
            f"in {where}. Download {tar} from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into "
            f"{Path(root)}, or point data.root / $AUGMIX_DATA_ROOT at the folder that contains {folder.name}/.")


def load_cifar(root: str | Path, name: str, train: bool, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of CIFAR-10 or CIFAR-100.

    Args:
        root: folder containing ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: "cifar10" or "cifar100" (fine labels).
        train: the 50,000-image training split, else the 10,000-image test split; only that split's files
            must exist (the test split needs just ``test_batch``, cifar100 ``test``).
        download: fetch with torchvision when files are missing (needs network).

    Returns:
        images (N, 32, 32, 3) uint8 RGB in file order, labels (N,) int64.
    """
    split = "train" if train else "test"
    ensure_cifar(root, name, download, splits=(split,))
    folder = cifar_folder(root, name)
    images, labels = [], []
    for file in CIFAR_SPLITS[name][split]:
        path = folder / file
        batch = _read_batch(path, name)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            label = np.asarray(batch[CIFAR_LABEL_KEY[name]], dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{path}: 'data' must be a uint8 array and '{CIFAR_LABEL_KEY[name]}' a list of "
                             f"integers ({exc})") from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(label) != len(data):
            raise ValueError(f"{path}: expected data (N, 3072) and N labels, got data {data.shape} and "
                             f"{len(label)} labels")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(label)
    labels_all = np.concatenate(labels)
    if len(labels_all) == 0:
        raise ValueError(f"{folder}: the {split} split holds no images")
    if labels_all.min() < 0 or labels_all.max() >= CIFAR_NUM_CLASSES[name]:
        raise ValueError(f"{folder}: labels outside 0..{CIFAR_NUM_CLASSES[name] - 1}")
    return np.ascontiguousarray(np.concatenate(images)), labels_all
