"""Robustness metrics as pure functions of logits, predictions, confidences and labels.

Definitions follow Hendrycks & Dietterich (ICLR 2019), hendrycks/robustness (ImageNet-C/test.py,
ImageNet-P/test.py, cifar-p-eval.py), hendrycks/outlier-exposure (calibration_tools.py) and
docs/metrics.md, whose section numbers the comments cite. Every function returns fractions or
ratios (an error of 0.25, an AlexNet-level CE of 1.0); the report multiplies by 100 where a paper prints percent.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
from torch import Tensor

from corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS

# The perturbations the -P means average (docs/metrics.md §4.4, §4.5) are facts of the -P sets, kept in corruptions/.
from corruptions.sequences import CIFAR_P_BENCHMARK, CIFAR_P_SCRIPT, IMAGENET_P_TEST

# AlexNet top-1 errors on the released ImageNet-C JPEGs, severities 1..5 (docs/metrics.md §3.2: the hendrycks/robustness
# README table of Oct 2019, also posted in hendrycks/robustness#10). The severity means of the 15 benchmark rows are
# the ALEXNET_ERR constants of google-research/augmix imagenet.py. The last four rows are the extra corruptions:
# reported, never part of mCE.
ALEXNET_ERRORS: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
})
# AlexNet clean top-1 error for relative mCE: torchvision's model card for AlexNet_Weights.IMAGENET1K_V1 (56.522 %
# top-1). Not confirmed as the value Hendrycks used (docs/metrics.md §3.3), so it is always printed with the result.
ALEXNET_CLEAN_ERROR = 0.43478

RMS_BIN_SIZE = 100  # samples per adaptive bin, `beta` of calib_err (docs/metrics.md §5.1)
ECE_BINS = 15       # equal-width bins, Guo et al. 2017 (docs/metrics.md §5.2)


def predictions(logits: Tensor) -> Tensor:
    """Top-1 class per row; ties go to the lowest class index (``torch.argmax`` returns the first maximum).

    Args:
        logits: (..., K) float, any device.

    Returns:
        (...) int64, same device.
    """
    return logits.argmax(dim=-1)


def top1_error(logits_or_preds: Tensor, labels: Tensor) -> float:
    """Fraction of samples whose top-1 prediction differs from the label.

    Args:
        logits_or_preds: (N, K) logits or (N,) integer predictions, any device.
        labels: (N,) integer, same device.

    Returns:
        Error in [0, 1].
    """
    preds = logits_or_preds if logits_or_preds.dim() == 1 else predictions(logits_or_preds)
    _check_same_length(preds, labels, "predictions", "labels")
    return (preds != labels).double().mean().item()


def confidence_and_correct(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Max softmax probability and top-1 correctness, the inputs of every calibration metric (docs/metrics.md §5).

    Args:
        logits: (N, K) float, any device.
        labels: (N,) integer, same device.

    Returns:
        confidence (N,) float32 in (0, 1] and correct (N,) bool, same device.
    """
    probs = logits.float().softmax(dim=-1)
    confidence, preds = probs.max(dim=-1)
    return confidence, preds == labels


def per_sample_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Negative log-likelihood of the label, natural log: (N, K) float logits, (N,) labels -> (N,) float32."""
    return torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")


def per_sample_brier(logits: Tensor, labels: Tensor) -> Tensor:
    """Multi-class Brier score ``sum_k (p_k - 1[k = y])^2`` per sample, in [0, 2]: (N, K), (N,) -> (N,) float32."""
    probs = logits.float().softmax(dim=-1)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[-1]).float()
    return (probs - onehot).square().sum(dim=-1)


def per_sample_statistics(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """What the evaluator keeps of each prediction, so no logits need to be stored.

    Args:
        logits: (N, K) float, any device.
        labels: (N,) integer, same device.

    Returns:
        {"confidence": (N,) float32, "correct": (N,) bool, "nll": (N,) float32, "brier": (N,) float32}, same device.
    """
    # One log-softmax pass serves all four (the same values as the single-purpose functions above).
    log_probs = logits.float().log_softmax(dim=-1)
    probs = log_probs.exp()
    confidence, preds = probs.max(dim=-1)
    p_label = probs.gather(-1, labels[:, None])[:, 0]
    brier = probs.square().sum(dim=-1) - 2 * p_label + 1  # sum_k p_k^2 - 2 p_y + 1 = sum_k (p_k - 1[k = y])^2
    return {"confidence": confidence, "correct": preds == labels,
            "nll": -log_probs.gather(-1, labels[:, None])[:, 0], "brier": brier}


def classification_summary(stats: Mapping[str, Tensor]) -> dict[str, float]:
    """Error, NLL, Brier and every calibration number of one set of predictions, from
    :func:`per_sample_statistics` (concatenated over batches). Fractions; NLL in nats; Brier in [0, 2]."""
    correct = stats["correct"]
    summary = {"n": int(correct.numel()), "error": (~correct).double().mean().item(),
               "nll": stats["nll"].double().mean().item(), "brier": stats["brier"].double().mean().item()}
    if correct.numel() >= RMS_BIN_SIZE:
        summary.update(calibration_summary(stats["confidence"], correct))
    return summary


def nll(logits: Tensor, labels: Tensor) -> float:
    """Mean negative log-likelihood (nats) over the N samples."""
    return per_sample_nll(logits, labels).double().mean().item()


def brier_score(logits: Tensor, labels: Tensor) -> float:
    """Mean multi-class Brier score over the N samples (range [0, 2])."""
    return per_sample_brier(logits, labels).double().mean().item()


CONFIDENCE_ROUNDING = 1e-6  # confidences up to this far above 1 are rounding and count as exactly 1


def _calibration_inputs(confidence, correct, what: str) -> tuple[Tensor, Tensor]:
    """``confidence`` and ``correct`` as flat float64 CPU tensors, checked: same length, at least one sample,
    confidences finite and in [0, 1], correct bool or 0/1.

    Raises:
        ValueError: naming ``what`` (the public function called), the input and the offending value.
    """
    confidence = torch.as_tensor(confidence).detach().cpu().flatten()
    correct = torch.as_tensor(correct).detach().cpu().flatten()
    if confidence.is_complex():
        raise ValueError(f"{what}: confidence must be real numbers in [0, 1], got dtype {confidence.dtype}")
    confidence, correct = confidence.double(), correct.double()
    if confidence.numel() != correct.numel():
        raise ValueError(f"{what}: confidence has {confidence.numel()} entries but correct has {correct.numel()}")
    if confidence.numel() == 0:
        raise ValueError(f"{what}: no samples (confidence and correct are empty)")
    bad = ~torch.isfinite(confidence)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise ValueError(f"{what}: {int(bad.sum())} of {confidence.numel()} confidences are NaN or infinite (first "
                         f"at index {first}: {confidence[first].item()}); non-finite logits give non-finite softmax")
    bad = (confidence < 0) | (confidence > 1 + CONFIDENCE_ROUNDING)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise ValueError(f"{what}: confidence must be a probability in [0, 1]; {int(bad.sum())} of "
                         f"{confidence.numel()} are outside (first at index {first}: {confidence[first].item()!r}, "
                         f"range {confidence.min().item():.6g}..{confidence.max().item():.6g}); pass the max softmax "
                         "probability, not logits or unnormalised scores")
    bad = (correct != 0) & (correct != 1)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise ValueError(f"{what}: correct must be bool or 0/1; index {first} is {correct[first].item()!r}")
    return confidence.clamp(max=1.0), correct


def _sorted_by_confidence(confidence: Tensor, correct: Tensor) -> tuple[Tensor, Tensor]:
    """Checked inputs (:func:`_calibration_inputs`) ordered by confidence."""
    # A stable sort (the reference's np.argsort is not) fixes the bin membership of tied confidences (§5.1).
    order = torch.sort(confidence, stable=True).indices
    return confidence[order], correct[order]


def _adaptive_bin_gaps(confidence: Tensor, correct: Tensor, beta: int) -> tuple[Tensor, Tensor]:
    """Gaps |mean conf - mean correct| and sizes of the floor(N/beta) equal-mass bins; the last absorbs the rest."""
    n = confidence.numel()
    if n < beta:
        raise ValueError(f"RMS calibration error needs at least beta={beta} samples, got {n}")
    n_bins = n // beta
    bin_of = (torch.arange(n) // beta).clamp(max=n_bins - 1)  # positions past the last full bin join the last bin
    counts = torch.bincount(bin_of, minlength=n_bins).double()
    mean_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_of, confidence) / counts
    mean_correct = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_of, correct) / counts
    return (mean_conf - mean_correct).abs(), counts


def _combine_gaps(gaps: Tensor, counts: Tensor, total: int, p: str) -> float:
    if gaps.numel() == 0:
        return 0.0
    weights = counts / total
    if p == "2":
        return math.sqrt((weights * gaps.square()).sum().item())
    if p == "1":
        return (weights * gaps).sum().item()
    if p == "infty":
        return gaps.max().item()
    raise ValueError(f"unknown calibration norm p={p!r}; valid: '2' (RMS), '1' (mean absolute), 'infty' (max)")


def rms_calib_error_hendrycks(confidence: Tensor, correct: Tensor, p: str = "2", beta: int = RMS_BIN_SIZE) -> float:
    """Paper-compatible RMS calibration error: ``calib_err`` of hendrycks/outlier-exposure, quirk included.

    Samples are sorted by confidence and cut into floor(N/beta) bins of beta consecutive samples, the last bin
    absorbing the remainder. Quirk kept on purpose (docs/metrics.md §5.1): the reference loop stops before the last
    (highest-confidence) bin, while the weights n_b/N still divide by the full N. Use :func:`rms_calib_error` for
    the corrected value.

    Args:
        confidence: (N,) max softmax probabilities, any device; N >= beta.
        correct: (N,) bool or {0, 1}, same length.
        p: "2" (RMS), "1" (weighted mean absolute gap) or "infty" (largest gap), over the same bins.
        beta: samples per bin.

    Returns:
        The error as a fraction (x100 for the printed number). 0 by construction when N < 2 * beta.
    """
    checked = _calibration_inputs(confidence, correct, "rms_calib_error_hendrycks")
    confidence, correct = _sorted_by_confidence(*checked)
    gaps, counts = _adaptive_bin_gaps(confidence, correct, beta)
    if gaps.numel() < 2:
        warnings.warn(f"rms_calib_error_hendrycks: N={confidence.numel()} < 2*beta={2 * beta} gives a single bin, "
                      "which the reference skips: the paper-compatible value is 0 by construction", stacklevel=2)
    return _combine_gaps(gaps[:-1], counts[:-1], confidence.numel(), p)


def rms_calib_error(confidence: Tensor, correct: Tensor, p: str = "2", beta: int = RMS_BIN_SIZE) -> float:
    """Corrected RMS calibration error: the adaptive bins of :func:`rms_calib_error_hendrycks`, all of them summed.

    Args and Returns as :func:`rms_calib_error_hendrycks`; the weights n_b/N sum to 1 here.
    """
    confidence, correct = _sorted_by_confidence(*_calibration_inputs(confidence, correct, "rms_calib_error"))
    gaps, counts = _adaptive_bin_gaps(confidence, correct, beta)
    return _combine_gaps(gaps, counts, confidence.numel(), p)


def _equal_width_bins(confidence: Tensor, correct: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-bin counts, mean confidence and accuracy of checked inputs (:func:`_calibration_inputs`); bin b holds
    lower_b < conf <= upper_b (conf = 0 in none)."""
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    bin_of = torch.bucketize(confidence, edges, right=False) - 1  # edges[b] < conf <= edges[b+1] -> b
    keep = bin_of >= 0
    bin_of, confidence, correct = bin_of[keep], confidence[keep], correct[keep]
    counts = torch.bincount(bin_of, minlength=n_bins).double()
    denom = counts.clamp(min=1)
    mean_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_of, confidence) / denom
    accuracy = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_of, correct) / denom
    return counts, mean_conf, accuracy


def expected_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int = ECE_BINS) -> float:
    """ECE-15 with (lower, upper] bins (Guo et al. 2017; docs/metrics.md §5.2): ``sum_b n_b/N |acc_b - conf_b|``.

    Args:
        confidence: (N,) in [0, 1], any device.
        correct: (N,) bool or {0, 1}.
        n_bins: equal-width bins on [0, 1].

    Returns:
        ECE as a fraction; N counts every sample, including any with confidence exactly 0 (in no bin).
    """
    confidence, correct = _calibration_inputs(confidence, correct, "expected_calibration_error")
    counts, mean_conf, accuracy = _equal_width_bins(confidence, correct, n_bins)
    total = confidence.numel()
    return ((counts / total) * (accuracy - mean_conf).abs()).sum().item()


def max_calibration_error(confidence: Tensor, correct: Tensor, n_bins: int = ECE_BINS) -> float:
    """Largest |acc_b - conf_b| over the non-empty bins of :func:`expected_calibration_error`."""
    confidence, correct = _calibration_inputs(confidence, correct, "max_calibration_error")
    counts, mean_conf, accuracy = _equal_width_bins(confidence, correct, n_bins)
    gaps = (accuracy - mean_conf).abs()[counts > 0]
    return gaps.max().item() if gaps.numel() else 0.0


def reliability_bins(confidence: Tensor, correct: Tensor, n_bins: int = ECE_BINS) -> dict[str, list[float]]:
    """The (lower, upper] equal-width bins as plain lists, for a reliability diagram.

    Returns:
        {"edges": n_bins + 1 floats, "count", "confidence", "accuracy": n_bins floats each (0 for empty bins)}.
    """
    confidence, correct = _calibration_inputs(confidence, correct, "reliability_bins")
    counts, mean_conf, accuracy = _equal_width_bins(confidence, correct, n_bins)
    return {"edges": torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64).tolist(),
            "count": counts.tolist(), "confidence": mean_conf.tolist(), "accuracy": accuracy.tolist()}


def calibration_summary(confidence: Tensor, correct: Tensor) -> dict[str, float]:
    """Every calibration number the report prints for one set of predictions (fractions): both RMS variants,
    ECE-15 and MCE-15, sorting and binning once. N >= RMS_BIN_SIZE."""
    sorted_conf, sorted_correct = _sorted_by_confidence(*_calibration_inputs(confidence, correct,
                                                                             "calibration_summary"))
    gaps, counts = _adaptive_bin_gaps(sorted_conf, sorted_correct, RMS_BIN_SIZE)
    n = sorted_conf.numel()
    bin_counts, mean_conf, accuracy = _equal_width_bins(sorted_conf, sorted_correct, ECE_BINS)
    bin_gaps = (accuracy - mean_conf).abs()
    return {"rms_calib_error_hendrycks": _combine_gaps(gaps[:-1], counts[:-1], n, "2"),  # last bin skipped (§5.1)
            "rms_calib_error": _combine_gaps(gaps, counts, n, "2"),
            "ece_15": ((bin_counts / n) * bin_gaps).sum().item(),
            "mce_15": bin_gaps[bin_counts > 0].max().item() if (bin_counts > 0).any() else 0.0}


def _check_same_length(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} has {a.shape[0]} entries but {name_b} has {b.shape[0]}")


def corruption_error(errors: Mapping[int, float], baseline: Sequence[float]) -> float:
    """CE_c = sum_s E_{s,c} / sum_s E^base_{s,c} over the severities present in ``errors`` (docs/metrics.md §3.1).

    Args:
        errors: severity (1..5) -> top-1 error (fraction) of the evaluated model on one corruption.
        baseline: the baseline's errors for severities 1..5 (e.g. a row of ALEXNET_ERRORS).

    Returns:
        The ratio; 1.0 means as bad as the baseline.
    """
    severities = sorted(errors)
    return sum(errors[s] for s in severities) / sum(baseline[s - 1] for s in severities)


def relative_corruption_error(errors: Mapping[int, float], clean_error: float, baseline: Sequence[float],
                              baseline_clean_error: float) -> float:
    """rCE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean) (docs/metrics.md §3.1)."""
    severities = sorted(errors)
    num = sum(errors[s] - clean_error for s in severities)
    return num / sum(baseline[s - 1] - baseline_clean_error for s in severities)


def mce(cell_errors: Mapping[str, Mapping[int, float]], baseline: Mapping[str, Sequence[float]] = ALEXNET_ERRORS,
        corruptions: Sequence[str] = CORRUPTIONS) -> float:
    """Mean Corruption Error: the mean of CE_c over ``corruptions`` (default the 15 benchmark ones).

    Args:
        cell_errors: corruption -> severity -> error (fraction); must hold every name in ``corruptions``.
        baseline: corruption -> five baseline errors; default AlexNet (docs/metrics.md §3.2).
        corruptions: which CEs to average. Only the default 15 give the published "mCE".

    Returns:
        mCE as a ratio (1.0 = AlexNet; the paper prints x100).
    """
    _require(cell_errors, corruptions, "mce")
    return sum(corruption_error(cell_errors[c], baseline[c]) for c in corruptions) / len(corruptions)


def relative_mce(cell_errors: Mapping[str, Mapping[int, float]], clean_error: float,
                 baseline_clean_error: float = ALEXNET_CLEAN_ERROR,
                 baseline: Mapping[str, Sequence[float]] = ALEXNET_ERRORS,
                 corruptions: Sequence[str] = CORRUPTIONS) -> float:
    """Relative mCE: the mean of rCE_c over ``corruptions``. Always print ``baseline_clean_error`` beside it:
    the AlexNet clean error is not in any reference code (docs/metrics.md §3.3)."""
    _require(cell_errors, corruptions, "relative_mce")
    total = sum(relative_corruption_error(cell_errors[c], clean_error, baseline[c], baseline_clean_error)
                for c in corruptions)
    return total / len(corruptions)


def mean_corruption_error(cell_errors: Mapping[str, Mapping[int, float]],
                          corruptions: Sequence[str] = CORRUPTIONS) -> float:
    """Unnormalised mean of the cell errors over ``corruptions`` x their severities.

    With the 15 benchmark corruptions this is the CIFAR "mean corruption error" (docs/metrics.md §2) and, on
    ImageNet-C, the "unnormalised mean error" that must never be called mCE (§3.1). Each corruption's severities
    are averaged first, so with every severity present it equals the mean of the 75 cells.
    """
    _require(cell_errors, corruptions, "mean_corruption_error")
    return sum(_mean(cell_errors[c].values()) for c in corruptions) / len(corruptions)


def cifar_c_summary(cell_errors: Mapping[str, Mapping[int, float]]) -> dict:
    """Everything a CIFAR-C table prints, from the per-cell errors (docs/metrics.md §2, §8).

    Args:
        cell_errors: corruption -> severity -> error (fraction), any subset of the 19 x 5 cells.

    Returns:
        dict with per_corruption (mean over its severities), per_severity (mean over the benchmark corruptions
        present), corruption_error (mean over the benchmark corruptions present), complete (all 15 x 5 present:
        only then is corruption_error the published number), corruption_error_19 (only when all 19 are present;
        labelled as such) and extra (the four extra corruptions, never in the mean).
    """
    bench = [c for c in CORRUPTIONS if c in cell_errors]
    extra = [c for c in EXTRA_CORRUPTIONS if c in cell_errors]
    summary = {
        "per_corruption": {c: _mean(cell_errors[c].values()) for c in bench + extra},
        "per_severity": _per_severity(cell_errors, bench),
        "corruption_error": mean_corruption_error(cell_errors, bench) if bench else None,
        "complete": _complete(cell_errors, CORRUPTIONS),
        "corruptions_in_mean": bench,
        "extra": {c: _mean(cell_errors[c].values()) for c in extra},
    }
    if _complete(cell_errors, CORRUPTIONS + EXTRA_CORRUPTIONS):
        summary["corruption_error_19"] = mean_corruption_error(cell_errors, CORRUPTIONS + EXTRA_CORRUPTIONS)
    return summary


def imagenet_c_summary(cell_errors: Mapping[str, Mapping[int, float]], clean_error: float | None,
                       alexnet_clean_error: float = ALEXNET_CLEAN_ERROR) -> dict:
    """Everything an ImageNet-C table prints (docs/metrics.md §3, §8), from per-cell errors and the clean error.

    Returns:
        dict with ce / rce per corruption (all 19 where present), mce and relative_mce over the benchmark
        corruptions present (``complete`` says whether that is all 15 x 5, i.e. the published mCE),
        alexnet_clean_error (the constant used for relative mCE), mean_error (unnormalised, benchmark
        corruptions), mean_accuracy (RobustBench's headline, 1 - mean_error), per_severity, extra, and
        mean_error_19 only when all 19 corruptions are present.
    """
    summary = cifar_c_summary(cell_errors)
    bench = summary["corruptions_in_mean"]
    present = bench + list(summary["extra"])
    summary["mean_error"] = summary.pop("corruption_error")
    summary["mean_accuracy"] = None if summary["mean_error"] is None else 1.0 - summary["mean_error"]
    if "corruption_error_19" in summary:
        summary["mean_error_19"] = summary.pop("corruption_error_19")
    summary["ce"] = {c: corruption_error(cell_errors[c], ALEXNET_ERRORS[c]) for c in present}
    summary["mce"] = mce(cell_errors, corruptions=bench) if bench else None
    summary["alexnet_clean_error"] = alexnet_clean_error
    if clean_error is not None:
        summary["rce"] = {c: relative_corruption_error(cell_errors[c], clean_error, ALEXNET_ERRORS[c],
                                                       alexnet_clean_error) for c in present}
        summary["relative_mce"] = relative_mce(cell_errors, clean_error, alexnet_clean_error,
                                               corruptions=bench) if bench else None
    return summary


def _per_severity(cell_errors: Mapping[str, Mapping[int, float]], corruptions: Sequence[str]) -> dict[int, float]:
    severities = sorted({s for c in corruptions for s in cell_errors[c]})
    return {s: _mean(cell_errors[c][s] for c in corruptions if s in cell_errors[c]) for s in severities}


def _complete(cell_errors: Mapping[str, Mapping[int, float]], corruptions: Sequence[str]) -> bool:
    return all(c in cell_errors and set(cell_errors[c]) == {1, 2, 3, 4, 5} for c in corruptions)


def _require(cell_errors: Mapping, corruptions: Sequence[str], what: str) -> None:
    missing = [c for c in corruptions if c not in cell_errors or cell_errors[c] in ({}, None)]
    if missing:
        raise ValueError(f"{what}: no values for {', '.join(missing)} (needs all of {', '.join(corruptions)})")


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def frame_pairs(n_frames: int, noise: bool, difficulty: int = 1) -> tuple[Tensor, Tensor]:
    """The (reference, compared) frame indices a -P metric averages over (docs/metrics.md §4.2).

    Noise: (0, j) for j = 1..n-1, the step forced to 1. Others: (j - d, j) for j = d..n-1, the n - d pairs that
    the reference's d interleaved sub-sequences i, i+d, i+2d, ... cover together.

    Returns:
        (P,) int64 reference indices and (P,) int64 compared indices, on the CPU.
    """
    step = 1 if noise else difficulty
    if step < 1 or n_frames <= step:
        raise ValueError(f"a -P sequence of {n_frames} frames has no frame pairs at difficulty {difficulty}")
    compared = torch.arange(step, n_frames)
    reference = torch.zeros_like(compared) if noise else compared - step
    return reference, compared


def flip_probability(preds: Tensor, noise: bool, difficulty: int = 1) -> Tensor:
    """Per-video flip probability FP_v: the fraction of frame pairs whose top-1 predictions differ (§4.2).

    Args:
        preds: (V, T) integer top-1 predictions of V videos with T frames each, any device.
        noise: compare every frame with frame 0 (see :func:`is_noise_perturbation`).
        difficulty: step d between compared frames for non-noise sequences (1, 2 or 3).

    Returns:
        (V,) float64 on the CPU; FP_p is its mean (every video weighted equally).
    """
    ref, cmp = frame_pairs(preds.shape[1], noise, difficulty)
    preds = preds.cpu()
    return (preds[:, cmp] != preds[:, ref]).double().mean(dim=1)


def ranked_classes(logits: Tensor) -> Tensor:
    """Classes in descending logit order, ties to the lower class index (SciPy rankdata(-z, 'ordinal'), §4.1).

    Args:
        logits: (..., K) float.

    Returns:
        (..., K) int64: entry i is the class ranked i + 1.
    """
    return torch.sort(logits, dim=-1, descending=True, stable=True).indices


def top5_distance(logits: Tensor, noise: bool, difficulty: int = 1) -> Tensor:
    """Per-video top-5 distance uT5D_v, the mean over frame pairs of sum_{i=1..5} |min(sigma(i), 6) - i| (§4.3).

    sigma(i) is the rank in the compared frame of the class ranked i in the reference frame. Only those five
    ranks are needed: rank = 1 + #(larger logits) + #(equal logits at a lower class index).

    Args:
        logits: (V, T, K) float, any device; with K < 5 the sum runs over the K ranks.
        noise, difficulty: as in :func:`flip_probability`.

    Returns:
        (V,) float64 on the CPU.
    """
    ref, cmp = frame_pairs(logits.shape[1], noise, difficulty)
    ref, cmp = ref.to(logits.device), cmp.to(logits.device)
    logits = logits.float()
    k = min(5, logits.shape[-1])                                    # fewer than 5 classes: the top-K distance
    top5 = ranked_classes(logits)[..., :k][:, ref]                  # (V, P, 5) classes ranked 1..5 in the ref frame
    z = logits[:, cmp]                                              # (V, P, K) the compared frames
    z_top = z.gather(-1, top5).unsqueeze(-1)                        # (V, P, 5, 1)
    z = z.unsqueeze(-2)                                             # (V, P, 1, K)
    classes = torch.arange(logits.shape[-1], device=logits.device)
    ties_before = (z == z_top) & (classes < top5.unsqueeze(-1))
    sigma = 1 + (z > z_top).sum(-1) + ties_before.sum(-1)           # (V, P, 5)
    i = torch.arange(1, k + 1, device=logits.device)
    return (sigma.clamp(max=6) - i).abs().sum(-1).double().mean(dim=1).cpu()


def zipf_distance(logits: Tensor, noise: bool, difficulty: int = 1) -> Tensor:
    """Per-video Zipf distance, the mean over frame pairs of sum_k |1/k - 1/sigma(k)| / k over all K classes (§4.3).

    Computed by the reference evaluator but not reported in the papers; we report it as a secondary metric.

    Args and Returns as :func:`top5_distance`.
    """
    ref, cmp = frame_pairs(logits.shape[1], noise, difficulty)
    order = ranked_classes(logits.float())                           # (V, T, K)
    ranks = torch.empty_like(order)
    k = torch.arange(1, order.shape[-1] + 1, device=order.device)
    ranks.scatter_(-1, order, k.expand_as(order))                   # ranks[v, t, class] = 1-based rank
    sigma = ranks[:, cmp].gather(-1, order[:, ref]).double()        # (V, P, K) compared-frame rank of ref's k-th
    recip = 1.0 / k.double()
    return ((recip - 1.0 / sigma).abs() * recip).sum(-1).mean(dim=1).cpu()


def normalised_mean(values: Mapping[str, float], baseline: Mapping[str, float],
                    perturbations: Sequence[str] = IMAGENET_P_TEST) -> float:
    """mFR (from flip probabilities) or mT5D (from top-5 distances): the mean over ``perturbations`` of
    value_p / baseline_p (docs/metrics.md §4.4). The baseline must come from the same data and pre-processing.

    Returns:
        The mean ratio (1.0 = as unstable as the baseline; the paper prints x100).
    """
    _require(values, perturbations, "normalised_mean")
    missing = [p for p in perturbations if p not in baseline]
    if missing:
        raise ValueError(f"normalised_mean: the baseline has no value for {', '.join(missing)}")
    return sum(values[p] / baseline[p] for p in perturbations) / len(perturbations)


def cifar_p_mfp_script(flip_probabilities: Mapping[str, float]) -> float:
    """Unnormalised mean flip probability over CIFAR_P_SCRIPT, the list of the authors' CIFAR-P script (with
    spatter, not snow), which the AugMix paper presumably reports (docs/metrics.md §4.5, UNCERTAIN)."""
    _require(flip_probabilities, CIFAR_P_SCRIPT, "cifar_p_mfp_script")
    return _mean(flip_probabilities[p] for p in CIFAR_P_SCRIPT)


def cifar_p_mfp_benchmark(flip_probabilities: Mapping[str, float]) -> float:
    """Unnormalised mean flip probability over the ImageNet-P test list (snow instead of spatter, §4.5)."""
    _require(flip_probabilities, CIFAR_P_BENCHMARK, "cifar_p_mfp_benchmark")
    return _mean(flip_probabilities[p] for p in CIFAR_P_BENCHMARK)


def perturbation_summary(flip_probabilities: Mapping[str, float], top5_distances: Mapping[str, float],
                         baseline: Mapping[str, Mapping[str, float]] | None = None, cifar: bool = False) -> dict:
    """The -P aggregates (docs/metrics.md §4.4, §4.5, §8) from per-perturbation FP_p and uT5D_p.

    Args:
        flip_probabilities, top5_distances: perturbation -> value (mean over videos).
        baseline: optional {"flip_probability": {p: FP}, "top5_distance": {p: T5D}} of a baseline model on the
            same data; gives the normalised flip_rate / t5d_ratio per perturbation and mFR / mT5D.
        cifar: add the two named CIFAR-P means (each only when all its perturbations are present).

    Returns:
        dict with mfp and mean_top5_distance (unnormalised, over the ImageNet-P test perturbations present;
        ``complete`` says whether all 10 are, ``missing`` names the absent ones), plus the CIFAR entries and, with a
        baseline, flip_rate / t5d_ratio per perturbation and mfr / mt5d over the test perturbations that both this
        run and the baseline have: ``normalised_complete`` says whether that is all 10 (only then is mFR the
        published metric) and ``baseline_missing`` names those of this run that the baseline lacks.
    """
    present = [p for p in IMAGENET_P_TEST if p in flip_probabilities]
    summary = {
        "perturbations_in_mean": present,
        "complete": len(present) == len(IMAGENET_P_TEST),
        "missing": [p for p in IMAGENET_P_TEST if p not in flip_probabilities],
        "mfp": _mean(flip_probabilities[p] for p in present) if present else None,
        "mean_top5_distance": _mean(top5_distances[p] for p in present) if present else None,
    }
    if cifar:
        for name, fn, names in (("cifar_p_mfp_script", cifar_p_mfp_script, CIFAR_P_SCRIPT),
                                ("cifar_p_mfp_benchmark", cifar_p_mfp_benchmark, CIFAR_P_BENCHMARK)):
            summary[name] = fn(flip_probabilities) if all(p in flip_probabilities for p in names) else None
    if baseline is not None:
        base_fp, base_t5d = baseline["flip_probability"], baseline["top5_distance"]
        common = [p for p in flip_probabilities if p in base_fp and p in base_t5d]
        summary["flip_rate"] = {p: flip_probabilities[p] / base_fp[p] for p in common}
        summary["t5d_ratio"] = {p: top5_distances[p] / base_t5d[p] for p in common}
        in_mean = [p for p in present if p in common]
        summary["normalised_perturbations_in_mean"] = in_mean
        summary["baseline_missing"] = [p for p in present if p not in common]
        summary["normalised_complete"] = len(in_mean) == len(IMAGENET_P_TEST)
        summary["mfr"] = normalised_mean(flip_probabilities, base_fp, in_mean) if in_mean else None
        summary["mt5d"] = normalised_mean(top5_distances, base_t5d, in_mean) if in_mean else None
    return summary
