"""The flags and the runs behind ``generate.py``: ``c`` writes a -C set, ``p`` a -P set, ``grid`` a PNG of the
corruptions. Each ``add_*_arguments`` fills a (sub)parser; each ``run_*`` takes the parsed flags.

Every numeric flag states its valid range and is checked when parsed (one line naming the flag and the value);
names are checked against the registries, with the closest valid name suggested.
"""

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
from generation.output import OutputFolder, load_manifest
from generation.shards import Shard, parse_shard, resolve_shard
from generation.sources import ARRAY_SOURCES, SOURCES, open_source
from runtime.arguments import closest, int_in
from runtime.devices import resolve_device


def _unknown(kind: str, item: str, choices: list[str]) -> argparse.ArgumentTypeError:
    close = closest(item, choices)
    hint = f"did you mean {close!r}? " if close else ""
    return argparse.ArgumentTypeError(f"unknown {kind} {item!r}; {hint}valid: {', '.join(choices)}")


def _names(text: str, kind: str, valid: tuple[str, ...], subsets) -> tuple[str, ...]:
    """A comma list of names and subset names, returned in canonical (``valid``) order."""
    names: set[str] = set()
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item in subsets:
            names.update(subsets[item])
        elif item in valid:
            names.add(item)
        else:
            raise _unknown(kind, item, [*valid, *subsets])
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
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v not in SEVERITIES for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"severities must be distinct integers in 1..5 separated by commas, "
                                         f"got {text!r}")
    return tuple(sorted(values))


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every command: the run seed and the device."""
    parser.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="run seed, >= 0 (default 0)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto: cuda when available)")


def _add_set_arguments(parser: argparse.ArgumentParser, unit: str, chunk_default: str, files: str) -> None:
    """The flags shared by ``c`` and ``p``: source, output, seeding, device, chunking, workers, resume checks,
    sharding."""
    parser.add_argument("--source", choices=SOURCES, default=None,
                        help="clean test set: CIFAR pickles, the digits quickstart set, or an ImageFolder tree "
                             "(required, except with --finalize)")
    parser.add_argument("--data-root", default=None,
                        help="folder holding cifar-10-batches-py/ or cifar-100-python/ (default $AUGMIX_DATA_ROOT or "
                             "./data); for imagefolder the folder of <wnid>/ class folders itself (e.g. ImageNet val)")
    parser.add_argument("--out", required=True, help="output folder; an interrupted run resumes there")
    _add_run_arguments(parser)
    parser.add_argument("--batch-size", type=int_in(1), default=None,
                        help=f"{unit} per chunk, >= 1: the unit of work, randomness and resume (default "
                             f"{chunk_default}); part of the seed, so keep it to reproduce a set")
    parser.add_argument("--limit", type=int_in(1), default=None, help="only the first N >= 1 test images (default all)")
    parser.add_argument("--workers", type=int_in(0, 256), default=4,
                        help=f"imagefolder: decode processes and {files} encoder threads, 0..256 (default 4; 0: "
                             "decode in the main process, one encoder thread)")
    parser.add_argument("--shard", type=parse_shard, default=None, metavar="K/N",
                        help="write only shard K of N (K in 0..N-1) of the chunks, e.g. from a job array: "
                             "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; every shard uses the same --out "
                             "and flags. Under torchrun the default is RANK/WORLD_SIZE. The last shard to finish "
                             "assembles and completes the set")
    parser.add_argument("--finalize", action="store_true",
                        help="only assemble and complete the set in --out from the chunks its shards wrote (needs "
                             "no source); names the chunks still missing")


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
    parser.add_argument("--difficulty", type=int_in(1, 3), default=1,
                        help="noise perturbations: write <name>_2 / <name>_3 with stronger noise (default 1)")
    parser.add_argument("--x264-preset", choices=video.X264_PRESETS, default=video.X264_PRESET,
                        help="libx264 speed preset (default veryslow, as released; e.g. medium is ~3x faster)")
    parser.add_argument("--pix-fmt", choices=video.PIX_FMTS, default=video.PIX_FMT,
                        help="H.264 pixel format (default yuv444p, what the reference ffmpeg chose for RGB frames)")
    parser.add_argument("--verify", action="store_true",
                        help="on resume re-hash finished files against their records (default: size / existence)")
    return parser


def add_grid_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--images", nargs="+", default=None, help="image files (any size; pre-processed per preset)")
    parser.add_argument("--source", choices=ARRAY_SOURCES, default=None, help="take images from a test set instead")
    parser.add_argument("--data-root", default=None, help="as for c (CIFAR sources; default $AUGMIX_DATA_ROOT)")
    parser.add_argument("--num-images", type=int_in(1, 1000), default=1,
                        help="images taken from --source, 1..1000 (default 1)")
    parser.add_argument("--out", required=True, help="PNG file to write (an existing file is refused without "
                        "--overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out PNG (default: refuse)")
    parser.add_argument("--preset", choices=("cifar", "tiny", "imagenet"), default=None,
                        help="parameter tables and image size (default: cifar for --source, imagenet for --images)")
    parser.add_argument("--corruptions", type=parse_corruptions, default=None,
                        help="comma list of names or a subset (common, extra, all, ...); default all 19")
    _add_run_arguments(parser)
    parser.add_argument("--cell-size", type=int_in(8, 1024), default=None,
                        help="displayed cell side in pixels, 8..1024 (default: the image size, at least 96; nearest "
                             "up-scaling, area down-scaling)")
    parser.add_argument("--colors", type=int_in(2, 256), default=None,
                        help="write a palette PNG with this many colours, 2..256 (smaller file for docs; default "
                             "exact RGB)")
    return parser


def _start(args: argparse.Namespace) -> Shard:
    """Check the flags that argparse cannot check alone; return this process's shard."""
    if args.source is None:
        raise ValueError("--source is required (except with --finalize)")
    if args.source == "imagefolder" and args.data_root is None:
        raise ValueError("--source imagefolder needs --data-root: the folder of <wnid>/ class folders")
    return resolve_shard(args.shard)


def _device(args: argparse.Namespace) -> str:
    """``--device``, resolved; under torchrun a bare ``cuda`` means this process's GPU (LOCAL_RANK)."""
    from runtime.distributed import dist_env

    device = resolve_device(args.device)
    env = dist_env()
    if device.type == "cuda" and device.index is None and args.shard is None and env.enabled:
        device = resolve_device(f"cuda:{env.local_rank}")
    return str(device)


def finalize(args: argparse.Namespace, listed: str) -> dict:
    """``--finalize``: assemble and complete the set in ``--out`` from its shards' chunks; returns its manifest."""
    from generation.corruption_sets import finalize_corruption_set
    from generation.perturbation_sets import finalize_perturbation_set

    if args.shard is not None:
        raise ValueError("--finalize runs once, after every shard: drop --shard")
    out = Path(args.out)
    if load_manifest(out) is None:
        raise ValueError(f"--finalize: {out} holds no manifest.json of a generation; run the shards first")
    folder = OutputFolder(out)
    with folder.claim():
        manifest = load_manifest(out)
        if manifest.get(listed) is None or "requested" not in manifest:
            raise ValueError(f"--finalize: {out / 'manifest.json'} is not the manifest of a generate.py "
                             f"{'c' if listed == 'corruptions' else 'p'} set of this version")
        finish = finalize_corruption_set if listed == "corruptions" else finalize_perturbation_set
        missing = finish(folder, manifest)
    if missing:
        shown = ", ".join(f"{'/'.join(map(str, unit))} chunk {k}" for unit, k in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise ValueError(f"--finalize: {out} still lacks {len(missing)} chunk(s): {shown}{more}; rerun the shards "
                         "that write them (same flags), then --finalize again")
    return folder.manifest


def run_c(args: argparse.Namespace) -> dict:
    """Write the -C set (or this process's shard of it) the flags ask for; returns its manifest."""
    from generation.corruption_sets import GenerationConfig, generate_cifar_c, generate_imagenet_c

    if args.finalize:
        return finalize(args, "corruptions")
    shard = _start(args)
    device = _device(args)
    source = open_source(args.source, args.data_root, args.limit)
    config = GenerationConfig(
        preset=args.preset or ("imagenet" if source.is_folder else "cifar"),
        corruptions=args.corruptions or get_corruption_names("all"), severities=args.severities, seed=args.seed,
        device=device, batch_size=args.batch_size, workers=args.workers, verify=args.verify,
        source=source.described, shard=shard)
    if source.is_folder:
        return generate_imagenet_c(source.samples, source.classes, args.out, config)
    return generate_cifar_c(source.images, source.labels, args.out, config)


def run_p(args: argparse.Namespace) -> dict:
    """Write the -P set (or this process's shard of it) the flags ask for; returns its manifest."""
    from generation.perturbation_sets import PerturbationConfig, generate_cifar_p, generate_imagenet_p

    if args.finalize:
        return finalize(args, "perturbations")
    shard = _start(args)
    preset = args.preset or ("imagenet" if args.source == "imagefolder" else "cifar")
    if (preset == "imagenet") != (args.source == "imagefolder"):
        raise ValueError(f"--preset {preset} does not fit --source {args.source}: CIFAR-P (npy, 32 px) comes from "
                         "cifar10/cifar100/digits, ImageNet-P (MP4, 224 px) from an imagefolder")
    perturbations = args.perturbations or (PERTURBATIONS if args.difficulty == 1 else NOISE_PERTURBATIONS)
    for name in perturbations:  # fail before any work on an impossible difficulty
        resolve_perturbation(name, args.difficulty)
    device = _device(args)
    source = open_source(args.source, args.data_root, args.limit)
    config = PerturbationConfig(
        preset=preset, perturbations=perturbations, difficulty=args.difficulty, seed=args.seed,
        device=device, batch_size=args.batch_size, workers=args.workers,
        x264_preset=args.x264_preset, pix_fmt=args.pix_fmt, verify=args.verify, source=source.described,
        shard=shard)
    if source.is_folder:
        return generate_imagenet_p(source.samples, source.classes, args.out, config)
    return generate_cifar_p(source.images, source.labels, args.out, config)
def run_grid(args: argparse.Namespace) -> Path:
    """Write the PNG grid the flags ask for; returns its path."""
    import torch

    from generation.grid import load_grid_images, save_grid

    if (args.images is None) == (args.source is None):
        raise ValueError("grid needs exactly one of --images PATH... or --source NAME")
    if Path(args.out).exists() and not args.overwrite:
        raise ValueError(f"--out {args.out} already exists; pass --overwrite to replace it, or choose another path")
    preset = args.preset or ("imagenet" if args.images else "cifar")
    device = resolve_device(args.device)
    if args.images:
        images = load_grid_images(args.images, preset)
    else:
        source = open_source(args.source, args.data_root, args.num_images)
        images = torch.from_numpy(source.images).permute(0, 3, 1, 2).contiguous()  # (N,H,W,3) -> (N,3,H,W)
    corruptions = args.corruptions or get_corruption_names("all")
    return save_grid(images.to(device), args.out, corruptions, preset, seed=args.seed,
                     cell_size=args.cell_size, colors=args.colors)
