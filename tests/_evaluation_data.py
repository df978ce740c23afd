"""The evaluator's test oracles: tiny files in the released -C / -P formats (CIFAR-C npy, ImageNet-C JPEG trees,
CIFAR-P npy, ImageNet-P MP4 via PyAV/libx264), files made by the chunk-seeding contract of corruptions/chunks.py,
a tiny checkpoint in our format, tiny models, and the reference pipeline written out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from corruptions import CORRUPTIONS, SEVERITIES
from corruptions.chunks import (
    C_CHUNK_SIZE,
    P_CHUNK_SIZE,
    corrupt_batch,
    corruption_chunk_generator,
    perturbation_chunk_generator,
)
from corruptions.sequences import make_sequences


def marked_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 random images."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def smooth_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 smooth colour gradients (compress well, so JPEG / H.264 stay close to them)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size)
    low, high = rng.uniform(40, 110, (n, 1, 1, 3)), rng.uniform(140, 215, (n, 1, 1, 3))
    mix = (ramp[None, :, None, None] + ramp[None, None, :, None]) / 2  # (1, size, size, 1) diagonal ramp
    return (low + (high - low) * mix).astype(np.uint8)


def write_cifar_c(folder: Path, images: np.ndarray, labels: np.ndarray,
                  corruptions: tuple[str, ...] = CORRUPTIONS) -> Path:
    """A CIFAR-C folder: ``<c>.npy`` (5N, 32, 32, 3) severity-major and ``labels.npy`` (5N,) uint8, as released.

    Severity s of corruption c is the clean image with its first pixel row set to 10 * s + index of c, so tests can
    tell which block they read.
    """
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "labels.npy", np.tile(labels.astype(np.uint8), 5))
    for k, name in enumerate(corruptions):
        blocks = []
        for s in range(1, 6):
            block = images.copy()
            block[:, 0] = 10 * s + k
            blocks.append(block)
        np.save(folder / f"{name}.npy", np.concatenate(blocks))
    return folder


def write_cifar_p(folder: Path, images: np.ndarray, perturbations: dict[str, int]) -> Path:
    """A CIFAR-P folder: ``<p>.npy`` (N, T, 32, 32, 3), frame t = the image shifted right by t pixels (wrapping)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frames in perturbations.items():
        videos = np.stack([np.roll(images, t, axis=2) for t in range(frames)], axis=1)
        np.save(folder / f"{name}.npy", videos)
    return folder


def write_contract_cifar_c(folder: Path, images: np.ndarray, labels: np.ndarray, corruptions: tuple[str, ...],
                           seed: int, preset: str = "cifar") -> Path:
    """A CIFAR-C folder made as corruptions/chunks.py specifies, written out step by step: for every severity,
    chunk k (images k*B .. k*B+B-1, B = C_CHUNK_SIZE[preset]) is corrupted on the CPU with the generator
    ``corruption_chunk_generator(seed, corruption, severity, k)``; severity-major blocks, labels repeated."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "labels.npy", np.tile(labels.astype(np.uint8), len(SEVERITIES)))
    clean = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)
    b = C_CHUNK_SIZE[preset]
    for name in corruptions:
        blocks = [corrupt_batch(clean[start:start + b], name, s, preset,
                                corruption_chunk_generator(seed, name, s, start // b, "cpu"))
                  for s in SEVERITIES for start in range(0, len(clean), b)]
        np.save(folder / f"{name}.npy", torch.cat(blocks).permute(0, 2, 3, 1).numpy())
    return folder


def write_contract_cifar_p(folder: Path, images: np.ndarray, files: tuple[str, ...], seed: int) -> Path:
    """A CIFAR-P folder made as corruptions/chunks.py specifies: chunk k of P_CHUNK_SIZE["cifar"] videos of file
    ``name`` (e.g. ``translate``, ``gaussian_noise_2``) from ``perturbation_chunk_generator(seed, name, k)``."""
    folder.mkdir(parents=True, exist_ok=True)
    clean = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    b = P_CHUNK_SIZE["cifar"]
    for name in files:
        chunks = [make_sequences(clean[start:start + b], name, "cifar",
                                 generator=perturbation_chunk_generator(seed, name, start // b, "cpu"))
                  for start in range(0, len(clean), b)]
        np.save(folder / f"{name}.npy", torch.cat(chunks).permute(0, 1, 3, 4, 2).numpy())  # (N, T, 3, H, W) -> HWC
    return folder


def write_imagenet_c(root: Path, images: np.ndarray, labels: np.ndarray, corruptions: tuple[str, ...],
                     severities: tuple[int, ...] = (1, 2, 3, 4, 5), wnids: list[str] | None = None) -> Path:
    """An ImageNet-C tree ``root/<c>/<s>/<wnid>/<name>.JPEG`` (quality 85, as released) of the given images."""
    wnids = wnids or [f"n{k:08d}" for k in range(int(labels.max()) + 1)]
    for c in corruptions:
        for s in severities:
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                folder = root / c / str(s) / wnids[label]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"ILSVRC2012_val_{i:08d}.JPEG", quality=85, optimize=True)
    return root


def write_video(path: Path, frames: np.ndarray, crf: int = 20) -> None:
    """Write (T, H, W, 3) uint8 frames as H.264 MP4 at 1 fps with libx264 (as ImageNet-P), through PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_imagenet_p(root: Path, images: np.ndarray, labels: np.ndarray, perturbations: dict[str, int],
                     wnids: list[str] | None = None) -> Path:
    """An ImageNet-P tree ``root/<p>/<wnid>/<name>.mp4``; frame t is the image shifted right by t pixels."""
    wnids = wnids or [f"n{k:08d}" for k in range(int(labels.max()) + 1)]
    for name, n_frames in perturbations.items():
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            frames = np.stack([np.roll(image, t, axis=1) for t in range(n_frames)])
            write_video(root / name / wnids[label] / f"ILSVRC2012_val_{i:08d}.mp4", frames)
    return root


def write_tiny_checkpoint(path: Path, dataset: str = "digits", num_classes: int = 10, seed: int = 0,
                          mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.5, 0.5, 0.5)) -> Path:
    """A checkpoint in our format (training/checkpoint.py) holding a tiny WRN-10-1 with random weights."""
    from models import build_model
    from training.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model_args = {"name": "wrn40_2", "num_classes": num_classes, "depth": 10, "width": 1}
    model = build_model(**model_args).eval()
    save_checkpoint(path, model_args=model_args, model=model.state_dict(),
                    normalization={"mean": list(mean), "std": list(std)}, dataset=dataset, image_size=32, epoch=3,
                    global_step=30, config={"model": model_args}, metrics={})
    return path


def tiny_classifier(num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    """A random linear classifier on 8x8-pooled images (any input size): its predictions vary with every image,
    so an evaluator that reads the wrong rows, frames or severities gets different numbers."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(8), torch.nn.Flatten(), torch.nn.Linear(192, num_classes))


def model_info(dataset: str, num_classes: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), image_size: int = 32):
    """A models.weights.ModelInfo for a model built in a test."""
    from models.weights import ModelInfo

    return ModelInfo(name="tiny", num_classes=num_classes, dataset=dataset, mean=tuple(mean), std=tuple(std),
                     image_size=image_size, source="test", epoch=1, sha256="0" * 64)


def direct_logits(model: torch.nn.Module, images_nhwc: np.ndarray, mean, std) -> torch.Tensor:
    """The reference pipeline, written out: ToTensor ((x / 255), CHW) + Normalize, then the model, in float32."""
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(x)
