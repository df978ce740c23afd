#!/usr/bin/env bash
# Reproduce the AugMix paper's CIFAR grid: 4 architectures x {CIFAR-10, CIFAR-100} x
# {AugMix + JSD, standard augmentation, AugMix without JSD}, each followed by its CIFAR-C evaluation
# (configs set eval.suites; the final-epoch model is evaluated, as the official code does).
#
# Usage: [GPUS=N] [DRY_RUN=1] scripts/train_cifar.sh [MODELS] [DATASETS] [VARIANTS]
#   MODELS    default "wrn allconv densenet resnext"
#   DATASETS  default "cifar10 cifar100"
#   VARIANTS  default "augmix standard nojsd"
#   GPUS      default 1: python train.py; N > 1: each job under torchrun --standalone --nproc_per_node N
#             (train.batch_size stays the global 128, so N must divide 128)
#   DRY_RUN=1 prints the commands without running them
#   AUGMIX_DATA_ROOT must hold cifar-10-batches-py/, cifar-100-python/ and CIFAR-10-C/, CIFAR-100-C/
#   (or set EVAL_GENERATE=1 to build the -C sets on the fly; the report then says "generated").
# Every run resumes where it stopped when the script is run again (--resume auto).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
MODELS="${1:-wrn allconv densenet resnext}"
DATASETS="${2:-cifar10 cifar100}"
VARIANTS="${3:-augmix standard nojsd}"
GPUS="${GPUS:-1}"
need_count GPUS "$GPUS"
launch=("$PYTHON")
if [ "$GPUS" -gt 1 ]; then launch=($TORCHRUN --standalone --nproc_per_node "$GPUS"); fi
for dataset in $DATASETS; do
  case "$dataset" in
    cifar10) need_dir "$DATA_ROOT/cifar-10-batches-py" "CIFAR-10 folder" ;;
    cifar100) need_dir "$DATA_ROOT/cifar-100-python" "CIFAR-100 folder" ;;
    *) fail "unknown dataset $dataset (cifar10 | cifar100)" ;;
  esac
  for model in $MODELS; do
    need_config "${dataset}_${model}.yaml"
    for variant in $VARIANTS; do
      case "$variant" in
        augmix) extra=() ;;
        standard) extra=(augment.mode=standard) ;;
        nojsd) extra=(loss.jsd=false) ;;
        *) fail "unknown variant $variant (augmix | standard | nojsd)" ;;
      esac
      if [ "${EVAL_GENERATE:-0}" = 1 ]; then extra+=(eval.generate=true); fi
      name="${dataset}_${model}_${variant}"
      run "${launch[@]}" train.py --config "${dataset}_${model}.yaml" --resume auto "train.out_dir=runs/$name" \
        ${extra[@]+"${extra[@]}"}
    done
  done
done
