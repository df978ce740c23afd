"""Generate the -C and -P sets in the released formats, and a visual grid of the corruptions.

    python generate.py c --source cifar10 --out data/generated/CIFAR-10-C              # CIFAR-10-C .npy files
    python generate.py c --source imagefolder --data-root /data/imagenet/val --out data/generated/ImageNet-C
    python generate.py p --source cifar10 --out data/generated/CIFAR-10-P              # CIFAR-10-P .npy files
    python generate.py grid --images photo.jpg --preset imagenet --out grid.png        # visual check

Every set is seeded per chunk, written atomically and resumed by running the same command again; its
manifest.json records the settings, versions and checksums and marks it as generated, not released.
"""

from __future__ import annotations

import argparse
import sys

from generation.cli import add_c_arguments, add_grid_arguments, add_p_arguments, run_c, run_grid, run_p


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="generate.py", add_help=add_help,
                                     description="Generate -C / -P datasets in the released formats; draw grids.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_c_arguments(commands.add_parser("c", help="write a -C set (CIFAR-C .npy files or an ImageNet-C JPEG tree)"))
    add_p_arguments(commands.add_parser("p", help="write a -P set (CIFAR-P .npy files or ImageNet-P MP4 videos)"))
    add_grid_arguments(commands.add_parser("grid", help="PNG grid: rows = corruptions, columns = clean + severities"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        if args.command == "c":
            manifest = run_c(args)
            print(f"wrote {len(manifest['corruptions'])} corruption(s) x {len(args.severities)} severities of "
                  f"{manifest['source']['num_images']} images to {args.out} (manifest.json)")
        elif args.command == "p":
            manifest = run_p(args)
            done = manifest["perturbations"]
            print(f"wrote {len(done)} perturbation(s) ({', '.join(done)}) of {manifest['source']['num_images']} "
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
