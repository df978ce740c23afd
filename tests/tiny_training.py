"""Builders shared by the training tests: tiny real-format datasets and shrunk model overrides per config."""

from __future__ import annotations

from pathlib import Path

from loaders.synthetic import write_cifar_pickles, write_image_folder

# Models shrunk so one CPU epoch on tiny data takes about a second.
SHRUNK_MODEL = {
    "wrn40_2": ["model.depth=10", "model.width=1"],
    "densenet40_12": ["model.depth=10", "model.width=4"],
    "resnext29": ["model.depth=11", "model.width=4"],
    "allconv": ["model.width=16"],
    "resnet18": ["model.width=8"],
    "resnet50": ["model.width=8"],
}


def tiny_data_root(tmp_path: Path, dataset: str) -> Path:
    """Write the smallest dataset in the real on-disk format that ``dataset`` reads; returns its root."""
    root = tmp_path / "data"
    if dataset in ("cifar10", "cifar100"):
        write_cifar_pickles(root, dataset, num_train=40, num_test=20)
    elif dataset == "imagenet":
        write_image_folder(root, num_classes=3, per_class=4, size=(80, 72))
    return root


def tiny_overrides(tmp_path: Path, dataset: str, model: str, epochs: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    root = tiny_data_root(tmp_path, dataset)
    overrides = [f"data.root={root}", f"train.out_dir={tmp_path / 'run'}", f"train.epochs={epochs}",
                 "train.batch_size=8", "train.test_batch_size=16", "data.num_workers=0", "train.device=cpu",
                 "train.log_every=2", "eval.suites=[]", *SHRUNK_MODEL[model]]
    if dataset == "imagenet":
        overrides += ["data.image_size=32"]
    if dataset == "digits":
        overrides += ["data.limit_train=48", "data.limit_test=32", "data.val_size=8"]
    return overrides + list(extra)
