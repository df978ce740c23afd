"""Batched inference: uint8 images in, float32 logits out, on the model's device, under ``inference_mode``.

The evaluator must be bound by the model, not by loading: arrays are streamed from memory maps in large
chunks (one chunk per 10,000-image cell on a GPU, so a cell is resident) with the next chunk read by a background
thread, and normalisation is one fused multiply-add on the device. On CUDA: channels_last.

Precision: float32 by default, as the reference evaluators run; on CUDA, float32 matrix products and convolutions may
use TF32 tensor cores (10-bit mantissa inputs, float32 accumulation). bf16 / fp16 autocast is an explicit speed option
(``amp``); the precision is recorded in results.json (``config.precision``) and in every cell's fingerprint, so a cell
computed at one precision is never reused by a run at another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_HELP = ("off (default): float32, as the reference evaluators; on CUDA float32 matmuls and convolutions may use "
            "TF32 | bf16, fp16: autocast, faster on GPUs, predictions near ties can differ (recorded in results.json "
            "config.precision and the report header)")


@dataclass(frozen=True)
class InferenceSettings:
    """How to run the model; every default is the fast path for the device."""

    device: str = "cpu"            # torch device string: cpu, cuda, cuda:1, ...
    batch_size: int = 1000         # images per forward pass (-P: frames, whole videos per batch)
    amp: str = "off"               # off: float32 (TF32 matmuls allowed on CUDA) | bf16 | fp16 autocast
    channels_last: bool | None = None  # None: on for CUDA, off for CPU
    chunk_images: int = 10_000     # images copied from a memory map per transfer (a whole CIFAR-C cell)
    workers: int = 4               # DataLoader decode workers for JPEG / video sources

    def amp_dtype(self) -> torch.dtype | None:
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp={self.amp!r}; valid: {', '.join(AMP_DTYPES)}")
        return AMP_DTYPES[self.amp]

    def tf32(self) -> bool:
        """Whether float32 matmuls / convolutions may use TF32 (CUDA only; autocast regions run in its own dtype)."""
        return torch.device(self.device).type == "cuda"

    def precision(self) -> dict:
        """The numerical precision of the forward pass, as results.json records it (``config.precision``) and as
        every cell's fingerprint includes it."""
        dtype = self.amp_dtype()
        if dtype is None:
            mode = "float32"
            summary = ("float32 (TF32 tensor cores allowed for matmuls and convolutions on CUDA)" if self.tf32()
                       else "float32")
        else:
            mode = f"{self.amp}-autocast"
            summary = (f"{self.amp} autocast (explicit --amp {self.amp}; the reference evaluators run float32, "
                       f"predictions near ties may differ)")
        return {"mode": mode, "autocast_dtype": None if dtype is None else str(dtype).replace("torch.", ""),
                "tf32": self.tf32(), "summary": summary}

    def use_channels_last(self) -> bool:
        return torch.device(self.device).type == "cuda" if self.channels_last is None else self.channels_last


class Predictor:
    """A model with its input normalisation: (B, 3, H, W) uint8 batches -> (B, K) float32 logits.

    Args:
        model: maps normalised (B, 3, H, W) float images to (B, K) logits; moved to ``settings.device`` and put in
            eval mode (BatchNorm running statistics, no dropout: docs/metrics.md §1).
        mean, std: per-channel statistics of [0, 1] RGB inputs (the checkpoint's normalisation).
        settings: device, batch size, autocast, memory format.
    """

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 settings: InferenceSettings):
        self.settings = settings
        self.device = torch.device(settings.device)
        self.memory_format = torch.channels_last if settings.use_channels_last() else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std == x * scale - shift: one multiply-add per element
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1) / std_t
        self.amp_dtype = settings.amp_dtype()

    def __call__(self, images: Tensor) -> Tensor:
        """Logits of one batch.

        Args:
            images: (B, 3, H, W) uint8, any device and memory format.

        Returns:
            (B, K) float32 on the predictor's device.
        """
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) uint8 images, got {tuple(images.shape)} {images.dtype}")
        x = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), _tf32(self.settings.tf32()):
            x = torch.addcmul(-self.shift, x.float(), self.scale)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                return self.model(x).float()

    def over_tensor(self, images: Tensor) -> Iterator[Tensor]:
        """Logits per batch of a (N, 3, H, W) uint8 tensor (any device), in order."""
        for start in range(0, len(images), self.settings.batch_size):
            yield self(images[start:start + self.settings.batch_size])

    def over_array(self, images: np.ndarray) -> Iterator[Tensor]:
        """Logits per batch of a (N, H, W, 3) uint8 array (typically a memory map), in order.

        Chunks of ``chunk_images`` are copied to the device (pinned on CUDA) while a background thread reads the next
        chunk from the file.
        """
        for chunk in _prefetched(_chunks(images, self.settings.chunk_images)):
            chunk = torch.from_numpy(chunk)
            if self.device.type == "cuda":
                chunk = chunk.pin_memory()
            chunk = chunk.to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # (n, H, W, 3) -> (n, 3, H, W)
            yield from self.over_tensor(chunk)

    def over_video_array(self, videos: np.ndarray) -> Iterator[Tensor]:
        """(B, T, K) logits per batch of whole videos of a (N, T, H, W, 3) uint8 array (a CIFAR-P memory map)."""
        per_batch = videos_per_batch(self.settings, videos.shape[1])
        chunk = max(per_batch, self.settings.chunk_images // videos.shape[1] // per_batch * per_batch)
        for part in _prefetched(_chunks(videos, chunk)):
            part = torch.from_numpy(part).to(self.device, non_blocking=True)
            part = part.permute(0, 1, 4, 2, 3)  # (n, T, H, W, 3) -> (n, T, 3, H, W)
            for start in range(0, len(part), per_batch):
                yield self.videos(part[start:start + per_batch])

    def over_loader(self, loader: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
        """(logits, labels) per batch of a loader yielding ((B, 3, H, W) uint8, (B,) int) batches."""
        for images, labels in loader:
            yield self(images), labels.to(self.device, non_blocking=True)

    def videos(self, videos: Tensor) -> Tensor:
        """Logits of every frame: (V, T, 3, H, W) uint8 -> (V, T, K) float32 on the predictor's device."""
        v, t = videos.shape[:2]
        flat = videos.reshape(v * t, *videos.shape[2:])  # (V, T, 3, H, W) -> (V*T, 3, H, W)
        return torch.cat(list(self.over_tensor(flat))).view(v, t, -1)


@contextlib.contextmanager
def _tf32(allowed: bool) -> Iterator[None]:
    """Allow TF32 for CUDA float32 matmuls and convolutions inside the block (restoring the flags after); nothing
    changes when ``allowed`` is false (CPU)."""
    if not allowed:
        yield
        return
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9; the legacy flags must not be mixed in
        flags = [(torch.backends.cuda.matmul, "fp32_precision", "tf32"),
                 (torch.backends.cudnn.conv, "fp32_precision", "tf32")]
    else:
        flags = [(torch.backends.cuda.matmul, "allow_tf32", True), (torch.backends.cudnn, "allow_tf32", True)]
    saved = [getattr(owner, name) for owner, name, _ in flags]
    for owner, name, value in flags:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name, _), value in zip(flags, saved):
            setattr(owner, name, value)


def _chunks(images: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(images), size):
        yield images[start:start + size]


def _prefetched(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """In-memory copies of ``chunks``, the next one read by a thread while the caller works on this one
    (NumPy's copy releases the GIL, so reading overlaps the model)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for chunk in chunks:
            future = pool.submit(np.array, chunk)  # a real copy: reads the memory map
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def videos_per_batch(settings: InferenceSettings, frames: int) -> int:
    """Whole videos per forward pass: as many as fit ``batch_size`` frames, at least one."""
    return max(1, settings.batch_size // frames)
