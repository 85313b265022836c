"""Verification metrics: EER and normalised minimum detection cost (minDCF), sort-based, O(n log n).

An operating point accepts the trials whose score is *above* a threshold. Sorting the scores
once gives every distinct operating point: after the first ``i`` sorted scores are rejected,
the miss rate is (targets among them) / N_target and the false-alarm rate is (non-targets
among the rest) / N_nontarget. Tied scores are never split, since no threshold separates them.

EER: the miss rate (FNR) grows and the false-alarm rate (FPR) falls along that list; between
the last point with FNR < FPR and the first with FNR >= FPR the ROC is taken to be the straight
segment joining them, and the EER is where that segment meets FNR = FPR.

minDCF: min over operating points of C_miss * p * FNR + C_fa * (1 - p) * FPR, divided by
min(C_miss * p, C_fa * (1 - p)) (the cost of the better trivial system), as in NIST SRE.

Cllr (Brümmer and du Preez, 2006): the scores read as natural-log likelihood ratios, the cost
of the log-likelihood-ratio in bits, ``(mean_tar log2(1 + e^-s) + mean_non log2(1 + e^s)) / 2``:
0 for perfect, 1 for the uninformative LLR 0, larger for badly calibrated scores. min-Cllr is
the Cllr after the best monotone re-mapping of the scores, as in the BOSARIS toolkit: the PAV
(isotonic regression of the labels on the scores) gives the optimal posterior P(target | s)
per score, turned into an LLR by removing the list's prior odds, ``logit(P) - log(N_tar /
N_non)``. Cllr - min-Cllr is the calibration loss; min-Cllr depends only on the order of the
scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dropclass_lib.errors import UserError

P_TARGETS = (0.01, 0.001)


@dataclass
class ErrorRates:
    """The distinct operating points, from "accept everything" to "reject everything"."""

    fnr: np.ndarray        # miss rate per operating point (non-decreasing)
    fpr: np.ndarray        # false-alarm rate per operating point (non-increasing)
    thresholds: np.ndarray  # accept when score > threshold (-inf for the first point)


def check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(float64 scores, bool labels)``, flat; non-finite scores or a list without both kinds
    of trial are a :class:`UserError`."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.all(np.isfinite(scores)):
        raise UserError("scores contain NaN or infinite values")
    n_tar = int(labels.sum())
    if n_tar == 0 or n_tar == labels.size:
        raise UserError(f"need both target and non-target trials (got {n_tar} target, "
                        f"{labels.size - n_tar} non-target)")
    return scores, labels


def error_rates(scores, labels) -> ErrorRates:
    """Miss and false-alarm rates at every distinct threshold (see the module docstring)."""
    scores, labels = check_scores(scores, labels)
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    y = labels[order]
    n_tar = y.sum()
    n_non = y.size - n_tar
    # Points after rejecting i = 0..n sorted scores; keep only i at a change of score value.
    tar_rejected = np.concatenate(([0], np.cumsum(y)))
    non_rejected = np.concatenate(([0], np.cumsum(~y)))
    cut = np.concatenate(([True], s[1:] != s[:-1], [True]))
    idx = np.flatnonzero(cut)
    fnr = tar_rejected[idx] / n_tar
    fpr = (n_non - non_rejected[idx]) / n_non
    thresholds = np.concatenate(([-np.inf], s))[idx]
    return ErrorRates(fnr=fnr, fpr=fpr, thresholds=thresholds)


def eer_from_rates(rates: ErrorRates) -> tuple[float, float]:
    """``(eer, threshold)``, eer as a fraction, interpolated between the crossing points."""
    fnr, fpr = rates.fnr, rates.fpr
    # The first point has FNR = 0, FPR = 1 and the last FNR = 1, FPR = 0, so 1 <= k < len.
    k = int(np.argmax(fnr >= fpr))
    a, b = k - 1, k
    d_a = fpr[a] - fnr[a]            # > 0
    d_b = fnr[b] - fpr[b]            # >= 0
    alpha = d_a / (d_a + d_b)        # fraction of the way from a to b where FNR = FPR
    eer = fnr[a] + alpha * (fnr[b] - fnr[a])
    t_a = rates.thresholds[a] if np.isfinite(rates.thresholds[a]) else rates.thresholds[b]
    return float(eer), float(t_a + alpha * (rates.thresholds[b] - t_a))


def min_dcf_from_rates(rates: ErrorRates, p_target: float, c_miss: float = 1.0,
                       c_fa: float = 1.0) -> tuple[float, float]:
    """``(normalised minDCF, threshold)`` at prior ``p_target``."""
    if not 0.0 < p_target < 1.0:
        raise UserError(f"p_target must be in (0, 1), got {p_target}")
    dcf = c_miss * p_target * rates.fnr + c_fa * (1.0 - p_target) * rates.fpr
    i = int(np.argmin(dcf))
    return float(dcf[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(rates.thresholds[i])


def compute_eer(scores, labels) -> float:
    """Equal error rate as a fraction (0.05 = 5 %)."""
    return eer_from_rates(error_rates(scores, labels))[0]


def compute_min_dcf(scores, labels, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    return min_dcf_from_rates(error_rates(scores, labels), p_target, c_miss, c_fa)[0]


def compute_metrics(scores, labels, p_targets=P_TARGETS) -> dict:
    """The figures reported for a trial list: EER in percent, minDCF per p_target, counts.

    Keys: ``eer`` (percent), ``eer_threshold``, ``min_dcf_<p>`` / ``min_dcf_<p>_threshold`` for
    each p (``min_dcf_0.01``), ``num_trials``, ``num_target``, ``num_nontarget``.
    """
    rates = error_rates(scores, labels)
    eer, eer_thr = eer_from_rates(rates)
    labels = np.asarray(labels, dtype=bool)
    out = {"eer": 100.0 * eer, "eer_threshold": eer_thr}
    for p in p_targets:
        dcf, thr = min_dcf_from_rates(rates, p)
        out[f"min_dcf_{p:g}"] = dcf
        out[f"min_dcf_{p:g}_threshold"] = thr
    out.update(num_trials=int(labels.size), num_target=int(labels.sum()),
               num_nontarget=int(labels.size - labels.sum()))
    return out


def compute_cllr(scores, labels) -> float:
    """Cllr in bits of scores read as natural-log likelihood ratios (see the module docstring)."""
    return _cllr(*check_scores(scores, labels))


def _cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    # log(1 + e^x) = logaddexp(0, x): exact for large |x| and for the infinite LLRs of PAV
    # (a pure-target block gets +inf, a pure-non-target one -inf: both cost 0).
    miss = np.logaddexp(0.0, -llrs[labels]).mean()
    fa = np.logaddexp(0.0, llrs[~labels]).mean()
    return float((miss + fa) / (2.0 * np.log(2.0)))


def pav_llrs(scores, labels) -> np.ndarray:
    """The optimal monotone re-mapping of ``scores`` to LLRs (PAV; infinite at pure blocks)."""
    from scipy.optimize import isotonic_regression

    scores, labels = check_scores(scores, labels)
    # Tied scores are one point (their mean label, weighted by their count), so that the map is a
    # function of the score.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    tied_mean = np.bincount(inverse, weights=labels.astype(np.float64)) / counts
    posterior = isotonic_regression(tied_mean, weights=counts.astype(np.float64), increasing=True).x[inverse]
    n_tar = labels.sum()
    prior_log_odds = np.log(n_tar / (labels.size - n_tar))
    with np.errstate(divide="ignore"):
        return np.log(posterior) - np.log1p(-posterior) - prior_log_odds


def compute_min_cllr(scores, labels) -> float:
    """min-Cllr in bits: the Cllr of the PAV-calibrated scores (see the module docstring)."""
    return _cllr(pav_llrs(scores, labels), np.asarray(labels, dtype=bool).ravel())


def calibration_metrics(scores, labels) -> dict:
    """``cllr`` and ``min_cllr`` (bits) of a scored list, for its metrics.json."""
    return {"cllr": compute_cllr(scores, labels), "min_cllr": compute_min_cllr(scores, labels)}


def results_line(metrics: dict, p_targets=P_TARGETS) -> str:
    """Kaldi-like one-line summary: ``EER 3.21 minDCF@0.01 0.3120 minDCF@0.001 0.4550 trials N``."""
    parts = [f"EER {metrics['eer']:.2f}"]
    parts += [f"minDCF@{p:g} {metrics[f'min_dcf_{p:g}']:.4f}" for p in p_targets]
    parts.append(f"trials {metrics['num_trials']}")
    return " ".join(parts)
