"""The flags and the runs behind ``generate.py``: ``c`` writes a -C set, ``p`` a -P set, ``grid`` a PNG of the
corruptions. Each ``add_*_arguments`` fills a (sub)parser; each ``run_*`` takes the parsed flags."""

from __future__ import annotations

import argparse
from pathlib import Path

from corruptions import ALL_CORRUPTIONS, SEVERITIES, SUBSETS, get_corruption_names
from corruptions.sequences import (
    ALL_PERTURBATION_NAMES,
    NOISE_PERTURBATIONS,
    PERTURBATION_SUBSETS,
    PERTURBATIONS,
    resolve_perturbation,
)
from generation import video
from generation.sources import ARRAY_SOURCES, SOURCES, open_source
from runtime.devices import resolve_device


def _names(text: str, kind: str, valid: tuple[str, ...], subsets) -> tuple[str, ...]:
    """A comma list of names and subset names, returned in canonical (``valid``) order."""
    names: set[str] = set()
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item in subsets:
            names.update(subsets[item])
        elif item in valid:
            names.add(item)
        else:
            raise argparse.ArgumentTypeError(f"unknown {kind} {item!r}; valid: {', '.join(valid)} or a subset: "
                                             f"{', '.join(subsets)}")
    if not names:
        raise argparse.ArgumentTypeError(f"no {kind} given")
    return tuple(n for n in valid if n in names)


def parse_corruptions(text: str) -> tuple[str, ...]:
    """``"common"`` / ``"all"`` / ``"noise"`` ... or a comma list of names; returned in canonical order."""
    return _names(text, "corruption", ALL_CORRUPTIONS, SUBSETS)


def parse_perturbations(text: str) -> tuple[str, ...]:
    """A comma list of names (``gaussian_noise_2`` included) or subsets (imagenet-p-test, cifar-p-script, all, ...)."""
    return _names(text, "perturbation", ALL_PERTURBATION_NAMES, PERTURBATION_SUBSETS)


def parse_severities(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        values = ()
    if not values or any(v not in SEVERITIES for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"severities must be distinct integers in 1..5 separated by commas, "
                                         f"got {text!r}")
    return tuple(sorted(values))


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every command: the run seed and the device."""
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto: cuda when available)")


def _add_set_arguments(parser: argparse.ArgumentParser, unit: str, chunk_default: str, files: str) -> None:
    """The flags shared by ``c`` and ``p``: source, output, seeding, device, chunking, workers, resume checks."""
    parser.add_argument("--source", choices=SOURCES, required=True,
                        help="clean test set: CIFAR pickles, the digits quickstart set, or an ImageFolder tree")
    parser.add_argument("--data-root", default=None,
                        help="folder holding cifar-10-batches-py/ or cifar-100-python/ (default $AUGMIX_DATA_ROOT or "
                             "./data); for imagefolder the folder of <wnid>/ class folders itself (e.g. ImageNet val)")
    parser.add_argument("--out", required=True, help="output folder; an interrupted run resumes there")
    _add_run_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"{unit} per chunk: the unit of work, randomness and resume (default {chunk_default}); "
                             "part of the seed, so keep it to reproduce a set")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images (default all)")
    parser.add_argument("--workers", type=int, default=4,
                        help=f"imagefolder: decode processes and {files} encoder threads (default 4)")


def add_c_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _add_set_arguments(parser, "images", "500 at 32 px, 250 at 64 px, 100 at 224 px", "JPEG")
    parser.add_argument("--preset", choices=("cifar", "tiny", "imagenet"), default=None,
                        help="parameter tables and image size (default: cifar for CIFAR/digits, imagenet for "
                             "image folders)")
    parser.add_argument("--corruptions", type=parse_corruptions, default=None,
                        help="comma list of names or a subset (common, extra, all, noise, blur, weather, digital); "
                             "default all 19")
    parser.add_argument("--severities", type=parse_severities, default=SEVERITIES,
                        help="comma list, stored in this order (default 1,2,3,4,5 as released)")
    parser.add_argument("--verify", action="store_true",
                        help="on resume re-hash finished files against the manifest (default: size / existence)")
    return parser


def add_p_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _add_set_arguments(parser, "videos", "100 at 32 px, 8 at 224 px", "video")
    parser.add_argument("--preset", choices=("cifar", "imagenet"), default=None,
                        help="default: cifar for CIFAR/digits (npy), imagenet for image folders (MP4)")
    parser.add_argument("--perturbations", type=parse_perturbations, default=None,
                        help="comma list of names or subsets (imagenet-p-test, imagenet-p-validation, cifar-p-script, "
                             "cifar-p-benchmark, noise, all); default all 14 (the 3 noise ones with --difficulty 2/3)")
    parser.add_argument("--difficulty", type=int, choices=(1, 2, 3), default=1,
                        help="noise perturbations: write <name>_2 / <name>_3 with stronger noise (default 1)")
    parser.add_argument("--x264-preset", default=video.X264_PRESET,
                        help="libx264 speed preset (default veryslow, as released; e.g. medium is ~3x faster)")
    parser.add_argument("--pix-fmt", choices=video.PIX_FMTS, default=video.PIX_FMT,
                        help="H.264 pixel format (default yuv444p, what the reference ffmpeg chose for RGB frames)")
    parser.add_argument("--verify", action="store_true",
                        help="on resume re-hash npy files / decode every video (default: size / existence)")
    return parser


def add_grid_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--images", nargs="+", default=None, help="image files (any size; pre-processed per preset)")
    parser.add_argument("--source", choices=ARRAY_SOURCES, default=None, help="take images from a test set instead")
    parser.add_argument("--data-root", default=None, help="as for c (CIFAR sources; default $AUGMIX_DATA_ROOT)")
    parser.add_argument("--num-images", type=int, default=1, help="images taken from --source (default 1)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--preset", choices=("cifar", "tiny", "imagenet"), default=None,
                        help="parameter tables and image size (default: cifar for --source, imagenet for --images)")
    parser.add_argument("--corruptions", type=parse_corruptions, default=None,
                        help="comma list of names or a subset (common, extra, all, ...); default all 19")
    _add_run_arguments(parser)
    parser.add_argument("--cell-size", type=int, default=None,
                        help="displayed cell side in pixels (default: the image size, at least 96; nearest "
                             "up-scaling, area down-scaling)")
    parser.add_argument("--colors", type=int, default=None,
                        help="write a palette PNG with this many colours (smaller file for docs; default exact RGB)")
    return parser


def run_c(args: argparse.Namespace) -> dict:
    """Write the -C set the flags ask for; returns its manifest."""
    from generation.corruption_sets import GenerationConfig, generate_cifar_c, generate_imagenet_c

    source = open_source(args.source, args.data_root, args.limit)
    config = GenerationConfig(
        preset=args.preset or ("imagenet" if source.is_folder else "cifar"),
        corruptions=args.corruptions or get_corruption_names("all"), severities=args.severities, seed=args.seed,
        device=str(resolve_device(args.device)), batch_size=args.batch_size, workers=args.workers,
        verify=args.verify, source=source.described)
    if source.is_folder:
        return generate_imagenet_c(source.samples, source.classes, args.out, config)
    return generate_cifar_c(source.images, source.labels, args.out, config)


def run_p(args: argparse.Namespace) -> dict:
    """Write the -P set the flags ask for; returns its manifest."""
    from generation.perturbation_sets import PerturbationConfig, generate_cifar_p, generate_imagenet_p

    preset = args.preset or ("imagenet" if args.source == "imagefolder" else "cifar")
    if (preset == "imagenet") != (args.source == "imagefolder"):
        raise ValueError(f"--preset {preset} does not fit --source {args.source}: CIFAR-P (npy, 32 px) comes from "
                         "cifar10/cifar100/digits, ImageNet-P (MP4, 224 px) from an imagefolder")
    perturbations = args.perturbations or (PERTURBATIONS if args.difficulty == 1 else NOISE_PERTURBATIONS)
    for name in perturbations:  # fail before any work on an impossible difficulty
        resolve_perturbation(name, args.difficulty)
    source = open_source(args.source, args.data_root, args.limit)
    config = PerturbationConfig(
        preset=preset, perturbations=perturbations, difficulty=args.difficulty, seed=args.seed,
        device=str(resolve_device(args.device)), batch_size=args.batch_size, workers=args.workers,
        x264_preset=args.x264_preset, pix_fmt=args.pix_fmt, verify=args.verify, source=source.described)
    if source.is_folder:
        return generate_imagenet_p(source.samples, source.classes, args.out, config)
    return generate_cifar_p(source.images, source.labels, args.out, config)


def run_grid(args: argparse.Namespace) -> Path:
    """Write the PNG grid the flags ask for; returns its path."""
    import torch

    from generation.grid import load_grid_images, save_grid

    if (args.images is None) == (args.source is None):
        raise ValueError("grid needs exactly one of --images PATH... or --source NAME")
    preset = args.preset or ("imagenet" if args.images else "cifar")
    if args.images:
        images = load_grid_images(args.images, preset)
    else:
        source = open_source(args.source, args.data_root, args.num_images)
        images = torch.from_numpy(source.images).permute(0, 3, 1, 2).contiguous()  # (N,H,W,3) -> (N,3,H,W)
    corruptions = args.corruptions or get_corruption_names("all")
    return save_grid(images.to(resolve_device(args.device)), args.out, corruptions, preset, seed=args.seed,
                     cell_size=args.cell_size, colors=args.colors)
