#!/usr/bin/env bash
# Generate CIFAR-10-C and CIFAR-100-C in the released layout (<corruption>.npy (50000, 32, 32, 3) uint8,
# severity-major, + labels.npy) from the CIFAR test sets: 19 corruptions x 5 severities x 10,000 images each,
# CIFAR preset (docs/corruptions.md §3.1, §7.1). The output is marked "generated" in its manifest.json.
#
# Usage:
#   scripts/generate_cifar_c.sh [OUT_ROOT] [extra `python generate.py c` flags ...]
#
#   OUT_ROOT           default $AUGMIX_DATA_ROOT/generated; writes OUT_ROOT/CIFAR-10-C and OUT_ROOT/CIFAR-100-C
#   AUGMIX_DATA_ROOT   folder holding cifar-10-batches-py/ and cifar-100-python/ (default ./data)
#   DATASETS           which sets (default "cifar10 cifar100")
#   DEVICE             cpu | cuda | cuda:N (default: cuda when available, else cpu)
#   SEED               run seed (default 0); with the same DEVICE type and batch size the bytes are reproducible
#   PYTHON             interpreter (default python)
#
# Example: scripts/generate_cifar_c.sh /scratch/c --corruptions common --severities 1,2,3,4,5
# An interrupted run resumes when the same command is run again (finished files are verified and kept).
set -euo pipefail

cd "$(dirname "$0")/.."
DATA_ROOT="${AUGMIX_DATA_ROOT:-./data}"
OUT_ROOT="${1:-$DATA_ROOT/generated}"
shift $(( $# > 0 ? 1 : 0 ))
PYTHON="${PYTHON:-python}"
SEED="${SEED:-0}"
DEVICE="${DEVICE:-$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"

for dataset in ${DATASETS:-cifar10 cifar100}; do
  case "$dataset" in
    cifar10) name="CIFAR-10-C" ;;
    cifar100) name="CIFAR-100-C" ;;
    *) echo "error: unknown dataset '$dataset' in DATASETS (valid: cifar10 cifar100)" >&2; exit 2 ;;
  esac
  echo "== $name -> $OUT_ROOT/$name (device $DEVICE, seed $SEED)"
  "$PYTHON" generate.py c --source "$dataset" --data-root "$DATA_ROOT" --out "$OUT_ROOT/$name" \
    --preset cifar --corruptions all --device "$DEVICE" --seed "$SEED" "$@"
done
