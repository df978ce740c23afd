#!/usr/bin/env bash
# GPU validation in one call (under 8 minutes on one CUDA GPU): the gpu-marked tests, AugMix views/s (32 and 224 px,
# ours vs the PIL backend vs torchvision), the AugMix+JSD training-step overhead (WRN-40-2, batch 128), a training
# epoch's images/s with the projected 100-epoch recipe, glass blur at 224 px vs the per-image package, and evaluation
# over bare bf16 inference; one summary table, then BENCH {json} lines. See bench/gpu_check.py.
#
# Usage: [PYTHON=python] bash scripts/gpu_check.sh [--cpu-smoke] [--log-dir DIR] [--only STEP,...]
#   --cpu-smoke  the same pipeline reduced (each bench's --quick, --device cpu, tiny sizes) on a CPU, ~2 minutes
# Exit status: 0 all steps ran and no test failed; 1 a step failed or timed out (its log is named); 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
exec "$PYTHON" bench/gpu_check.py "$@"
