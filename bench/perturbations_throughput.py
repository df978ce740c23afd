"""How many -P videos per second does each batched perturbation sequence make, against the reference's per-image
way (one PIL / OpenCV / scikit-image / SciPy call per frame, as make_cifar_p.py and make_imagenet_p.py loop), at
32 px (CIFAR-P) and 224 px (ImageNet-P)? How long would CIFAR-10-P take?

    python bench/perturbations_throughput.py [--quick] [--device cpu|cuda] [--threads N] [--synthetic] [--save]

Both run in this process on the same images (scikit-image's public-domain photos; --synthetic: uniform noise).
The peer is the per-image transcription in tests/perturbation_oracles.py (the tests' oracle: our output matches it
exactly or within one grey level), with imagecorruptions' NumPy port standing in for Wand/ImageMagick motion blur.
Sequence work only: no file writing, no H.264 encoding (x264 veryslow costs ~0.5 s per 224-px video on one core).
The CIFAR-10-P estimate is 10,000 videos of each of the 14 sequences at the measured 32-px rates.

A good result: on a GPU, ours far above the peer for every sequence; on a CPU, ours comparable to the per-image
loop (the warps redo Pillow's float64 and OpenCV's fixed-point arithmetic per pixel, which Pillow's C loops do
cheaply) and CIFAR-10-P in well under an hour of sequence work. Last line: ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corruptions.sequences import (  # noqa: E402
    BRIGHTNESS_DELTAS,
    GAUSSIAN_BLUR,
    MOTION,
    NOISE_LEVELS,
    PERTURBATIONS,
    SPATTER,
    make_sequences,
)
from runtime.environment import environment_record, torch_version_tag  # noqa: E402
from tests import perturbation_oracles as R  # noqa: E402

CIFAR_P_VIDEOS = 10_000
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute on 2 cores (default off)")
    parser.add_argument("--device", default="cpu", help="where our sequences run (default cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice; 1 is faster on a busy machine)")
    parser.add_argument("--synthetic", action="store_true", help="uniform noise images instead of photos")
    parser.add_argument("--perturbations", default="all", help="comma list or 'all' (default all 14)")
    parser.add_argument("--no-peer", action="store_true", help="skip the per-image peer (default: run it)")
    parser.add_argument("--save", action="store_true", help="write the table to bench/results/ (default off)")
    return parser


def make_images(num: int, preset: str, synthetic: bool, seed: int = 0) -> list[np.ndarray]:
    """``num`` clean inputs: 32x32 images (cifar) or Resize(256) images of varied aspect ratios (imagenet)."""
    rng = np.random.default_rng(seed)
    if synthetic:
        shapes = [(32, 32)] * num if preset == "cifar" else [(256, int(rng.integers(256, 384))) for _ in range(num)]
        return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    import skimage.data
    from PIL import Image

    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    out = []
    for i in range(num):  # input preparation, outside every timed region
        photo = photos[i % len(photos)]
        photo = np.stack([photo] * 3, -1) if photo.ndim == 2 else photo[..., :3]
        h, w = photo.shape[:2]
        crop_h, crop_w = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - crop_h + 1), rng.integers(0, w - crop_w + 1)
        part = np.ascontiguousarray(photo[top:top + crop_h, left:left + crop_w])
        out.append(np.asarray(Image.fromarray(part).resize((32, 32), Image.BOX)) if preset == "cifar"
                   else R.resize_256(part))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(canvas: torch.Tensor, sizes: torch.Tensor | None, perturbation: str, preset: str,
              repeats: int) -> list[float]:
    """Seconds per batched call on every video, after a one-video warm-up (CUDA: synchronised)."""
    kwargs = {} if sizes is None else {"sizes": sizes}
    warm = {} if sizes is None else {"sizes": sizes[:1]}
    make_sequences(canvas[:1], perturbation, preset, generator=_generator(0, canvas.device), **warm)
    times = []
    for r in range(repeats):
        generator = _generator(r, canvas.device)
        _sync(canvas.device)
        start = time.perf_counter()
        make_sequences(canvas, perturbation, preset, generator=generator, **kwargs)
        _sync(canvas.device)
        times.append(time.perf_counter() - start)
    return times


def _generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def peer_video(image: np.ndarray, perturbation: str, preset: str, rng: np.random.RandomState) -> np.ndarray:
    """One video the reference's way: per frame, one library call per image."""
    if perturbation in ("translate", "rotate", "scale", "shear", "tilt", "zoom_blur"):
        return R.geometric_reference(image, perturbation, preset)
    crop = R.center_crop(image, R.CROP[preset])
    side = crop.shape[0]
    if perturbation in NOISE_LEVELS[preset]:
        return R.noise_reference(crop, perturbation, NOISE_LEVELS[preset][perturbation][0], rng)
    if perturbation == "brightness":
        return np.stack([R.brightness_reference(crop, d) for d in BRIGHTNESS_DELTAS[preset]])
    if perturbation == "gaussian_blur":
        sigmas, truncate = GAUSSIAN_BLUR[preset]
        return np.stack([R.gaussian_blur_reference(crop, s, truncate) for s in sigmas])
    if perturbation == "motion_blur":
        radius, sigma, angles = MOTION[preset]
        return np.stack([R.motion_blur_reference(crop, radius, sigma, a) for a in angles])
    if perturbation == "snow":
        return R.snow_reference(crop, rng.normal(size=(side, side), loc=0.05, scale=0.3), preset)
    p = SPATTER[preset]
    return R.spatter_reference(crop, rng.normal(size=(side, side), loc=p.loc, scale=p.scale), preset)


def time_peer(images: list[np.ndarray], perturbation: str, preset: str) -> float:
    """Seconds for the peer to make one video of every image, one by one (after a one-video warm-up)."""
    rng = np.random.RandomState(0)
    peer_video(images[0], perturbation, preset, rng)  # imports, JIT-free but caches
    start = time.perf_counter()
    for image in images:
        peer_video(image, perturbation, preset, rng)
    return time.perf_counter() - start


def measure(perturbations, preset: str, args, device: torch.device) -> dict[str, dict]:
    quick = args.quick
    ours_n = {"cifar": 20 if quick else 500, "imagenet": 2 if quick else 16}[preset]
    peer_n = {"cifar": 2 if quick else 20, "imagenet": 1 if quick else 2}[preset]
    repeats = 1 if quick else 3
    images = make_images(ours_n, preset, args.synthetic)
    canvas, sizes = R.to_canvas(images)
    canvas, sizes = canvas.to(device), (sizes.to(device) if preset == "imagenet" else None)
    rows = {}
    for perturbation in perturbations:
        times = time_ours(canvas, sizes, perturbation, preset, repeats)
        row = {"ours_videos_s": ours_n / statistics.median(times), "ours_spread_s": [min(times), max(times)],
               "videos": ours_n}
        if not args.no_peer:
            row["peer_videos_s"] = peer_n / time_peer(images[:peer_n], perturbation, preset)
            row["ratio"] = row["ours_videos_s"] / row["peer_videos_s"]
        rows[perturbation] = row
        print(f"  {preset:>8} {perturbation:<15} ours {row['ours_videos_s']:>9.1f} videos/s   peer "
              f"{row.get('peer_videos_s', float('nan')):>7.2f} videos/s", flush=True)
    return rows


def environment(device: torch.device) -> dict:
    """Versions and hardware (runtime.environment), the peer and the 1-minute load at the start."""
    import cv2
    import PIL

    peer = f"per-image PIL {PIL.__version__} / OpenCV {cv2.__version__} / NumPy (tests/perturbation_oracles.py)"
    return environment_record(device, peer=peer, load_avg_start=os.getloadavg()[0])


def table(rows_32: dict, rows_224: dict) -> str:
    lines = ["| perturbation | ours 32 px (videos/s) | peer 32 px | ratio | ours 224 px (videos/s) | peer 224 px | "
             "ratio |", "|---|---:|---:|---:|---:|---:|---:|"]

    def cells(row: dict | None) -> str:
        if row is None:
            return "n/a | n/a | n/a"
        peer = f"{row['peer_videos_s']:.2f}" if "peer_videos_s" in row else "n/a"
        ratio = f"{row['ratio']:.1f}x" if "ratio" in row else "n/a"
        return f"{row['ours_videos_s']:.1f} | {peer} | {ratio}"

    for name in PERTURBATIONS:
        if name in rows_32 or name in rows_224:
            lines.append(f"| {name} | {cells(rows_32.get(name))} | {cells(rows_224.get(name))} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    wanted = PERTURBATIONS if args.perturbations == "all" else tuple(args.perturbations.split(","))
    unknown = [p for p in wanted if p not in PERTURBATIONS]
    if unknown:
        raise SystemExit(f"unknown perturbation(s) {unknown}; valid: {', '.join(PERTURBATIONS)}")
    env = environment(device)
    print(f"# perturbations_throughput  {json.dumps(env)}")
    print(f"difficulty 1; ours: one batched call on all videos per repeat, median of {1 if args.quick else 3}; "
          "peer: per-image, per-frame loop")
    rows_32 = measure(wanted, "cifar", args, device)
    rows_224 = measure(wanted, "imagenet", args, device)
    print("\n" + table(rows_32, rows_224))
    estimate = sum(CIFAR_P_VIDEOS / row["ours_videos_s"] for row in rows_32.values())
    summary = {"env": env, "rows_32": rows_32, "rows_224": rows_224, "cifar_p_estimate_s": estimate,
               "cifar_p_estimate_covers": len(rows_32)}
    if not args.no_peer:
        summary["cifar_p_peer_estimate_s"] = sum(CIFAR_P_VIDEOS / row["peer_videos_s"] for row in rows_32.values())
    print(f"\nCIFAR-10-P estimate ({len(rows_32)} sequences x {CIFAR_P_VIDEOS} videos, sequence work only): "
          f"ours {estimate:.0f} s" + (f", per-image peer {summary['cifar_p_peer_estimate_s']:.0f} s"
                                      if not args.no_peer else ""))
    env["load_avg_end"] = os.getloadavg()[0]
    if args.save:
        tag = "gpu" if device.type == "cuda" else "cpu"
        out = Path(__file__).parent / "results" / f"perturbations_throughput-{tag}-{torch_version_tag()}.md"
        out.write_text(f"# perturbations_throughput\n\n{json.dumps(env)}\n\n{table(rows_32, rows_224)}\n")
    print("BENCH " + json.dumps(summary, default=float))
    return summary


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    main(get_args_parser().parse_args())
