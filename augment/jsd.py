"""Jensen-Shannon consistency loss of AugMix (Hendrycks et al., ICLR 2020, arXiv:1912.02781, eq. 3-4).

As coded in google-research/augmix ``cifar.py`` (docs/augmix.md §6): CE on the clean view plus
lambda = 12 times the three-way JSD between the softmaxes of [clean; aug1; aug2].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIXTURE_CLAMP = 1e-7  # the official clamp of the mixture M before its log (§6.1 step 5)


def jsd_loss(logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor,
             log_space: bool = False) -> torch.Tensor:
    """Equal-weight Jensen-Shannon divergence of the three views' softmaxes, in [0, ln 3].

    Default, as coded (§6.1): M = clamp((p_c + p_1 + p_2) / 3, 1e-7, 1), not renormalised, nothing detached,
    and ``sum_p kl_div(log M, p, reduction='batchmean') / 3`` (divisor B). ``log_space=True`` is the
    non-default variant log M = logsumexp(log p_i) - log 3 without the clamp: numerically nicer, but it
    differs from the official loss wherever the clamp is active. It also keeps gradients finite when a float32
    softmax entry underflows to exactly 0 (logit gaps beyond ~100), where ``kl_div``'s target gradient is NaN.

    Args:
        logits_clean, logits_aug1, logits_aug2: (B, K) logits, any float dtype and device.

    Returns:
        0-dim float32 tensor on the logits' device; computed in float32 even under autocast.
    """
    with torch.autocast(device_type=logits_clean.device.type, enabled=False):
        views = [z.float() for z in (logits_clean, logits_aug1, logits_aug2)]
        if log_space:
            log_p = [F.log_softmax(z, dim=1) for z in views]
            log_m = torch.logsumexp(torch.stack(log_p), dim=0) - math.log(3)
            kls = [F.kl_div(log_m, lp, reduction="batchmean", log_target=True) for lp in log_p]
        else:
            probs = [F.softmax(z, dim=1) for z in views]
            log_m = torch.clamp((probs[0] + probs[1] + probs[2]) / 3.0, MIXTURE_CLAMP, 1).log()
            kls = [F.kl_div(log_m, p, reduction="batchmean") for p in probs]
        return (kls[0] + kls[1] + kls[2]) / 3.0


class AugMixLoss(nn.Module):
    """CE on the clean view + ``jsd_weight`` x JSD (§6.1), or plain CE on the single AugMix view (§6.2).

    ``forward(logits, labels)``: with jsd=True logits is (3B, K) ordered [clean; aug1; aug2] and labels (B,);
    with jsd=False logits is (B, K). Returns ``(loss, {"ce": ..., "jsd": ...})``, the dict holding detached
    0-dim float32 tensors ("jsd" is 0 without JSD).
    """

    def __init__(self, jsd_weight: float = 12.0, jsd: bool = True, log_space: bool = False):
        super().__init__()
        self.jsd_weight = jsd_weight  # lambda; 12 in both official scripts
        self.jsd = jsd
        self.log_space = log_space    # False: the official clamped mixture

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        views = 3 if self.jsd else 1
        if logits.ndim != 2 or logits.shape[0] != views * labels.shape[0]:
            raise ValueError(f"AugMixLoss(jsd={self.jsd}) expects logits of shape ({views}*B, K) for labels of shape "
                             f"(B,), got logits {tuple(logits.shape)} and labels {tuple(labels.shape)}")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            if not self.jsd:
                ce = F.cross_entropy(logits.float(), labels)
                return ce, {"ce": ce.detach(), "jsd": torch.zeros((), device=logits.device)}
            clean, aug1, aug2 = logits.float().chunk(3)
            ce = F.cross_entropy(clean, labels)  # clean view only, no label smoothing (§6.1 step 3)
            jsd = jsd_loss(clean, aug1, aug2, log_space=self.log_space)
            return ce + self.jsd_weight * jsd, {"ce": ce.detach(), "jsd": jsd.detach()}
