"""Where a suite's images come from: the clean test set, and -C / -P data either read from the released files
(loaders/released.py) or generated in memory from the clean test set by corruptions/ under the chunk-seeding
contract of corruptions/chunks.py, so a generated cell equals the same cell of a file generated with that seed.

Every source turns its data into logits through a :class:`~evaluation.inference.Predictor` and says where the data
came from (``source``, recorded in results.json and in each cell's fingerprint) and how it was preprocessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES
from corruptions.chunks import (
    C_CHUNK_SIZE,
    P_CHUNK_SIZE,
    corrupt_batch,
    corruption_chunk_generator,
    perturbation_chunk_generator,
)
from corruptions.sequences import (
    PERTURBATIONS,
    is_noise_perturbation,
    make_sequences,
    num_frames,
    perturbation_file_name,
)
from evaluation.inference import Predictor, videos_per_batch
from loaders.released import (
    ImageFiles,
    VideoFiles,
    list_imagenet_c_cell,
    list_imagenet_p,
    load_cifar_c_labels,
    open_cifar_c,
    open_cifar_p,
)
from runtime.environment import package_version

CLEAN_DATASETS = ("digits", "cifar10", "cifar100", "imagenet")
IMAGENET_SIZE = (224, 224)  # ImageNet-C JPEGs and ImageNet-P frames, as released


@dataclass
class CleanSet:
    """A clean test set, cut to the evaluation's ``limit``.

    Attributes:
        labels: (N,) int64.
        where: a description for the report (dataset and folder).
        images: (N, H, W, 3) uint8 for in-memory sets (digits, CIFAR), else None.
        samples: [(path, label)] of ImageNet validation files, else None.
    """

    labels: np.ndarray
    where: str
    images: np.ndarray | None = None
    samples: list[tuple[Path, int]] | None = None
    _on_device: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def on_device(self, device: torch.device) -> Tensor:
        """(N, 3, H, W) uint8 on ``device``, copied once: the input of generated -C / -P data."""
        if self.images is None:
            raise ValueError("generating -C/-P in memory needs an in-memory clean test set (CIFAR, digits); for "
                             "ImageNet generate the ImageNet-C / -P files first and evaluate those")
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = torch.from_numpy(self.images).to(device).permute(0, 3, 1, 2).contiguous()
        return self._on_device[key]


def load_clean_set(dataset: str, folder: Path, limit: int | None = None) -> CleanSet:
    """The test split of ``dataset`` (digits | cifar10 | cifar100 | imagenet), first ``limit`` samples.

    Args:
        folder: the dataset's folder (CIFAR: holding the python pickles; ImageNet: the validation ImageFolder);
            ignored for digits, which ships with scikit-learn.
    """
    cut = slice(None, limit)
    if dataset == "digits":
        from loaders.digits import load_digits

        images, labels = load_digits(train=False)
        where = "scikit-learn digits, fixed 500-image test split, upsampled to 32x32"
    elif dataset in ("cifar10", "cifar100"):
        from loaders.cifar import load_cifar

        images, labels = load_cifar(folder, dataset, train=False)
        where = f"{dataset} test set under {folder}"
    elif dataset == "imagenet":
        from loaders.imagefolder import list_image_folder

        samples, _ = list_image_folder(folder)
        samples = samples[cut]
        return CleanSet(labels=np.array([label for _, label in samples], dtype=np.int64),
                        where=f"ImageNet validation at {folder}", samples=samples)
    else:
        raise ValueError(f"no clean test set for dataset {dataset!r}; known: {', '.join(CLEAN_DATASETS)}")
    return CleanSet(labels=labels[cut], where=where, images=images[cut])


def clean_pairs(clean: CleanSet, predictor: Predictor) -> Iterator[tuple[Tensor, Tensor]]:
    """(logits, labels) batches of the clean set (ImageNet: Resize(256) + CenterCrop(224), as the papers)."""
    if clean.images is not None:
        labels = torch.from_numpy(clean.labels).to(predictor.device)
        return with_labels(predictor.over_array(clean.images), labels)
    from loaders.transforms import ResizeCenterCrop

    dataset = ImageFiles(clean.samples, transform=ResizeCenterCrop(256, 224), size=IMAGENET_SIZE)
    return predictor.over_loader(_loader(dataset, predictor))


def with_labels(logits: Iterable[Tensor], labels: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Pair consecutive logits batches with the matching slices of ``labels``."""
    start = 0
    for batch in logits:
        yield batch, labels[start:start + len(batch)]
        start += len(batch)


def _loader(dataset: Dataset, predictor: Predictor, batch_size: int | None = None) -> DataLoader:
    """Decode files in ``predictor.settings.workers`` DataLoader workers."""
    workers = predictor.settings.workers
    return DataLoader(dataset, batch_size=batch_size or predictor.settings.batch_size, num_workers=workers,
                      pin_memory=predictor.device.type == "cuda", persistent_workers=False,
                      prefetch_factor=4 if workers else None)


class ReleasedCorruptions:
    """-C cells read from released files: CIFAR-C ``.npy`` (``benchmark="cifar"``) or ImageNet-C JPEG trees.

    Args:
        folder: the extracted CIFAR-10-C / CIFAR-100-C / ImageNet-C folder.
        benchmark: "cifar" or "imagenet".
        num_classes: the model's outputs (labels and class folders are checked against it); None skips the check.
        limit: first N images per cell.
        resize: NON-STANDARD Resize(256) + CenterCrop(224) on ImageNet-C (the official AugMix script's protocol).
    """

    def __init__(self, folder: Path, benchmark: str, num_classes: int | None, limit: int | None = None,
                 resize: bool = False):
        self.folder, self.benchmark, self.num_classes = folder, benchmark, num_classes
        self.limit, self.resize = limit, resize
        layout = "imagenet-c-jpeg" if benchmark == "imagenet" else "cifar-c-npy"
        self.source = {"kind": "released", "path": str(folder), "format": layout}
        self.preprocessing = ("decoded JPEG (PIL) + ToTensor + Normalize, no Resize(256)" if benchmark == "imagenet"
                              else "ToTensor + Normalize, no crop or resize")
        if resize:
            self.preprocessing = ("NON-STANDARD PROTOCOL: Resize(256) + CenterCrop(224) applied to the 224-px "
                                  "ImageNet-C images (as the official AugMix script); not comparable with mCE")
        self._classes: list[str] | None = None
        self._labels: np.ndarray | None = None

    def names(self, requested: Sequence[str] | None) -> tuple[list[str], list[str]]:
        """Corruptions to evaluate and notes on skipped ones: the requested ones (all must exist), else all 19 with
        extra corruptions skipped when their files are absent.

        Raises:
            FileNotFoundError: a benchmark corruption has no file (names them).
        """
        if requested is not None:
            return list(requested), []
        exists = [c for c in ALL_CORRUPTIONS if (self.folder / c).is_dir() or (self.folder / f"{c}.npy").is_file()]
        missing = [c for c in ALL_CORRUPTIONS if c not in exists]
        missing_bench = [c for c in missing if c in CORRUPTIONS]
        if missing_bench:
            raise FileNotFoundError(f"{self.folder}: no released data for benchmark corruption(s) "
                                    f"{', '.join(missing_bench)}; pass --corruptions for a partial evaluation")
        return exists, ([f"extra corruption(s) {', '.join(missing)} not found in {self.folder}; skipped"]
                        if missing else [])

    def pairs(self, predictor: Predictor, name: str, severity: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(logits, labels) batches of one cell."""
        if self.benchmark == "imagenet":
            return predictor.over_loader(_loader(self._imagenet_cell(name, severity), predictor))
        if self._labels is None:
            self._labels = load_cifar_c_labels(self.folder, SEVERITIES, self.num_classes)
        images, labels = open_cifar_c(self.folder, name, SEVERITIES, self._labels).cell(severity, self.limit)
        return with_labels(predictor.over_array(images), torch.from_numpy(labels).to(predictor.device))

    def _imagenet_cell(self, name: str, severity: int) -> ImageFiles:
        samples, classes = list_imagenet_c_cell(self.folder, name, severity, self._classes)
        if self.num_classes is not None and len(classes) != self.num_classes:
            raise ValueError(f"{self.folder / name / str(severity)}: {len(classes)} class folders, but the model "
                             f"has {self.num_classes} outputs")
        self._classes = classes
        transform = None
        if self.resize:
            from loaders.transforms import ResizeCenterCrop

            transform = ResizeCenterCrop(256, 224)
        return ImageFiles(samples[:self.limit], transform=transform, size=IMAGENET_SIZE)


class GeneratedCorruptions:
    """-C cells corrupted in memory from the clean test set, chunk by chunk as corruptions/chunks.py seeds them:
    a cell equals the file generated with the same seed, preset, chunk size and device type.

    Args:
        clean: the clean test set (in memory).
        preset: the corruptions/ parameter preset ("cifar" for 32-px sets).
        seed: the run seed the chunk seeds derive from.
    """

    def __init__(self, clean: CleanSet, preset: str, seed: int):
        self.clean, self.preset, self.seed = clean, preset, seed
        self.chunk = C_CHUNK_SIZE[preset]
        self.source = {"kind": "generated", "seed": seed, "preset": preset, "chunk_size": self.chunk,
                       "generator": f"corruptions/ of augmix-robustness {package_version()}", "clean": clean.where}
        self.preprocessing = "corrupted in memory (uint8), then ToTensor + Normalize"

    def names(self, requested: Sequence[str] | None) -> tuple[list[str], list[str]]:
        """The requested corruptions, else all 19; no notes (every corruption can be generated)."""
        return list(ALL_CORRUPTIONS if requested is None else requested), []

    def pairs(self, predictor: Predictor, name: str, severity: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(logits, labels) batches of one cell."""
        labels = torch.from_numpy(self.clean.labels).to(predictor.device)
        return with_labels(self._logits(predictor, name, severity), labels)

    def _logits(self, predictor: Predictor, name: str, severity: int) -> Iterator[Tensor]:
        clean = self.clean.on_device(predictor.device)
        for k, start in enumerate(range(0, len(clean), self.chunk)):
            generator = corruption_chunk_generator(self.seed, name, severity, k, clean.device)
            yield from predictor.over_tensor(corrupt_batch(clean[start:start + self.chunk], name, severity,
                                                           self.preset, generator))


def perturbation_data_file(name: str, difficulty: int) -> str:
    """The -P data a (perturbation, difficulty) reads: noise perturbations express difficulty through their own
    stronger-noise sets ``<name>_2`` / ``<name>_3``; the others through the frame step alone (docs/metrics.md §4.2).

    Raises:
        ValueError: an unknown perturbation (lists the valid ones).
    """
    return perturbation_file_name(name, difficulty if is_noise_perturbation(name) else 1)


class ReleasedPerturbations:
    """-P videos read from released files: CIFAR-P ``.npy`` (``benchmark="cifar"``) or ImageNet-P MP4 trees.

    Args:
        folder: the extracted CIFAR-10-P / CIFAR-100-P / ImageNet-P folder.
        benchmark: "cifar" or "imagenet" (also selects the expected frame counts).
        limit: first N videos per perturbation.
    """

    def __init__(self, folder: Path, benchmark: str, limit: int | None = None):
        self.folder, self.benchmark, self.limit = folder, benchmark, limit
        layout = "imagenet-p-mp4" if benchmark == "imagenet" else "cifar-p-npy"
        self.source = {"kind": "released", "path": str(folder), "format": layout}
        self.preprocessing = ("frames decoded with PyAV (FFmpeg), RGB, ToTensor + Normalize, no resize"
                              if benchmark == "imagenet" else "ToTensor + Normalize per frame")

    def names(self, requested: Sequence[str] | None, difficulty: int) -> list[str]:
        """The requested perturbations, else every one of the 14 whose data for ``difficulty`` exists.

        Raises:
            FileNotFoundError: none exists.
        """
        if requested is not None:
            return list(requested)
        found = [p for p in PERTURBATIONS if (self.folder / perturbation_data_file(p, difficulty)).is_dir()
                 or (self.folder / f"{perturbation_data_file(p, difficulty)}.npy").is_file()]
        if not found:
            raise FileNotFoundError(f"{self.folder}: no released -P data (expected <perturbation>.npy files or "
                                    f"<perturbation>/<wnid>/*.mp4 folders for {', '.join(PERTURBATIONS)})")
        return found

    def logits(self, predictor: Predictor, name: str, difficulty: int) -> Iterator[Tensor]:
        """(B, T, K) logits per batch of whole videos of one perturbation at ``difficulty``."""
        file = perturbation_data_file(name, difficulty)
        frames = num_frames(file, self.benchmark)
        if self.benchmark == "imagenet":
            samples, _ = list_imagenet_p(self.folder, file)
            videos = VideoFiles(samples[:self.limit], frames=frames, size=IMAGENET_SIZE)
            loader = _loader(videos, predictor, videos_per_batch(predictor.settings, frames))
            return (predictor.videos(batch) for batch, _ in loader)
        return predictor.over_video_array(open_cifar_p(self.folder, file, frames)[:self.limit])


class GeneratedPerturbations:
    """-P videos made in memory from the clean test set by corruptions/sequences.py, chunk by chunk as
    corruptions/chunks.py seeds them: the videos equal the file generated with the same seed and chunk size.

    Args:
        clean: the clean test set (in memory).
        preset: the -P preset ("cifar" for 32-px sets).
        seed: the run seed the chunk seeds derive from.
    """

    def __init__(self, clean: CleanSet, preset: str, seed: int):
        self.clean, self.preset, self.seed = clean, preset, seed
        self.chunk = P_CHUNK_SIZE[preset]
        self.source: dict[str, Any] = {"kind": "generated", "seed": seed, "preset": preset, "chunk_size": self.chunk,
                                       "generator": "corruptions/sequences.py", "clean": clean.where}
        self.preprocessing = "sequences generated in memory (uint8), then ToTensor + Normalize per frame"

    def names(self, requested: Sequence[str] | None, difficulty: int) -> list[str]:
        """The requested perturbations, else all 14."""
        return list(PERTURBATIONS if requested is None else requested)

    def logits(self, predictor: Predictor, name: str, difficulty: int) -> Iterator[Tensor]:
        """(B, T, K) logits per batch of whole videos of one perturbation at ``difficulty``."""
        file = perturbation_data_file(name, difficulty)
        clean = self.clean.on_device(predictor.device)
        for k, start in enumerate(range(0, len(clean), self.chunk)):
            generator = perturbation_chunk_generator(self.seed, file, k, clean.device)
            videos = make_sequences(clean[start:start + self.chunk], file, self.preset, generator=generator)
            per_batch = videos_per_batch(predictor.settings, videos.shape[1])
            for v in range(0, len(videos), per_batch):
                yield predictor.videos(videos[v:v + per_batch])
