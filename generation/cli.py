"""Command line of the corruptions package: ``generate`` -C sets in the released formats, draw a visual ``grid``.

    python -m corruptions generate --source cifar10 --data-root ~/data --out ~/data/generated/CIFAR-10-C
    python -m corruptions generate --source imagefolder --data-root ~/imagenet/val --out ~/data/generated/ImageNet-C
    python -m corruptions grid --images photo.jpg --preset imagenet --out grid.png

This entry point is a CLI, so (like train.py / evaluate.py) it may import loaders/; the library modules of
corruptions/ import only runtime/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from corruptions import SEVERITIES, SUBSETS, get_corruption_names
from corruptions.writers import resolve_device

ARRAY_SOURCES = ("cifar10", "cifar100", "digits")
SOURCES = (*ARRAY_SOURCES, "imagefolder")


def parse_corruptions(text: str) -> tuple[str, ...]:
    """``"common"`` / ``"all"`` / ``"noise"`` ... or a comma list of names; returned in canonical order."""
    from corruptions import ALL_CORRUPTIONS

    names: list[str] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item in SUBSETS:
            names.extend(get_corruption_names(item))
        elif item in ALL_CORRUPTIONS:
            names.append(item)
        else:
            raise argparse.ArgumentTypeError(f"unknown corruption {item!r}; valid: {', '.join(ALL_CORRUPTIONS)} "
                                             f"or a subset: {', '.join(SUBSETS)}")
    if not names:
        raise argparse.ArgumentTypeError("no corruption given")
    return tuple(c for c in ALL_CORRUPTIONS if c in set(names))


def parse_severities(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        values = ()
    if not values or any(v not in SEVERITIES for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"severities must be distinct integers in 1..5 separated by commas, "
                                         f"got {text!r}")
    return tuple(sorted(values))


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corruptions", add_help=add_help,
                                     description="Generate -C / -P datasets in the released formats; draw grids.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a -C set (CIFAR-C .npy files or an ImageNet-C JPEG tree)")
    gen.add_argument("--source", choices=SOURCES, required=True,
                     help="clean test set: CIFAR pickles, the digits quickstart set, or an ImageFolder tree")
    gen.add_argument("--data-root", default=None,
                     help="folder holding cifar-10-batches-py/ or cifar-100-python/ (default $AUGMIX_DATA_ROOT or "
                          "./data); for imagefolder the folder of <wnid>/ class folders itself (e.g. ImageNet val)")
    gen.add_argument("--out", required=True, help="output folder; an interrupted run resumes there")
    _add_common(gen)
    gen.add_argument("--severities", type=parse_severities, default=SEVERITIES,
                     help="comma list, stored in this order (default 1,2,3,4,5 as released)")
    gen.add_argument("--batch-size", type=int, default=None,
                     help="images per chunk: the unit of work, randomness and resume (default 500 at 32 px, 250 "
                          "at 64 px, 100 at 224 px); part of the seed, so keep it to reproduce a set")
    gen.add_argument("--limit", type=int, default=None, help="only the first N test images (default all)")
    gen.add_argument("--workers", type=int, default=4,
                     help="ImageFolder: decode processes and JPEG encoder threads (default 4)")
    gen.add_argument("--verify", action="store_true",
                     help="on resume re-hash finished files against the manifest (default: size/existence)")
    from corruptions import generate_p

    generate_p.add_arguments(sub.add_parser("generate-p", help="write a -P set (CIFAR-P .npy files or ImageNet-P "
                                                                "MP4 videos)"))
    grid = sub.add_parser("grid", help="PNG grid: rows = corruptions, columns = clean + severities")
    grid.add_argument("--images", nargs="+", default=None, help="image files (any size; pre-processed per preset)")
    grid.add_argument("--source", choices=ARRAY_SOURCES, default=None, help="take images from a test set instead")
    grid.add_argument("--data-root", default=None, help="as for generate (CIFAR sources)")
    grid.add_argument("--num-images", type=int, default=1, help="images taken from --source (default 1)")
    grid.add_argument("--out", required=True, help="PNG file to write")
    grid.add_argument("--cell-size", type=int, default=None,
                      help="displayed cell side in pixels (default: the image size, at least 96; nearest "
                           "up-scaling, area down-scaling)")
    grid.add_argument("--colors", type=int, default=None,
                      help="write a palette PNG with this many colours (smaller file for docs; default exact RGB)")
    _add_common(grid)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("cifar", "tiny", "imagenet"), default=None,
                        help="parameter tables and image size (default: cifar for CIFAR/digits, imagenet for "
                             "image folders and --images)")
    parser.add_argument("--corruptions", type=parse_corruptions, default=None,
                        help="comma list of names or a subset (common, extra, all, noise, blur, weather, "
                             "digital); default all 19")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default cuda when available)")


def load_array_source(source: str, data_root: str | None, limit: int | None = None):
    """(images (N, 32, 32, 3) uint8, labels (N,) int64, dataset path) of a test set, first ``limit`` images."""
    from runtime.files import data_root as default_root

    if source == "digits":
        from loaders.digits import load_digits

        images, labels = load_digits(train=False)
        path = "sklearn.datasets.load_digits (upsampled to 32x32 RGB, 500-image test split)"
    else:
        from loaders.cifar import cifar_folder, load_cifar

        root = default_root(data_root)
        images, labels = load_cifar(root, source, train=False)
        path = str(cifar_folder(root, source).resolve())
    return images[:limit], labels[:limit], path


def run_generate(args: argparse.Namespace) -> dict:
    from corruptions.generate import GenerationConfig, generate_cifar_c, generate_imagenet_c

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    preset = args.preset or ("imagenet" if args.source == "imagefolder" else "cifar")
    config = dict(preset=preset, corruptions=args.corruptions or get_corruption_names("all"),
                  severities=args.severities, seed=args.seed, device=resolve_device(args.device),
                  batch_size=args.batch_size, workers=args.workers, verify=args.verify)
    if args.source == "imagefolder":
        from loaders.imagefolder import list_image_folder

        if args.data_root is None:
            raise ValueError("--source imagefolder needs --data-root: the folder of <wnid>/ class folders")
        samples, classes = list_image_folder(args.data_root)
        source = {"name": "imagefolder", "path": str(Path(args.data_root).resolve())}
        cfg = GenerationConfig(**config, source=source)
        return generate_imagenet_c(samples[:args.limit], classes, args.out, cfg)
    images, labels, path = load_array_source(args.source, args.data_root, args.limit)
    cfg = GenerationConfig(**config, source={"name": args.source, "path": path, "split": "test"})
    return generate_cifar_c(images, labels, args.out, cfg)


def run_grid(args: argparse.Namespace) -> Path:
    import torch

    from corruptions.grid import load_grid_images, save_grid

    if (args.images is None) == (args.source is None):
        raise ValueError("grid needs exactly one of --images PATH... or --source NAME")
    preset = args.preset or ("imagenet" if args.images else "cifar")
    if args.images:
        images = load_grid_images(args.images, preset)
    else:
        array, _, _ = load_array_source(args.source, args.data_root, args.num_images)
        images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()  # (N,H,W,3) -> (N,3,H,W)
    corruptions = args.corruptions or get_corruption_names("all")
    return save_grid(images.to(resolve_device(args.device)), args.out, corruptions, preset, seed=args.seed,
                     cell_size=args.cell_size, colors=args.colors)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        if args.command == "generate":
            manifest = run_generate(args)
            print(f"wrote {len(manifest['corruptions'])} corruption(s) x {len(args.severities)} severities of "
                  f"{manifest['source']['num_images']} images to {args.out} (manifest.json)")
        elif args.command == "generate-p":
            from corruptions import generate_p

            manifest = generate_p.run(args)
            print(f"wrote {len(manifest['perturbations'])} perturbation(s) of {manifest['source']['num_images']} "
                  f"videos to {args.out} (manifest.json)")
        else:
            print(f"wrote {run_grid(args)}")
    except (ValueError, OSError) as exc:  # bad input: one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    sys.exit(main())
