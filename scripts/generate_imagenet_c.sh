#!/usr/bin/env bash
# Generate ImageNet-C in the released layout from the ILSVRC-2012 validation set:
# Resize(256) + CenterCrop(224), corrupt on the device, save <corruption>/<1..5>/<wnid>/<name>.JPEG as Pillow JPEG
# quality 85 (docs/corruptions.md §3.2, §7.2). The output is marked "generated" in its manifest.json; per-file
# sha256 lists are in OUT_DIR/checksums/ (sha256sum -c format).
#
# Usage:
#   scripts/generate_imagenet_c.sh [VAL_DIR] [OUT_DIR] [extra `python generate.py c` flags ...]
#
#   VAL_DIR       ImageNet validation folder of <wnid>/ILSVRC2012_val_*.JPEG (default $AUGMIX_DATA_ROOT/imagenet/val)
#   OUT_DIR       default $AUGMIX_DATA_ROOT/generated/ImageNet-C
#   CORRUPTIONS   names or a subset (default common: the 15 benchmark corruptions; "all" adds the 4 extra)
#   DEVICE        cpu | cuda | cuda:N (default: cuda when available, else cpu)
#   WORKERS       decode processes and JPEG encoder threads (default 8; JPEG encoding is CPU work)
#   BATCH_SIZE    images per chunk (default 100); part of the seeding, keep it to reproduce a set
#   SEED          run seed (default 0); PYTHON interpreter (default python)
#
# Example (Tiny-ImageNet-C style 64-px set): scripts/generate_imagenet_c.sh ~/tiny/val ~/tiny-c --preset tiny
# An interrupted run resumes when the same command is run again.
set -euo pipefail

cd "$(dirname "$0")/.."
DATA_ROOT="${AUGMIX_DATA_ROOT:-./data}"
VAL_DIR="${1:-$DATA_ROOT/imagenet/val}"
OUT_DIR="${2:-$DATA_ROOT/generated/ImageNet-C}"
shift $(( $# > 1 ? 2 : $# ))
PYTHON="${PYTHON:-python}"
DEVICE="${DEVICE:-$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"

if [ ! -d "$VAL_DIR" ]; then
  echo "error: ImageNet validation folder $VAL_DIR not found (expected $VAL_DIR/<wnid>/*.JPEG); pass it as the first argument" >&2
  exit 2
fi
echo "== ImageNet-C: $VAL_DIR -> $OUT_DIR (device $DEVICE)"
exec "$PYTHON" generate.py c --source imagefolder --data-root "$VAL_DIR" --out "$OUT_DIR" \
  --corruptions "${CORRUPTIONS:-common}" --device "$DEVICE" --workers "${WORKERS:-8}" \
  --batch-size "${BATCH_SIZE:-100}" --seed "${SEED:-0}" "$@"
