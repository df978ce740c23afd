#!/usr/bin/env bash
# ResNet-50 on ImageNet with AugMix + JSD (recipe A of docs/augmix.md §7.2) on all GPUs of one node (torchrun + DDP),
# then the ImageNet-C evaluation of the final checkpoint, also under torchrun.
# train.batch_size is the global batch (256: 32 per GPU on 8 GPUs) and the lr follows it (0.1 x batch / 256).
# Run it again to resume (--resume auto); the evaluation resumes from its finished cells.
#
# Usage: [GPUS=N] [RUN=runs/imagenet_resnet50] [DRY_RUN=1] scripts/train_imagenet_ddp.sh [extra overrides ...]
#   GPUS      default: every GPU nvidia-smi lists
#   AUGMIX_DATA_ROOT must hold imagenet/train, imagenet/val and ImageNet-C/
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
GPUS="${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}"
need_count "GPUS (none found by nvidia-smi; set GPUS=N)" "$GPUS"
RUN="${RUN:-runs/imagenet_resnet50}"
need_config imagenet_resnet50.yaml
need_dir "$DATA_ROOT/imagenet/train" "ImageNet training folder"
need_dir "$DATA_ROOT/ImageNet-C" "ImageNet-C folder"
torchrun=($TORCHRUN --standalone --nproc_per_node "$GPUS")
run "${torchrun[@]}" train.py --config imagenet_resnet50.yaml --resume auto "train.out_dir=$RUN" "eval.suites=[]" "$@"
run "${torchrun[@]}" evaluate.py --ckpt "$RUN/last.pt" --suite imagenet-c --data-root "$DATA_ROOT" --out "$RUN/eval"
