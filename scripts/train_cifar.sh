#!/usr/bin/env bash
# Reproduce the AugMix paper's CIFAR grid on one GPU: 4 architectures x {CIFAR-10, CIFAR-100} x
# {AugMix + JSD, standard augmentation, AugMix without JSD}, each followed by its CIFAR-C evaluation
# (configs set eval.suites; the final-epoch model is evaluated, as the official code does).
#
# Usage: scripts/train_cifar.sh [MODELS] [DATASETS] [VARIANTS]
#   MODELS    default "wrn allconv densenet resnext"
#   DATASETS  default "cifar10 cifar100"
#   VARIANTS  default "augmix standard nojsd"
#   AUGMIX_DATA_ROOT must hold cifar-10-batches-py/, cifar-100-python/ and CIFAR-10-C/, CIFAR-100-C/
#   (or set EVAL_GENERATE=1 to build the -C sets on the fly; the report then says "generated").
# Every run resumes where it stopped when the script is run again (--resume auto).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
MODELS="${1:-wrn allconv densenet resnext}"
DATASETS="${2:-cifar10 cifar100}"
VARIANTS="${3:-augmix standard nojsd}"
for dataset in $DATASETS; do
  for model in $MODELS; do
    for variant in $VARIANTS; do
      case "$variant" in
        augmix) extra=() ;;
        standard) extra=(augment.mode=standard) ;;
        nojsd) extra=(loss.jsd=false) ;;
        *) echo "unknown variant $variant (augmix | standard | nojsd)" >&2; exit 2 ;;
      esac
      if [ "${EVAL_GENERATE:-0}" = 1 ]; then extra+=(eval.generate=true); fi
      name="${dataset}_${model}_${variant}"
      "$PYTHON" train.py --config "${dataset}_${model}.yaml" --resume auto "train.out_dir=runs/$name" "${extra[@]}"
    done
  done
done
