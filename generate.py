"""Generate the -C and -P sets in the released formats, and a visual grid of the corruptions.

    python generate.py c --source cifar10 --out data/generated/CIFAR-10-C              # CIFAR-10-C .npy files
    python generate.py c --source imagefolder --data-root /data/imagenet/val --out data/generated/ImageNet-C
    python generate.py p --source cifar10 --out data/generated/CIFAR-10-P              # CIFAR-10-P .npy files
    python generate.py grid --images photo.jpg --preset imagenet --out grid.png        # visual check

    python generate.py c ... --shard 3/8          # shard 3 of 8 of a job array (torchrun: RANK/WORLD_SIZE)
    python generate.py c --finalize --out DIR     # assemble what the shards wrote, if the last one did not

Every set is seeded per chunk, written atomically and resumed by running the same command again; its
manifest.json records the settings, versions and checksums and marks it as generated, not released.

Exit status: 0 done, 2 a usage or data error (the command or the input files need fixing), 1 an environment error
(disk full, read-only or busy output folder, missing device).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from generation.cli import add_c_arguments, add_grid_arguments, add_p_arguments, run_c, run_grid, run_p
from generation.output import ENVIRONMENT_ERRNOS, OutputError, kept_summary
from runtime.devices import DeviceError
from runtime.locks import FolderLockedError

EXIT_USAGE = 2        # usage or data
EXIT_ENVIRONMENT = 1  # disk, device, a folder in use


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="generate.py", add_help=add_help,
                                     description="Generate -C / -P datasets in the released formats; draw grids.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_c_arguments(commands.add_parser("c", help="write a -C set (CIFAR-C .npy files or an ImageNet-C JPEG tree)"))
    add_p_arguments(commands.add_parser("p", help="write a -P set (CIFAR-P .npy files or ImageNet-P MP4 videos)"))
    add_grid_arguments(commands.add_parser("grid", help="PNG grid: rows = corruptions, columns = clean + severities"))
    return parser


def _report(args: argparse.Namespace, manifest: dict, listed: str) -> str:
    done, requested = manifest[listed], manifest.get("requested", [])
    where = f"{args.out} (manifest.json)"
    if manifest["complete"]:
        return (f"wrote {len(done)} {listed[:-1]}(s) ({', '.join(done)}) of {manifest['source']['num_images']} "
                f"images to {where}; the set is complete")
    left = [name for name in requested if name not in done]
    return (f"wrote this process's share to {where}; {len(left)} of {len(requested)} {listed} still wait for other "
            "shards (the last shard to finish completes the set, or run --finalize)")


def _device_exit(name: str | None) -> int:
    """A device this machine lacks is the environment's fault; a name that is not a device is the command's."""
    import torch

    try:
        kind = torch.device(name).type
    except (RuntimeError, ValueError, TypeError):
        return EXIT_USAGE
    return EXIT_ENVIRONMENT if kind in ("cuda", "mps") else EXIT_USAGE


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        args = get_args_parser().parse_args(args)
    try:
        if args.command == "c":
            print(_report(args, run_c(args), "corruptions"))
        elif args.command == "p":
            print(_report(args, run_p(args), "perturbations"))
        else:
            print(f"wrote {run_grid(args)}")
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _device_exit(args.device)
    except FolderLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except OutputError as exc:  # the output folder cannot take the files: say where, and what is kept
        kept = f"; {kept_summary(args.out)}, rerun the same command to resume" if args.command != "grid" else ""
        print(f"error: cannot write {exc.filename}: {exc.strerror}{kept}", file=sys.stderr)
        return EXIT_ENVIRONMENT if exc.errno in ENVIRONMENT_ERRNOS else EXIT_USAGE
    except (ValueError, OSError) as exc:  # bad input (flags, source files): one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    sys.exit(main(get_args_parser().parse_args()))
