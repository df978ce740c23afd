"""Readers of the released -C / -P formats, validated on load (docs/corruptions.md §7, §8.3).

CIFAR-10/100-C: ``<corruption>.npy`` (5N, 32, 32, 3) uint8, severity-major, plus ``labels.npy`` (5N,).
ImageNet-C: ``<root>/<corruption>/<1..5>/<wnid>/*.JPEG``, 224x224, read as is (no Resize(256), docs/metrics.md §1).
CIFAR-10/100-P: ``<perturbation>.npy`` (N, T, 32, 32, 3) uint8. ImageNet-P: ``<root>/<perturbation>/<wnid>/*.mp4``,
decoded with PyAV. Every malformed file raises an error that names the path and what was expected. What a file
must hold (its severities, its frame count) is the caller's knowledge, passed in: corruptions/ owns those facts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from loaders.imagefolder import list_image_folder
from loaders.transforms import to_uint8_chw
from runtime.video import decode_video

CIFAR_SIZE = 32
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")


def read_npy(path: str | Path, what: str) -> np.ndarray:
    """Memory-map a ``.npy`` file read-only, turning NumPy's low-level complaints into errors that name the file.

    Raises:
        FileNotFoundError: the file is missing. ValueError: not a .npy file, truncated, or holds Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not a .npy file ({what}); the download or copy failed, "
                         f"fetch the file again")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:  # bad magic, short header, "mmap length is greater than file
        # size", object arrays, a header cut short
        raise ValueError(f"{path} is not a complete .npy file ({what}): {exc or type(exc).__name__}; the download "
                         f"or copy may be truncated, compare its size and checksum with the released file") from exc


@dataclass(frozen=True)
class CorruptionArray:
    """One released CIFAR-C corruption file with its labels.

    Attributes:
        path: the ``<corruption>.npy`` file.
        images: (S*N, 32, 32, 3) uint8 memory map, severity-major: block k holds ``severities[k]``.
        labels: (S*N,) int64.
        severities: the severities of the blocks, in file order ((1, 2, 3, 4, 5) for the released sets).
    """

    path: Path
    images: np.ndarray
    labels: np.ndarray
    severities: tuple[int, ...]

    @property
    def per_severity(self) -> int:
        return len(self.labels) // len(self.severities)

    def cell(self, severity: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Images (n, 32, 32, 3) uint8 (a memory-map view, nothing read yet) and labels (n,) int64 of one severity,
        the first ``limit`` of them when given."""
        if severity not in self.severities:
            raise ValueError(f"{self.path}: severity must be one of {self.severities}, got {severity}")
        n = self.per_severity if limit is None else min(limit, self.per_severity)
        start = self.severities.index(severity) * self.per_severity
        return self.images[start:start + n], self.labels[start:start + n]


def load_cifar_c_labels(folder: str | Path, severities: Sequence[int], num_classes: int | None = None) -> np.ndarray:
    """Read and check ``labels.npy`` of a CIFAR-C folder: 1-D integers, one identical block per severity, classes in
    range.

    Args:
        severities: the severities the folder's files hold (corruptions.SEVERITIES for the released sets).
        num_classes: when given, labels must lie in 0..num_classes-1.

    Returns:
        (S*N,) int64.
    """
    path = Path(folder) / "labels.npy"
    labels = read_npy(path, "CIFAR-C labels")
    s = len(severities)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected a 1-D integer array ({s}N,), got {labels.dtype} {labels.shape}")
    if len(labels) == 0 or len(labels) % s:
        raise ValueError(f"{path}: {len(labels)} labels is not {s} severities x N test images")
    labels = np.asarray(labels, dtype=np.int64)
    blocks = labels.reshape(s, -1)
    if not (blocks == blocks[0]).all():
        raise ValueError(f"{path}: the {s} severity blocks of labels differ; expected the test labels repeated "
                         f"{s} times")
    if labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes):
        raise ValueError(f"{path}: labels span {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}")
    return labels


def open_cifar_c(folder: str | Path, corruption: str, severities: Sequence[int], labels: np.ndarray | None = None,
                 num_classes: int | None = None) -> CorruptionArray:
    """Open ``<folder>/<corruption>.npy`` and check it against ``labels.npy``.

    Args:
        folder: the extracted CIFAR-10-C / CIFAR-100-C folder.
        corruption: file stem, e.g. "gaussian_noise".
        severities: the severities of the file's blocks, in order (corruptions.SEVERITIES for the released sets).
        labels: already checked labels (from :func:`load_cifar_c_labels`), to avoid re-reading them per file.
        num_classes: when given, labels must lie in 0..num_classes-1.

    Raises:
        FileNotFoundError / ValueError: naming the file and the expected shape, dtype or length.
    """
    folder = Path(folder)
    severities = tuple(severities)
    labels = load_cifar_c_labels(folder, severities, num_classes) if labels is None else labels
    path = folder / f"{corruption}.npy"
    images = read_npy(path, f"CIFAR-C {corruption}")
    expected = (len(labels), CIFAR_SIZE, CIFAR_SIZE, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected[1:]:
        raise ValueError(f"{path}: expected uint8 {expected} (severity-major, HWC RGB), got {images.dtype} "
                         f"{images.shape}")
    if len(images) != len(labels):
        n = len(labels) // len(severities)
        raise ValueError(f"{path}: {len(images)} images but labels.npy has {len(labels)} ({n} per severity x "
                         f"{len(severities)}); a file with severities missing or a labels file from another set")
    return CorruptionArray(path, images, labels, severities)


def open_cifar_p(folder: str | Path, perturbation: str, frames: int | None = None,
                 num_videos: int | None = None) -> np.ndarray:
    """Open ``<folder>/<perturbation>.npy``, a released CIFAR-P file.

    Args:
        folder: the extracted CIFAR-10-P / CIFAR-100-P folder.
        perturbation: file stem, e.g. "translate" or "gaussian_noise_2".
        frames: the frame count T the file must have (corruptions.sequences.num_frames); None skips the check.
        num_videos: when given (the clean test set size), the number of videos must match it.

    Returns:
        (N, T, 32, 32, 3) uint8 memory map.
    """
    path = Path(folder) / f"{perturbation}.npy"
    videos = read_npy(path, f"CIFAR-P {perturbation}")
    if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[2:] != (CIFAR_SIZE, CIFAR_SIZE, 3):
        raise ValueError(f"{path}: expected uint8 (N, T, 32, 32, 3), got {videos.dtype} {videos.shape}")
    if frames is not None and videos.shape[1] != frames:
        raise ValueError(f"{path}: expected {frames} frames per video for {perturbation}, got {videos.shape[1]}")
    if num_videos is not None and len(videos) != num_videos:
        raise ValueError(f"{path}: {len(videos)} videos, expected one per clean test image ({num_videos})")
    return videos


def list_imagenet_c_cell(root: str | Path, corruption: str, severity: int,
                         classes: list[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """List ``<root>/<corruption>/<severity>/<wnid>/*`` with ImageFolder semantics (sorted WordNet ids).

    Args:
        classes: the expected class folders (e.g. of the clean validation set or another cell). Labels are folder
            indices, so a missing or extra class folder would silently shift them: it is an error instead.

    Returns:
        samples [(path, label)], classes.
    """
    folder = Path(root) / corruption / str(severity)
    if not folder.is_dir():
        parent = folder.parent
        found = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        raise FileNotFoundError(f"ImageNet-C severity folder {folder} does not exist "
                                f"({'found severities ' + ', '.join(found) if found else 'no ' + str(parent)}); "
                                f"expected {Path(root)}/<corruption>/<1..5>/<wnid>/<image>.JPEG")
    samples, found_classes = list_image_folder(folder)
    _check_classes(folder, found_classes, classes)
    return samples, found_classes


def list_imagenet_p(root: str | Path, perturbation: str,
                    classes: list[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """List the videos ``<root>/<perturbation>/<wnid>/*.mp4`` (sorted WordNet ids, sorted file names).

    Returns:
        samples [(path, label)], classes.
    """
    folder = Path(root) / perturbation
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageNet-P folder {folder} does not exist; expected "
                                f"{Path(root)}/<perturbation>/<wnid>/<image name>.mp4")
    found_classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    _check_classes(folder, found_classes, classes)
    samples = [(p, index) for index, name in enumerate(found_classes)
               for p in sorted((folder / name).iterdir()) if p.suffix.lower() in VIDEO_EXTENSIONS]
    if not samples:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) under {folder}/<wnid>/")
    return samples, found_classes


def _check_classes(folder: Path, found: list[str], expected: list[str] | None) -> None:
    if expected is None or list(found) == list(expected):
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    raise ValueError(f"{folder}: class folders differ from the expected {len(expected)} classes "
                     f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
                     f"{'...' if len(extra) > 5 else ''}); labels would shift")


class ImageFiles(Dataset):
    """Decodes image files with PIL to ``((3, H, W) uint8 tensor, label)``, for DataLoader workers.

    Args:
        samples: [(path, label)].
        transform: PIL -> PIL before conversion (ImageNet clean validation: Resize(256) + CenterCrop(224)); None for
            ImageNet-C, whose 224x224 JPEGs are used as they are.
        size: (H, W) every decoded image must have (after ``transform``); None skips the check.
    """

    def __init__(self, samples: list[tuple[Path, int]], transform: Callable[[Image.Image], Image.Image] | None = None,
                 size: tuple[int, int] | None = None):
        self.samples, self.transform, self.size = samples, transform, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except OSError as exc:
            raise ValueError(f"{path} is not a readable image: {exc}") from exc
        if self.transform is not None:
            img = self.transform(img)
        if self.size is not None and (img.height, img.width) != tuple(self.size):
            raise ValueError(f"{path}: expected a {self.size[0]}x{self.size[1]} image, got {img.height}x{img.width}")
        return torch.from_numpy(to_uint8_chw(img)), label


class VideoFiles(Dataset):
    """Decodes ImageNet-P videos to ``((T, 3, H, W) uint8 tensor, label)``, checking frame count and size.

    Args:
        samples: [(path, label)] from :func:`list_imagenet_p`.
        frames: the expected number of frames T (corruptions.sequences.num_frames); None skips the check.
        size: the expected (H, W); None skips the check.
    """

    def __init__(self, samples: list[tuple[Path, int]], frames: int | None = None,
                 size: tuple[int, int] | None = None):
        self.samples, self.frames, self.size = samples, frames, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        video = decode_video(path)
        if self.frames is not None and len(video) != self.frames:
            raise ValueError(f"{path}: expected {self.frames} frames, decoded {len(video)}")
        if self.size is not None and video.shape[1:3] != tuple(self.size):
            raise ValueError(f"{path}: expected {self.size[0]}x{self.size[1]} frames, got "
                             f"{video.shape[1]}x{video.shape[2]}")
        return torch.from_numpy(np.ascontiguousarray(video.transpose(0, 3, 1, 2))), label


def decoder_versions() -> dict[str, str]:
    """The image and video decoders in use, for the report (decoders can differ by +-1 grey level,
    docs/metrics.md §1)."""
    import PIL

    versions = {"image": f"Pillow {PIL.__version__}"}
    try:
        import av

        libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
        versions["video"] = f"PyAV {av.__version__} (libavcodec {libavcodec})"
    except ImportError:
        versions["video"] = "PyAV not installed"
    return versions
