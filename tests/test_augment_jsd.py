"""augment/jsd.py: the JSD consistency loss against a float64 NumPy re-computation of docs/augmix.md §6.1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augment.jsd import AugMixLoss, jsd_loss


def _np_jsd(zc: np.ndarray, z1: np.ndarray, z2: np.ndarray, clamp: bool = True) -> float:
    """§6.1 steps 4-7 in float64: softmax, M = clamp(mean, 1e-7, 1), sum_p KL(p || M) / B, divided by 3."""
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    probs = [softmax(z.astype(np.float64)) for z in (zc, z1, z2)]
    mixture = sum(probs) / 3
    if clamp:
        mixture = np.clip(mixture, 1e-7, 1)
    batch = zc.shape[0]
    kls = []
    for p in probs:
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0)  # 0 log 0 = 0
        kls.append((plogp - p * np.log(mixture)).sum() / batch)
    return sum(kls) / 3


def _logits(batch: int, classes: int, scale: float, seed: int) -> torch.Tensor:
    return torch.randn(3 * batch, classes, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("scale", [0.5, 3.0, 30.0])  # 30: many probabilities below the 1e-7 clamp
def test_jsd_matches_float64_recomputation(scale):
    zc, z1, z2 = _logits(6, 10, scale, seed=0).chunk(3)
    expected = _np_jsd(zc.numpy(), z1.numpy(), z2.numpy())
    got = jsd_loss(zc, z1, z2)
    assert got.dtype == torch.float32 and got.ndim == 0
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("scale", [3.0, 30.0])
def test_log_space_variant_matches_the_unclamped_mixture(scale):
    # The clamp only touches classes where all three p < 3e-7, so its effect on the value is below float32
    # resolution; the variants are told apart by their oracles (clamped vs unclamped), not by the value.
    zc, z1, z2 = _logits(6, 10, scale, seed=1).chunk(3)
    unclamped = _np_jsd(zc.numpy(), z1.numpy(), z2.numpy(), clamp=False)
    assert jsd_loss(zc, z1, z2, log_space=True).item() == pytest.approx(unclamped, rel=1e-5, abs=1e-6)


def test_log_space_gradients_stay_finite_when_probabilities_underflow():
    # Logit gaps of ~1000 make float32 softmax entries exactly 0. The official kl_div path then yields NaN
    # gradients (d/dp of p log p at p = 0 times a zero Jacobian); the log-space variant stays finite.
    logits = _logits(4, 10, 200.0, seed=9).requires_grad_()
    jsd_loss(*logits.chunk(3), log_space=True).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("log_space", [False, True])
def test_jsd_is_zero_when_the_three_views_agree(log_space):
    z = _logits(4, 10, 2.0, seed=3)[:4]
    assert abs(jsd_loss(z, z, z, log_space=log_space).item()) < 1e-6


def test_jsd_is_bounded_by_ln3_and_reaches_it_for_disjoint_one_hots():
    # Each view puts all its mass on a different class: M = 1/3 on three classes, KL(e_i || M) = ln 3 each.
    eye = torch.eye(3, 4) * 100.0
    disjoint = jsd_loss(eye[0:1], eye[1:2], eye[2:3]).item()
    assert disjoint == pytest.approx(math.log(3), abs=1e-5)
    for seed in range(5):
        zc, z1, z2 = _logits(16, 10, 10.0, seed=seed).chunk(3)
        assert 0.0 <= jsd_loss(zc, z1, z2).item() <= math.log(3) + 1e-6


def test_augmix_loss_with_zero_weight_is_cross_entropy_on_the_clean_chunk():
    logits = _logits(5, 7, 2.0, seed=4)
    labels = torch.tensor([0, 3, 6, 2, 2])
    loss, stats = AugMixLoss(jsd_weight=0.0)(logits, labels)
    assert torch.equal(loss, F.cross_entropy(logits[:5], labels))
    assert not torch.equal(loss, F.cross_entropy(logits[5:10], labels))  # the clean chunk is the first one
    assert stats["jsd"].item() > 0


def test_augmix_loss_adds_twelve_times_the_jsd():
    logits = _logits(5, 7, 2.0, seed=5)
    labels = torch.tensor([1, 1, 0, 6, 4])
    loss, stats = AugMixLoss()(logits, labels)
    zc, z1, z2 = logits.chunk(3)
    expected = F.cross_entropy(zc, labels).item() + 12 * _np_jsd(zc.numpy(), z1.numpy(), z2.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert stats["ce"].item() == pytest.approx(F.cross_entropy(zc, labels).item())
    assert not stats["ce"].requires_grad and not stats["jsd"].requires_grad


def test_no_jsd_mode_is_plain_cross_entropy_over_the_single_view():
    logits = _logits(2, 4, 1.0, seed=6)  # 6 rows: one AugMix view of a batch of 6
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    loss, stats = AugMixLoss(jsd=False)(logits, labels)
    assert torch.equal(loss, F.cross_entropy(logits, labels))
    assert stats["jsd"].item() == 0.0


def test_gradients_reach_all_three_chunks():
    logits = _logits(4, 6, 1.0, seed=7).requires_grad_()
    loss, _ = AugMixLoss()(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for chunk in logits.grad.chunk(3):  # aug1 / aug2 get gradient only through the JSD (and through M)
        assert chunk.abs().sum() > 1e-4


def test_bf16_autocast_inputs_are_computed_in_float32():
    logits = _logits(4, 10, 3.0, seed=8).to(torch.bfloat16)
    labels = torch.tensor([9, 0, 4, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, stats = AugMixLoss()(logits, labels)
        jsd = jsd_loss(*logits.chunk(3))
    reference, _ = AugMixLoss()(logits.float(), labels)
    assert loss.dtype == torch.float32 and jsd.dtype == torch.float32
    assert torch.equal(loss, reference)
    assert torch.equal(jsd, stats["jsd"])


def test_wrong_logits_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3\*B, K\).*\(8, 5\).*\(4,\)"):
        AugMixLoss()(torch.zeros(8, 5), torch.zeros(4, dtype=torch.long))
