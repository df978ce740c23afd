"""AugMix: batched per-sample ops and mixing on tensors (the default backend), the PIL reference, the JSD loss."""

from augment.augmix import AugMix, ChainDraws, build_augmix, normalize, sample_draws
from augment.jsd import AugMixLoss, jsd_loss
from augment.ops import OPS, apply_ops, apply_ops_grouped
from augment.params import ALL_OPS, AUGMIX_OPS, op_list, op_magnitude
from augment.pil_reference import AugMixPIL

__all__ = [
    "ALL_OPS", "AUGMIX_OPS", "OPS", "AugMix", "AugMixLoss", "AugMixPIL", "ChainDraws", "apply_ops",
    "apply_ops_grouped", "build_augmix", "jsd_loss", "normalize", "op_list", "op_magnitude", "sample_draws",
]
