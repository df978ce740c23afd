#!/usr/bin/env bash
# ResNet-50 on ImageNet with AugMix + JSD (recipe A of docs/augmix.md §7.2), then ImageNet-C evaluation on the released
# JPEGs (no Resize(256)). One GPU; resumes with --resume auto when run again. All GPUs of a node:
# scripts/train_imagenet_ddp.sh; several nodes: scripts/slurm/train_imagenet.sbatch.
#
# Usage: [DRY_RUN=1] scripts/train_imagenet.sh [extra overrides ...]
#   AUGMIX_DATA_ROOT must hold imagenet/train, imagenet/val and ImageNet-C/ (or pass data.root=... eval.data_root=...)
# Example (recipe B, the released model's known differences; do not claim parity with its numbers):
#   scripts/train_imagenet.sh optim.nesterov=true optim.schedule=cosine train.epochs=180 train.out_dir=runs/in_b
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
need_config imagenet_resnet50.yaml
if [[ " $* " != *" data.root="* ]]; then need_dir "$DATA_ROOT/imagenet/train" "ImageNet training folder"; fi
run "$PYTHON" train.py --config imagenet_resnet50.yaml --resume auto "$@"
