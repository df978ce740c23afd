"""Generate -C sets in the released layouts (corruptions.md §7): batched on a device, seeded per chunk, atomic,
resumable.

Randomness: chunk ``k`` (images ``k*B .. k*B+B-1``) of ``(corruption, severity)`` draws from its own
torch.Generator seeded with ``derive_seed(seed, corruption index, severity, k)``, so a resumed run, a subset of
corruptions or severities, or a single unit regenerated later gives the same bytes as one full run (same device
type and batch size; both are recorded in the manifest and checked on resume). The reference generator instead
drew from unseeded NumPy in 4 DataLoader workers, probably repeating random fields across workers (§9 item 10);
no released random field can be reproduced, so generated sets are marked as such in their manifest.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from corruptions import ALL_CORRUPTIONS, SEVERITIES, get_corruption
from corruptions import writers as W
from runtime.files import atomic_write_text, sha256_file
from corruptions.chunks import C_CHUNK_SIZE, corrupt_batch
from corruptions.chunks import corruption_chunk_generator as chunk_generator

LAYOUT_NPY = "cifar-c-npy"        # <corruption>.npy (S*N, H, W, 3) + labels.npy, §7.1
LAYOUT_JPEG = "imagenet-c-jpeg"   # <corruption>/<severity>/<wnid>/<name>.JPEG, §7.2 / §7.3
IMAGENET_RESIZE = 256             # §7.2: Resize(256) (shorter side, bilinear) then CenterCrop(224)
# images per chunk by preset; part of the seeding (changes the random draws), recorded in the manifest
DEFAULT_BATCH_SIZE = C_CHUNK_SIZE

ChunkHook = Callable[[str, int, int], None]  # (corruption, severity, chunk index), after the chunk is on disk


@dataclass(frozen=True)
class GenerationConfig:
    """What to generate and how; the fields marked (bytes) change the output and must match on resume."""

    preset: str = "cifar"                  # (bytes) cifar (32 px) | tiny (64 px) | imagenet (224 px)
    corruptions: tuple[str, ...] = ALL_CORRUPTIONS  # canonical names; each one is an independent file/folder
    severities: tuple[int, ...] = SEVERITIES        # (bytes) the npy files hold these blocks, in this order
    seed: int = 0                          # (bytes) run seed; chunk seeds derive from it
    device: str = "cpu"                    # (bytes: device type) where images are corrupted
    batch_size: int | None = None          # (bytes) images per chunk; None = DEFAULT_BATCH_SIZE[preset]
    workers: int = 0                       # ImageFolder: DataLoader decode workers and JPEG encoder threads
    verify: bool = False                   # on resume re-hash finished files (default: size / existence)
    progress: bool | None = None           # tqdm bars; None = only when stderr is a TTY
    source: dict[str, Any] = field(default_factory=dict)  # name and path of the dataset, for the manifest

    def chunk_size(self) -> int:
        return self.batch_size or DEFAULT_BATCH_SIZE[self.preset]

    def validate(self) -> None:
        """Raise ValueError naming the bad field and the valid values."""
        from corruptions.presets import check_preset

        check_preset(self.preset)
        if not self.corruptions:
            raise ValueError("no corruption selected")
        unknown = [c for c in self.corruptions if c not in ALL_CORRUPTIONS]
        if unknown:
            raise ValueError(f"unknown corruption(s) {', '.join(map(repr, unknown))}; valid: "
                             f"{', '.join(ALL_CORRUPTIONS)} (or a subset name: common, extra, all)")
        for name in self.corruptions:  # fail before any work, not after an hour of it
            try:
                get_corruption(name)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"corruption {name!r} is not available in this installation: {exc}") from exc
        bad = [s for s in self.severities if s not in SEVERITIES]
        if not self.severities or bad or len(set(self.severities)) != len(self.severities):
            raise ValueError(f"severities must be distinct values in 1..5, got {list(self.severities)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")

    def settings(self, layout: str) -> dict[str, Any]:
        """The byte-determining settings stored in the manifest and compared on resume."""
        return {"layout": layout, "preset": self.preset, "severities": list(self.severities), "seed": self.seed,
                "device_type": torch.device(self.device).type, "batch_size": self.chunk_size(),
                "seeding": "derive_seed(seed, ALL_CORRUPTIONS.index(corruption), severity, chunk)"}


def _open_output(out_dir: Path, layout: str, config: GenerationConfig, source: dict[str, Any]) -> dict[str, Any]:
    """Create ``out_dir`` or resume it (writers.open_output); a new manifest records the device."""
    return W.open_output(out_dir, layout, config.settings(layout), source,
                         lambda manifest: manifest.update(device=_describe_device(config.device)))


def _describe_device(name: str) -> dict[str, str]:
    device = torch.device(name)
    if device.type == "cuda":
        return {"device": str(device), "name": torch.cuda.get_device_name(device), "cuda": str(torch.version.cuda)}
    return {"device": str(device), "name": platform.processor() or platform.machine()}


def _finish(out_dir: Path, manifest: dict[str, Any], config: GenerationConfig, is_done: Callable[[str], bool]) -> None:
    manifest["corruptions"] = [c for c in ALL_CORRUPTIONS if is_done(c)]
    manifest["complete"] = all(c in manifest["corruptions"] for c in config.corruptions)
    W.save_manifest(out_dir, manifest)
    _prune_empty_dirs(out_dir / W.WORK_DIR)


def _prune_empty_dirs(folder: Path) -> None:
    """Remove empty folders under and including ``folder`` (the work folder once its units are assembled)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def _bar(config: GenerationConfig, total: int, desc: str) -> tqdm:
    disable = None if config.progress is None else not config.progress
    return tqdm(total=total, desc=desc, unit="img", disable=disable, dynamic_ncols=True)


def generate_cifar_c(images: np.ndarray, labels: np.ndarray, out_dir: str | Path,
                     config: GenerationConfig = GenerationConfig(), on_chunk: ChunkHook | None = None) -> dict:
    """Write CIFAR-10/100-C style files: ``<corruption>.npy`` (S*N, H, W, 3) uint8 severity-major + ``labels.npy``.

    Args:
        images: (N, H, W, 3) uint8 RGB test images in test-set order; H = W = the preset's size.
        labels: (N,) class indices; stored as uint8 (int64 above 255 classes).
        out_dir: output folder; resumed when it holds a manifest of a run with the same settings.
        config: preset, corruptions, severities, seed, device, chunk size.
        on_chunk: called after each newly written chunk (progress hooks; tests raise from it).

    Returns:
        The manifest as written to ``<out_dir>/manifest.json``.
    """
    from corruptions.presets import check_image_size

    config.validate()
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},) to match the images, got {labels.shape}")
    check_image_size(config.preset, images.shape[1], images.shape[2])
    out_dir = Path(out_dir)
    source = {**config.source, "num_images": len(images), "fingerprint": W.array_fingerprint(images, labels)}
    manifest = _open_output(out_dir, LAYOUT_NPY, config, source)
    _write_labels(out_dir, manifest, labels, len(config.severities))
    shape = (len(config.severities) * len(images), *images.shape[1:])
    clean = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(config.device)  # (N,H,W,3)->(N,3,H,W)
    with _bar(config, len(config.corruptions) * shape[0], "CIFAR-C") as bar:
        for corruption in config.corruptions:
            if _npy_done(out_dir, manifest, corruption, shape, config.verify):
                bar.update(shape[0])
                continue
            parts = _npy_chunks(clean, out_dir, corruption, config, bar, on_chunk)
            sha, size = W.assemble_npy(parts, out_dir / f"{corruption}.npy", shape)
            _record_npy(out_dir, manifest, corruption, sha, size, shape, config)
    _finish(out_dir, manifest, config, lambda c: f"{c}.npy" in manifest["files"])
    return manifest


def _npy_chunks(clean: torch.Tensor, out_dir: Path, corruption: str, config: GenerationConfig, bar: tqdm,
                on_chunk: ChunkHook | None) -> list[Path]:
    """Write (or keep, when whole) every chunk file of one corruption; return them in row order."""
    n, size, b = clean.shape[0], clean.shape[-1], config.chunk_size()
    parts = []
    for severity in config.severities:
        for k in range((n + b - 1) // b):
            part = out_dir / W.WORK_DIR / corruption / str(severity) / f"chunk_{k:05d}.npy"
            batch = clean[k * b:(k + 1) * b]
            if not W.npy_is_complete(part, (len(batch), size, size, 3)):  # missing or truncated: (re)generate
                generator = chunk_generator(config.seed, corruption, severity, k, clean.device)
                out = corrupt_batch(batch, corruption, severity, config.preset, generator)
                W.write_npy(part, out.permute(0, 2, 3, 1).cpu().numpy())  # (B,3,H,W) -> (B,H,W,3)
                if on_chunk is not None:
                    on_chunk(corruption, severity, k)
            parts.append(part)
            bar.update(len(batch))
    return parts


def _npy_done(out_dir: Path, manifest: dict, corruption: str, shape: tuple[int, ...], verify: bool) -> bool:
    """Whether ``<corruption>.npy`` is finished; a damaged file is dropped from the manifest and regenerated."""
    path, entry = out_dir / f"{corruption}.npy", manifest["files"].get(f"{corruption}.npy")
    if not path.is_file():
        manifest["files"].pop(f"{corruption}.npy", None)
        return False
    if entry is not None:
        ok = path.stat().st_size == entry["bytes"] and (not verify or sha256_file(path) == entry["sha256"])
    else:  # renamed into place, killed before the manifest update: accept a whole file of the right shape
        ok = W.npy_is_complete(path, shape)
        if ok:
            manifest["files"][f"{corruption}.npy"] = W.npy_file_entry(sha256_file(path), path.stat().st_size,
                                                                       shape, np.uint8)
            W.save_manifest(out_dir, manifest)
    if ok:
        shutil.rmtree(out_dir / W.WORK_DIR / corruption, ignore_errors=True)
    else:
        warnings.warn(f"{path} is damaged or incomplete; regenerating it", stacklevel=2)
        manifest["files"].pop(f"{corruption}.npy", None)
        path.unlink()
    return ok


def _record_npy(out_dir: Path, manifest: dict, corruption: str, sha: str, size: int, shape: tuple[int, ...],
                config: GenerationConfig) -> None:
    manifest["files"][f"{corruption}.npy"] = W.npy_file_entry(sha, size, shape, np.uint8,
                                                               severities=list(config.severities))
    manifest["corruptions"] = [c for c in ALL_CORRUPTIONS if f"{c}.npy" in manifest["files"]]
    W.save_manifest(out_dir, manifest)
    shutil.rmtree(out_dir / W.WORK_DIR / corruption, ignore_errors=True)


def _write_labels(out_dir: Path, manifest: dict, labels: np.ndarray, num_severities: int) -> None:
    expected = W.cifar_c_labels(labels, num_severities)
    path = out_dir / "labels.npy"
    entry = manifest["files"].get("labels.npy")
    if entry is None or not path.is_file() or sha256_file(path) != entry["sha256"]:
        W.write_npy(path, expected)
        manifest["files"]["labels.npy"] = W.npy_file_entry(sha256_file(path), path.stat().st_size,
                                                           expected.shape, expected.dtype)
        W.save_manifest(out_dir, manifest)


def preprocess_image(image: Image.Image, preset: str) -> Image.Image:
    """The clean image a preset corrupts, as a PIL RGB image of the preset's size.

    "imagenet": torchvision's Resize(256) + CenterCrop(224) of §7.2 (PIL bilinear on the shorter side, long side
    ``int(256 * long / short)``, crop offsets ``int(round((size - 224) / 2))``), written with PIL directly because
    importing torchvision costs seconds per DataLoader worker. "cifar" / "tiny": the whole image resized to
    S x S (the ImageNet-64x64-C convention, §3.3); an image already S x S is left untouched.
    """
    from corruptions.presets import PRESETS

    image = image.convert("RGB")
    side, (w, h) = PRESETS[preset], image.size
    if preset != "imagenet":
        return image if (w, h) == (side, side) else image.resize((side, side), Image.BILINEAR)
    if min(w, h) != IMAGENET_RESIZE:
        short, long = min(w, h), max(w, h)
        size = (IMAGENET_RESIZE, int(IMAGENET_RESIZE * long / short))  # (short, long)
        image = image.resize(size if w <= h else size[::-1], Image.BILINEAR)
        w, h = image.size
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    return image.crop((left, top, left + side, top + side))


class FolderImages(Dataset):
    """Decoded, pre-processed source images as (3, S, S) uint8 tensors (runs in DataLoader workers)."""

    def __init__(self, paths: Sequence[str | Path], preset: str):
        self.paths, self.preset = list(paths), preset

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        try:
            with Image.open(self.paths[index]) as image:
                clean = preprocess_image(image, self.preset)
        except OSError as exc:
            raise OSError(f"cannot decode source image {self.paths[index]}: {exc}") from exc
        return torch.from_numpy(np.asarray(clean, dtype=np.uint8).copy()).permute(2, 0, 1)  # (S,S,3)->(3,S,S)


class _JpegSink:
    """Encodes and writes JPEG chunks on a thread pool; hands back, in submission order, the chunks whose files
    are all on disk. Bounded, so encoding overlaps the next corruption without unbounded memory."""

    def __init__(self, pool: ThreadPoolExecutor, out_dir: Path, max_pending: int):
        self.pool, self.out_dir, self.max_pending = pool, out_dir, max_pending
        self.pending: deque[tuple[Any, int, list[str], list[Future]]] = deque()

    def submit(self, unit: tuple[str, int], chunk: int, images: np.ndarray, relpaths: list[str]) -> None:
        futures = [self.pool.submit(W.write_jpeg, self.out_dir / rel, image) for rel, image in zip(relpaths, images)]
        self.pending.append((unit, chunk, relpaths, futures))

    def finished(self, block: bool = False) -> list[tuple[tuple[str, int], int, list[tuple[str, str]]]]:
        """Chunks whose writes are done: [(unit, chunk, [(sha256, relpath), ...])]."""
        done = []
        while self.pending:
            unit, chunk, relpaths, futures = self.pending[0]
            if not (block or len(self.pending) > self.max_pending or all(f.done() for f in futures)):
                break
            wait(futures)
            self.pending.popleft()
            done.append((unit, chunk, list(zip([f.result() for f in futures], relpaths))))  # raises a write error
        return done


def generate_imagenet_c(samples: Sequence[tuple[str | Path, int]], classes: Sequence[str], out_dir: str | Path,
                        config: GenerationConfig = GenerationConfig(preset="imagenet"),
                        on_chunk: ChunkHook | None = None) -> dict:
    """Write an ImageNet-C style tree ``<corruption>/<severity>/<wnid>/<name>.JPEG`` (JPEG q85, §7.2).

    As released, every image is re-encoded at quality 85, so these files differ from in-memory corruption and
    ``jpeg_compression`` is compressed twice (§9 item 11); evaluate on the files for comparisons with the paper.

    Args:
        samples: [(image path, class index)] in the order of ``loaders.imagefolder.list_image_folder``.
        classes: class folder names (WordNet ids), indexed by the class index.
        out_dir: output folder; resumed when it holds a manifest of a run with the same settings.
        config: preset ("imagenet": Resize(256) + CenterCrop(224)), corruptions, severities, seed, device,
            chunk size, workers (decode processes and encoder threads).
        on_chunk: called after each chunk's files and record are on disk.

    Returns:
        The manifest as written to ``<out_dir>/manifest.json``.
    """
    config.validate()
    relnames, source = W.folder_source(samples, classes, config.source)
    out_dir = Path(out_dir)
    manifest = _open_output(out_dir, LAYOUT_JPEG, config, source)
    b, n = config.chunk_size(), len(samples)
    todo = {}  # unit -> chunks still to write
    for unit in [(c, s) for c in config.corruptions for s in config.severities]:
        if not _jpeg_unit_done(out_dir, manifest, unit, n, config.verify):
            todo[unit] = {k for k in range((n + b - 1) // b) if not _chunk_record_ok(out_dir, unit, k, b, n)}
    for unit in [u for u, chunks in todo.items() if not chunks]:  # killed between last chunk and finalisation
        _finalise_unit(out_dir, manifest, unit, n, b, classes)
    needed = sorted(set().union(*todo.values())) if todo else []
    if needed:
        _jpeg_chunks(samples, classes, relnames, needed, todo, out_dir, manifest, config, on_chunk)
    _finish(out_dir, manifest, config, lambda c: all(f"{c}/{s}" in manifest["files"] for s in config.severities))
    return manifest


def _jpeg_chunks(samples, classes, relnames, needed: list[int], todo: dict, out_dir: Path, manifest: dict,
                 config: GenerationConfig, on_chunk: ChunkHook | None) -> None:
    """Decode each needed chunk once, corrupt it for every unit that lacks it, encode on the thread pool."""
    b, n = config.chunk_size(), len(samples)
    batches = [list(range(k * b, min((k + 1) * b, n))) for k in needed]
    loader = DataLoader(FolderImages([p for p, _ in samples], config.preset), batch_sampler=batches,
                        num_workers=config.workers, pin_memory=torch.device(config.device).type == "cuda")
    total = sum(min(b, n - k * b) for chunks in todo.values() for k in chunks)
    with ThreadPoolExecutor(max(1, config.workers)) as pool, _bar(config, total, "ImageNet-C") as bar:
        sink = _JpegSink(pool, out_dir, max_pending=2 * max(1, config.workers) + 2)

        def collect(block: bool) -> None:
            for unit, k, entries in sink.finished(block):
                os.sync()  # the JPEGs skip per-file fsync (4.75M files); one flush before the record vouches for them
                atomic_write_text(_chunk_record(out_dir, unit, k), W.format_checksums(entries))
                todo[unit].discard(k)
                bar.update(len(entries))
                if on_chunk is not None:
                    on_chunk(unit[0], unit[1], k)
                if not todo[unit]:
                    _finalise_unit(out_dir, manifest, unit, n, b, classes)

        for k, clean in zip(needed, loader):
            clean = clean.to(config.device, non_blocking=True)
            for unit in [u for u, chunks in todo.items() if k in chunks]:
                generator = chunk_generator(config.seed, unit[0], unit[1], k, clean.device)
                out = corrupt_batch(clean, unit[0], unit[1], config.preset, generator)
                relpaths = [W.jpeg_relpath(unit[0], unit[1], wnid, name) for wnid, name in relnames[k * b:k * b + b]]
                sink.submit(unit, k, out.permute(0, 2, 3, 1).cpu().numpy(), relpaths)  # (B,3,S,S)->(B,S,S,3)
                collect(block=False)
        collect(block=True)


def _chunk_record(out_dir: Path, unit: tuple[str, int], chunk: int) -> Path:
    return out_dir / W.WORK_DIR / unit[0] / str(unit[1]) / f"chunk_{chunk:05d}.sha256"


def _chunk_record_ok(out_dir: Path, unit: tuple[str, int], chunk: int, b: int, n: int) -> bool:
    record = _chunk_record(out_dir, unit, chunk)
    try:
        entries = W.parse_checksums(record.read_text(), record)
    except (OSError, ValueError):
        return False
    return len(entries) == min(b, n - chunk * b) and W.verify_checksums(out_dir, entries, rehash=False) is None


def _finalise_unit(out_dir: Path, manifest: dict, unit: tuple[str, int], n: int, b: int,
                   classes: Sequence[str]) -> None:
    """Concatenate the chunk records into ``checksums/<corruption>_<severity>.sha256`` and record the unit."""
    records = [_chunk_record(out_dir, unit, k) for k in range((n + b - 1) // b)]
    text = "".join(r.read_text() for r in records)
    path = W.checksum_list_path(out_dir, *unit)
    atomic_write_text(path, text)
    W.remove_stale_temps(out_dir / unit[0] / str(unit[1]), recursive=True)
    for wnid in classes:  # every class folder, even one that --limit left empty: readers index labels by folder
        (out_dir / unit[0] / str(unit[1]) / wnid).mkdir(parents=True, exist_ok=True)
    manifest["files"][f"{unit[0]}/{unit[1]}"] = {
        "files": n, "checksums": str(path.relative_to(out_dir)), "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "shape": [_preset_side(manifest), _preset_side(manifest), 3], "dtype": "uint8",
        "encoding": f"JPEG quality {W.JPEG_QUALITY}, optimize={W.JPEG_OPTIMIZE}, Pillow default 4:2:0"}
    W.save_manifest(out_dir, manifest)
    shutil.rmtree(out_dir / W.WORK_DIR / unit[0] / str(unit[1]), ignore_errors=True)


def _preset_side(manifest: dict) -> int:
    from corruptions.presets import PRESETS

    return PRESETS[manifest["settings"]["preset"]]


def _jpeg_unit_done(out_dir: Path, manifest: dict, unit: tuple[str, int], n: int, verify: bool) -> bool:
    """Whether a (corruption, severity) folder is finished: its checksum list matches the manifest and every
    listed file is present (re-hashed with ``verify``). A damaged unit is dropped and regenerated."""
    key = f"{unit[0]}/{unit[1]}"
    entry, path = manifest["files"].get(key), W.checksum_list_path(out_dir, *unit)
    if entry is None:
        return False
    try:
        text = path.read_text()
        entries = W.parse_checksums(text, path)
        problem = None if hashlib.sha256(text.encode()).hexdigest() == entry["sha256"] else f"{path} was modified"
    except (OSError, ValueError) as exc:
        problem = str(exc)
    if problem is None:
        problem = (f"{path} lists {len(entries)} files, expected {n}" if len(entries) != n
                   else W.verify_checksums(out_dir, entries, rehash=verify))
    if problem is not None:
        warnings.warn(f"{key} is incomplete ({problem}); regenerating it", stacklevel=2)
        del manifest["files"][key]
        W.save_manifest(out_dir, manifest)
    return problem is None
