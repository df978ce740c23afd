"""evaluation/metrics.py on hand-worked examples and against direct transcriptions of the reference definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS
from evaluation import metrics as M

# The ALEXNET_ERR constants of google-research/augmix imagenet.py, typed from docs/metrics.md §3.2 (the "Mean" column).
AUGMIX_ALEXNET_MEANS = (0.886428, 0.894468, 0.922640, 0.819880, 0.826268, 0.785948, 0.798360, 0.866816, 0.826572,
                        0.819324, 0.564592, 0.853204, 0.646056, 0.717840, 0.606500)


def test_top1_error_counts_ties_as_the_lowest_class():
    logits = torch.tensor([[2.0, 1.0], [1.0, 1.0], [0.0, 3.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 0])
    # predictions 0, 0 (tie -> class 0), 1, 0 (tie) -> one wrong of four
    assert M.top1_error(logits, labels) == 0.25
    assert M.top1_error(torch.tensor([0, 0, 1, 0]), labels) == 0.25


def test_nll_and_brier_on_a_two_class_example():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    labels = torch.tensor([1])
    assert M.nll(logits, labels) == pytest.approx(math.log(4 / 3))  # -log(3/4)
    assert M.brier_score(logits, labels) == pytest.approx(1 / 8)    # (1/4)^2 + (3/4 - 1)^2
    confidence, correct = M.confidence_and_correct(logits, labels)
    assert confidence.item() == pytest.approx(0.75) and correct.item()


def _three_bins():
    """300 samples sorted by confidence into three bins of 100:
    bin 0: conf 0.5, 30 correct -> gap 0.2;  bin 1: conf 0.8, 80 correct -> gap 0;  bin 2: conf 0.9, 50 correct -> 0.4.
    """
    confidence = torch.tensor([0.5] * 100 + [0.8] * 100 + [0.9] * 100)
    correct = torch.zeros(300, dtype=torch.bool)
    correct[:30] = True
    correct[100:180] = True
    correct[200:250] = True
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))  # input order must not matter
    return confidence[perm], correct[perm]


def test_rms_calibration_error_hendrycks_skips_the_last_bin():
    confidence, correct = _three_bins()
    # quirk: sum over bins 0..B-2 with weights n_b/N: sqrt(100/300 * 0.2^2 + 100/300 * 0) = sqrt(0.04/3)
    assert M.rms_calib_error_hendrycks(confidence, correct) == pytest.approx(math.sqrt(0.04 / 3))
    # corrected: all three bins, sqrt((0.04 + 0 + 0.16) / 3)
    assert M.rms_calib_error(confidence, correct) == pytest.approx(math.sqrt(0.2 / 3))
    # p='1': (0.2 + 0) / 3 vs (0.2 + 0 + 0.4) / 3;  p='infty': 0.2 vs 0.4
    assert M.rms_calib_error_hendrycks(confidence, correct, p="1") == pytest.approx(0.2 / 3)
    assert M.rms_calib_error(confidence, correct, p="1") == pytest.approx(0.6 / 3)
    assert M.rms_calib_error_hendrycks(confidence, correct, p="infty") == pytest.approx(0.2)
    assert M.rms_calib_error(confidence, correct, p="infty") == pytest.approx(0.4)


def test_rms_last_bin_absorbs_the_remainder():
    # N = 250 -> floor(250/100) = 2 bins: [0, 100) conf 0.6 with 60 correct (gap 0), [100, 250) conf 0.9 with 120 of
    # 150 correct (gap 0.1). Corrected: sqrt(150/250 * 0.01); the compatible variant keeps only bin 0 (gap 0).
    confidence = torch.tensor([0.6] * 100 + [0.9] * 150)
    correct = torch.tensor([1] * 60 + [0] * 40 + [1] * 120 + [0] * 30)
    assert M.rms_calib_error(confidence, correct) == pytest.approx(math.sqrt(0.006))
    assert M.rms_calib_error_hendrycks(confidence, correct) == pytest.approx(0.0, abs=1e-6)  # float32 0.6
    # N = 150: one bin, which the reference skips -> 0 by construction, with a warning; corrected: sqrt(0.1^2 * 1)
    with pytest.warns(UserWarning, match="0 by construction"):
        assert M.rms_calib_error_hendrycks(confidence[100:], correct[100:]) == 0.0
    assert M.rms_calib_error(confidence[100:], correct[100:]) == pytest.approx(0.1)


def test_rms_rejects_fewer_samples_than_one_bin():
    with pytest.raises(ValueError, match="at least beta=100 samples, got 99"):
        M.rms_calib_error(torch.rand(99), torch.ones(99))


def _reference_calib_err(confidence: np.ndarray, correct: np.ndarray, p: str = "2", beta: int = 100) -> float:
    """The calib_err loop as docs/metrics.md §5.1 describes it, element by element (stable sort, bins 0..B-2)."""
    idx = np.argsort(confidence, kind="stable")
    confidence, correct = confidence[idx], correct[idx]
    bins = [[i * beta, (i + 1) * beta] for i in range(len(confidence) // beta)]
    bins[-1] = [bins[-1][0], len(confidence)]
    err = 0.0
    for lo, hi in bins[:-1]:
        diff = abs(confidence[lo:hi].mean() - correct[lo:hi].mean())
        err = max(err, diff) if p == "infty" else err + (hi - lo) / len(confidence) * (diff ** 2 if p == "2" else diff)
    return math.sqrt(err) if p == "2" else err


@pytest.mark.parametrize("p", ["2", "1", "infty"])
def test_rms_hendrycks_matches_the_reference_loop_on_random_predictions(p):
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.1, 1.0, 1234).round(2)  # rounding creates ties, resolved by the stable sort
    correct = rng.uniform(size=1234) < confidence
    ours = M.rms_calib_error_hendrycks(torch.from_numpy(confidence), torch.from_numpy(correct), p=p)
    assert ours == pytest.approx(_reference_calib_err(confidence, correct.astype(float), p), rel=1e-12)


def test_ece_uses_fifteen_lower_open_bins():
    # conf 0.95, 0.95 -> bin 14 (14/15, 1]: acc 1/2, gap 0.45, weight 2/4 -> 0.225
    # conf 0.55 -> bin 8 (8/15 = 0.533, 0.6]: acc 1, gap 0.45, weight 1/4 -> 0.1125
    # conf 0.0 -> no bin, but still counts in N = 4.  ECE = 0.3375, MCE = 0.45
    confidence = torch.tensor([0.95, 0.95, 0.55, 0.0])
    correct = torch.tensor([True, False, True, True])
    assert M.expected_calibration_error(confidence, correct) == pytest.approx(0.3375)
    assert M.max_calibration_error(confidence, correct) == pytest.approx(0.45)
    # conf 1.0 falls in the last bin (upper edge inclusive): gap |1 - 1| = 0
    assert M.expected_calibration_error(torch.tensor([1.0]), torch.tensor([True])) == 0.0
    bins = M.reliability_bins(confidence, correct)
    assert bins["count"][14] == 2 and bins["count"][8] == 1 and sum(bins["count"]) == 3


def test_alexnet_table_means_are_the_augmix_normalisers():
    assert set(M.ALEXNET_ERRORS) == set(CORRUPTIONS + EXTRA_CORRUPTIONS)
    for name, published in zip(CORRUPTIONS, AUGMIX_ALEXNET_MEANS, strict=True):
        assert sum(M.ALEXNET_ERRORS[name]) / 5 == pytest.approx(published, abs=1e-6)


def _alexnet_cells(names=CORRUPTIONS + EXTRA_CORRUPTIONS):
    return {c: {s: M.ALEXNET_ERRORS[c][s - 1] for s in range(1, 6)} for c in names}


def test_mce_of_alexnet_on_its_own_errors_is_100():
    cells = _alexnet_cells()
    assert M.mce(cells) == pytest.approx(1.0, abs=1e-12)
    assert M.relative_mce(cells, clean_error=M.ALEXNET_CLEAN_ERROR) == pytest.approx(1.0, abs=1e-12)
    summary = M.imagenet_c_summary(cells, clean_error=M.ALEXNET_CLEAN_ERROR)
    assert summary["complete"] and summary["mce"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in summary["ce"].values()) and len(summary["ce"]) == 19
    assert summary["alexnet_clean_error"] == 0.43478
    # the unnormalised mean is over the 15 benchmark rows only; the 19-row mean is a separate, labelled entry
    assert summary["mean_error"] == pytest.approx(sum(AUGMIX_ALEXNET_MEANS) / 15)
    assert summary["mean_error_19"] == pytest.approx(sum(sum(v) / 5 for v in M.ALEXNET_ERRORS.values()) / 19)
    assert summary["mean_accuracy"] == pytest.approx(1 - summary["mean_error"])


def test_corruption_error_and_relative_ce_hand_worked():
    errors = {s: 0.3 for s in range(1, 6)}
    # brightness AlexNet sum = 5 * 0.564592 = 2.82296 -> CE = 1.5 / 2.82296
    assert M.corruption_error(errors, M.ALEXNET_ERRORS["brightness"]) == pytest.approx(1.5 / 2.82296)
    # rCE with E_clean 0.2: sum(0.3 - 0.2) = 0.5 over sum(AlexNet - 0.43478) = 2.82296 - 2.1739 = 0.64906
    rce = M.relative_corruption_error(errors, 0.2, M.ALEXNET_ERRORS["brightness"], 0.43478)
    assert rce == pytest.approx(0.5 / 0.64906)
    # a severity subset uses the matching baseline severities: 0.3 / 0.45140 at severity 1 alone
    assert M.corruption_error({1: 0.3}, M.ALEXNET_ERRORS["brightness"]) == pytest.approx(0.3 / 0.45140)


def test_mce_requires_all_benchmark_corruptions():
    cells = _alexnet_cells(CORRUPTIONS[:-1])
    with pytest.raises(ValueError, match="no values for jpeg_compression "):
        M.mce(cells)
    partial = M.imagenet_c_summary(cells, clean_error=None)
    assert not partial["complete"] and "relative_mce" not in partial and "mean_error_19" not in partial


def test_cifar_c_summary_excludes_the_extra_corruptions_from_the_mean():
    cells = {c: {s: 0.1 * s for s in range(1, 6)} for c in CORRUPTIONS}      # mean over severities = 0.3
    cells.update({c: {s: 0.9 for s in range(1, 6)} for c in EXTRA_CORRUPTIONS})
    summary = M.cifar_c_summary(cells)
    assert summary["complete"] and summary["corruption_error"] == pytest.approx(0.3)
    assert summary["per_severity"] == pytest.approx({s: 0.1 * s for s in range(1, 6)})
    assert summary["extra"] == pytest.approx({c: 0.9 for c in EXTRA_CORRUPTIONS})
    assert summary["corruption_error_19"] == pytest.approx((15 * 0.3 + 4 * 0.9) / 19)
    assert summary["per_corruption"]["fog"] == pytest.approx(0.3)


def _reference_flip_prob(preds: np.ndarray, noise: bool, difficulty: int) -> np.ndarray:
    """The interleaved sub-sequence loop of ImageNet-P/test.py as docs/metrics.md §4.2 describes it."""
    step = 1 if noise else difficulty
    out = []
    for video in preds:
        flips = []
        for i in range(step):
            prev = video[i]
            for pred in video[i::step][1:]:
                flips.append(int(prev != pred))
                if not noise:
                    prev = pred
        out.append(np.mean(flips))
    return np.array(out)


def test_flip_probability_hand_worked():
    preds = torch.tensor([[0, 1, 1, 1, 1]])
    # consecutive pairs (0,1) (1,2) (2,3) (3,4): one flip of 4
    assert M.flip_probability(preds, noise=False).item() == 0.25
    # noise: every frame against frame 0: 4 of 4
    assert M.flip_probability(preds, noise=True).item() == 1.0
    # difficulty 2: pairs (0,2) (1,3) (2,4): one flip of 3; noise ignores the difficulty
    assert M.flip_probability(preds, noise=False, difficulty=2).item() == pytest.approx(1 / 3)
    assert M.flip_probability(preds, noise=True, difficulty=2).item() == 1.0


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_flip_probability_matches_the_reference_loop(noise, difficulty):
    preds = torch.randint(0, 3, (7, 16), generator=torch.Generator().manual_seed(difficulty))
    expected = _reference_flip_prob(preds.numpy(), noise, difficulty)
    np.testing.assert_allclose(M.flip_probability(preds, noise, difficulty).numpy(), expected, rtol=0, atol=1e-15)


def _video(*frames):
    return torch.tensor([list(frames)], dtype=torch.float32)  # (1, T, K)


def test_top5_distance_examples_from_the_spec():
    base = [10.0 - k for k in range(10)]                          # class k ranked k + 1
    swapped = [9.0, 10.0] + base[2:]                              # top-1 and top-2 swap: |2-1| + |1-2| = 2
    dropped = [base[1], base[2], base[3], base[4], base[5]] + [0.5, 0.4, 0.3, 0.2, 0.1]
    dropped[0] = -100.0                                           # class 0 to the bottom, the others up one
    dropped[1:5] = [10.0, 9.0, 8.0, 7.0]                          # -> |min(10,6)-1| + 4 * 1 = 9
    assert M.top5_distance(_video(base, base), noise=False).item() == 0
    assert M.top5_distance(_video(base, swapped), noise=False).item() == 2
    assert M.top5_distance(_video(base, dropped), noise=False).item() == 9
    # ties go to the lower class index in both frames, so identical tied frames are at distance 0
    tied = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert M.top5_distance(_video(tied, tied), noise=False).item() == 0


def _double_sum_t5d(sigma: np.ndarray) -> int:
    """The paper's definition: sum_i sum_{j=min(i, s_i)+1}^{max(i, s_i)} 1[1 <= j - 1 <= 5]."""
    return sum(1 for i in range(1, 6) for j in range(min(i, sigma[i - 1]) + 1, max(i, sigma[i - 1]) + 1)
               if 1 <= j - 1 <= 5)


def _reference_sigmas(logits: np.ndarray, ref: int, cmp: int) -> np.ndarray:
    """sigma = rank in frame `cmp` of the classes ordered by frame `ref`, via rankdata(-z, 'ordinal') as the
    reference does (perm2[argsort(perm1)])."""
    ranks_a = rankdata(-logits[ref], method="ordinal")
    ranks_b = rankdata(-logits[cmp], method="ordinal")
    return ranks_b[np.argsort(ranks_a, kind="stable")]


@pytest.mark.parametrize("noise", [False, True])
def test_top5_and_zipf_distance_match_the_reference_definitions(noise):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 9, 12, generator=g).round(decimals=1)  # rounding creates ties
    logits[:, 1::2] = logits[:, 0:-1:2] + 0.3 * torch.randn(4, 4, 12, generator=g)  # nearby frames: small moves
    ours_t5 = M.top5_distance(logits, noise)
    ours_zipf = M.zipf_distance(logits, noise)
    recip = 1.0 / np.arange(1, 13)
    for v in range(4):
        pairs = [(0, j) if noise else (j - 1, j) for j in range(1, 9)]
        sigmas = [_reference_sigmas(logits[v].numpy(), a, b) for a, b in pairs]
        assert ours_t5[v].item() == pytest.approx(np.mean([_double_sum_t5d(s) for s in sigmas]))
        zipf = np.mean([np.sum(np.abs(recip - 1.0 / s) * recip) for s in sigmas])
        assert ours_zipf[v].item() == pytest.approx(zipf, rel=1e-12)


def test_zipf_distance_hand_worked():
    # three classes, the top two swap: sigma = (2, 1, 3): |1 - 1/2| * 1 + |1/2 - 1| * 1/2 + 0 = 0.75
    assert M.zipf_distance(_video([3.0, 2.0, 1.0], [2.0, 3.0, 1.0]), noise=False).item() == pytest.approx(0.75)


def test_cifar_p_means_differ_only_in_spatter_versus_snow():
    fp = {p: 0.5 for p in set(M.CIFAR_P_SCRIPT) | set(M.CIFAR_P_BENCHMARK)}
    fp["spatter"], fp["snow"] = 1.0, 0.0
    assert M.cifar_p_mfp_script(fp) == pytest.approx((9 * 0.5 + 1.0) / 10)
    assert M.cifar_p_mfp_benchmark(fp) == pytest.approx((9 * 0.5 + 0.0) / 10)
    del fp["snow"]
    with pytest.raises(ValueError, match="snow"):
        M.cifar_p_mfp_benchmark(fp)


def test_perturbation_summary_normalises_by_the_baseline():
    fp = {p: 0.02 for p in M.IMAGENET_P_TEST}
    t5d = {p: 0.5 for p in M.IMAGENET_P_TEST}
    baseline = {"flip_probability": {p: 0.04 for p in M.IMAGENET_P_TEST},
                "top5_distance": {p: 2.0 for p in M.IMAGENET_P_TEST}}
    summary = M.perturbation_summary(fp, t5d, baseline)
    # FR_p = 0.02 / 0.04 = 0.5 for every p -> mFR 0.5;  T5D ratio 0.5 / 2 = 0.25 -> mT5D 0.25
    assert summary["complete"] and summary["mfr"] == pytest.approx(0.5) and summary["mt5d"] == pytest.approx(0.25)
    assert summary["mfp"] == pytest.approx(0.02) and summary["mean_top5_distance"] == pytest.approx(0.5)
    assert "mfr" not in M.perturbation_summary(fp, t5d)  # unnormalised only without a baseline


def test_per_sample_statistics_agree_with_the_single_metrics():
    g = torch.Generator().manual_seed(0)
    logits, labels = 3 * torch.randn(300, 7, generator=g), torch.randint(0, 7, (300,), generator=g)
    stats = M.per_sample_statistics(logits, labels)
    confidence, correct = M.confidence_and_correct(logits, labels)
    torch.testing.assert_close(stats["confidence"], confidence)
    assert torch.equal(stats["correct"], correct)
    torch.testing.assert_close(stats["nll"], M.per_sample_nll(logits, labels))
    torch.testing.assert_close(stats["brier"], M.per_sample_brier(logits, labels))
    summary = M.classification_summary(stats)
    assert summary["n"] == 300 and summary["error"] == M.top1_error(logits, labels)
    assert summary["nll"] == pytest.approx(M.nll(logits, labels)) and summary["brier"] == pytest.approx(
        M.brier_score(logits, labels))
    assert summary["rms_calib_error"] == pytest.approx(M.rms_calib_error(confidence, correct), rel=1e-6)


def test_calibration_summary_equals_the_separate_functions():
    confidence, correct = _three_bins()
    summary = M.calibration_summary(confidence, correct)
    assert summary == pytest.approx({"rms_calib_error_hendrycks": M.rms_calib_error_hendrycks(confidence, correct),
                                     "rms_calib_error": M.rms_calib_error(confidence, correct),
                                     "ece_15": M.expected_calibration_error(confidence, correct),
                                     "mce_15": M.max_calibration_error(confidence, correct)}, rel=1e-12)


CALIBRATION_FUNCTIONS = (M.expected_calibration_error, M.max_calibration_error, M.reliability_bins,
                         M.rms_calib_error, M.rms_calib_error_hendrycks, M.calibration_summary)


@pytest.mark.parametrize("fn", CALIBRATION_FUNCTIONS, ids=lambda f: f.__name__)
def test_calibration_metrics_reject_confidences_that_are_not_probabilities(fn):
    n = 200
    correct = np.ones(n, dtype=bool)
    above = np.full(n, 0.5)
    above[7] = 1.5  # a float64 "confidence" above 1: used to fall past the last bin (IndexError in the ECE binning)
    probability = rf"{fn.__name__}: confidence must be a probability in \[0, 1\]"
    with pytest.raises(ValueError, match=probability + r".*index 7: 1\.5"):
        fn(above, correct)
    with pytest.raises(ValueError, match=rf"{fn.__name__}: confidence must be a probability"):
        fn(torch.full((n,), -0.1), torch.from_numpy(correct))
    with pytest.raises(ValueError, match=rf"{fn.__name__}: 1 of 200 confidences are NaN or infinite \(first at index"):
        fn(np.where(np.arange(n) == 3, np.nan, 0.5), correct)
    with pytest.raises(ValueError, match=rf"{fn.__name__}: confidence has 200 entries but correct has 199"):
        fn(np.full(n, 0.5), correct[:-1])
    with pytest.raises(ValueError, match=rf"{fn.__name__}: correct must be bool or 0/1; index 0 is 2"):
        fn(np.full(n, 0.5), np.full(n, 2))
    with pytest.raises(ValueError, match=rf"{fn.__name__}: no samples"):
        fn(np.zeros(0), np.zeros(0, dtype=bool))


def test_calibration_metrics_take_float64_probabilities_and_rounding_above_one():
    confidence = torch.linspace(0.05, 1.0, 300, dtype=torch.float64)
    correct = torch.rand(300, generator=torch.Generator().manual_seed(0)) < confidence
    expected = M.expected_calibration_error(confidence.float(), correct)
    assert M.expected_calibration_error(confidence, correct) == pytest.approx(expected, abs=1e-6)
    nudged = confidence.clone()
    nudged[-1] = 1.0 + 1e-9  # rounding in a caller's softmax: counted as 1, in the last bin
    assert M.expected_calibration_error(nudged, correct) == pytest.approx(expected, abs=1e-6)
    assert M.reliability_bins(nudged, correct)["count"][-1] == M.reliability_bins(confidence, correct)["count"][-1]


def test_normalised_means_over_an_incomplete_baseline_are_marked_partial():
    fp = {p: 0.02 for p in M.IMAGENET_P_TEST}
    t5d = {p: 1.0 for p in M.IMAGENET_P_TEST}
    lacking = M.IMAGENET_P_TEST[-2:]
    baseline = {"flip_probability": {p: 0.04 for p in M.IMAGENET_P_TEST if p not in lacking},
                "top5_distance": {p: 2.0 for p in M.IMAGENET_P_TEST if p not in lacking}}
    summary = M.perturbation_summary(fp, t5d, baseline)
    assert summary["complete"] and summary["missing"] == []  # the run itself has all 10
    assert summary["normalised_complete"] is False
    assert summary["baseline_missing"] == list(lacking)
    assert summary["normalised_perturbations_in_mean"] == list(M.IMAGENET_P_TEST[:-2])
    assert summary["mfr"] == pytest.approx(0.5) and summary["mt5d"] == pytest.approx(0.5)  # over the 8 shared
    full = M.perturbation_summary(fp, t5d, {"flip_probability": {p: 0.04 for p in fp},
                                            "top5_distance": {p: 2.0 for p in fp}})
    assert full["normalised_complete"] is True and full["baseline_missing"] == []
    run_short = M.perturbation_summary({p: fp[p] for p in fp if p != "snow"}, t5d, baseline)
    assert run_short["missing"] == ["snow"] and run_short["normalised_complete"] is False
