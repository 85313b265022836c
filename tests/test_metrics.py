"""EER and minDCF on hand-computed cases, and against brute-force counting."""

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from dropclass_lib.errors import UserError
from dropclass_lib.metrics import (compute_eer, compute_metrics, compute_min_dcf, eer_from_rates,
                                   error_rates, results_line)

T, N = True, False


def test_eer_interpolates_between_crossing_points_and_never_splits_ties():
    scores = [0.5, 1.0, 2.0, 2.0, 3.0, 3.5]
    labels = [N, T, N, T, T, N]          # 3 targets, 3 non-targets; a tie at 2.0
    # Reject the i lowest scores (a threshold cannot separate the tied pair at 2.0):
    #   reject {}                 FNR 0    FPR 3/3
    #   reject {0.5}              FNR 0    FPR 2/3
    #   reject {0.5, 1.0}         FNR 1/3  FPR 2/3   <- last point with FNR < FPR  (threshold 1.0)
    #   reject {.., 2.0, 2.0}     FNR 2/3  FPR 1/3   <- first point with FNR >= FPR (threshold 2.0)
    #   reject {.., 3.0}          FNR 3/3  FPR 1/3
    #   reject all                FNR 3/3  FPR 0
    # On the segment (1/3, 2/3) -> (2/3, 1/3): FNR = FPR at alpha = (2/3 - 1/3) / (1/3 + 1/3) = 1/2,
    # EER = 1/3 + 1/2 * (2/3 - 1/3) = 1/2, threshold 1.0 + 1/2 * (2.0 - 1.0) = 1.5.
    # (Splitting the tie would wrongly give the point FNR = FPR = 1/3.)
    rates = error_rates(scores, labels)
    np.testing.assert_allclose(rates.fnr, [0, 0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(rates.fpr, [1, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 0])
    eer, thr = eer_from_rates(rates)
    assert eer == pytest.approx(0.5)
    assert thr == pytest.approx(1.5)


def test_eer_on_a_vertical_roc_segment():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5]
    labels = [N, T, N, T, T]             # 3 targets, 2 non-targets
    # Points (FNR, FPR): (0, 1) (0, 1/2) (1/3, 1/2) (1/3, 0) (2/3, 0) (1, 0).
    # Crossing between (1/3, 1/2) and (1/3, 0): alpha = (1/2 - 1/3) / ((1/2 - 1/3) + (1/3 - 0)) = 1/3,
    # FNR stays 1/3 along the segment, so EER = 1/3.
    assert compute_eer(scores, labels) == pytest.approx(1 / 3)


def test_min_dcf_hand_computed_and_normalised_by_the_better_trivial_system():
    scores = [1, 2, 3, 4, 5]
    labels = [N, T, N, T, T]             # same operating points as above
    # Points (FNR, FPR): (0, 1) (0, 1/2) (1/3, 1/2) (1/3, 0) (2/3, 0) (1, 0).
    # p = 0.01: DCF / min(0.01, 0.99) = FNR + 99 FPR -> 99, 49.5, 49.83, 1/3, 2/3, 1: min 1/3.
    assert compute_min_dcf(scores, labels, 0.01) == pytest.approx(1 / 3)
    # p = 0.001: FNR + 999 FPR -> min again at (1/3, 0): 1/3.
    assert compute_min_dcf(scores, labels, 0.001) == pytest.approx(1 / 3)
    # p = 0.9: (0.9 FNR + 0.1 FPR) / min(0.9, 0.1) = 9 FNR + FPR -> 1, 1/2, 3.5, 3, 6, 9: min 1/2.
    assert compute_min_dcf(scores, labels, 0.9) == pytest.approx(0.5)
    # Unequal costs: C_miss = 10, C_fa = 1, p = 0.01: (0.1 FNR + 0.99 FPR) / 0.1 = FNR + 9.9 FPR
    # -> 9.9, 4.95, 5.28, 1/3, 2/3, 1: min 1/3.
    assert compute_min_dcf(scores, labels, 0.01, c_miss=10) == pytest.approx(1 / 3)


def test_extremes():
    # Perfect separation: EER 0 and minDCF 0; identical scores: EER 1/2 and minDCF 1.
    assert compute_eer([0, 1, 2, 3], [N, N, T, T]) == 0.0
    assert compute_min_dcf([0, 1, 2, 3], [N, N, T, T], 0.01) == 0.0
    assert compute_eer([1, 1, 1, 1], [N, T, N, T]) == pytest.approx(0.5)
    assert compute_min_dcf([1, 1, 1, 1], [N, T, N, T], 0.01) == pytest.approx(1.0)
    # Fully inverted scores: every target below every non-target.
    assert compute_eer([3, 2, 1, 0], [N, N, T, T]) == pytest.approx(1.0)


def brute_force_min_dcf(scores, labels, p):
    n_tar, n_non = labels.sum(), (~labels).sum()
    best = np.inf
    for thr in np.concatenate(([-np.inf], np.unique(scores))):
        fnr = np.sum(labels & (scores <= thr)) / n_tar
        fpr = np.sum(~labels & (scores > thr)) / n_non
        best = min(best, p * fnr + (1 - p) * fpr)
    return best / min(p, 1 - p)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_brute_force_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(400) < 0.3
    scores = np.round(rng.normal(size=400) + 1.5 * labels, 1)   # rounding makes many ties
    for p in (0.01, 0.001, 0.3):
        assert compute_min_dcf(scores, labels, p) == pytest.approx(brute_force_min_dcf(scores, labels, p))
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    # sklearn lists the points from "accept nothing" (FNR 1, FPR 0) to "accept all" (FNR 0, FPR 1).
    fnr = 1 - tpr
    k = np.flatnonzero(fnr > fpr)[-1]                 # last point on the FNR > FPR side
    (x1, y1), (x2, y2) = (fpr[k], fnr[k]), (fpr[k + 1], fnr[k + 1])
    t = (y1 - x1) / ((y1 - x1) - (y2 - x2))           # where the segment meets FNR = FPR
    expected = y1 + t * (y2 - y1)
    assert compute_eer(scores, labels) == pytest.approx(expected)


def test_compute_metrics_and_results_line():
    m = compute_metrics([1, 2, 3, 4, 5], [N, T, N, T, T])
    assert m["eer"] == pytest.approx(100 / 3)
    assert m["min_dcf_0.01"] == pytest.approx(1 / 3)
    assert (m["num_trials"], m["num_target"], m["num_nontarget"]) == (5, 3, 2)
    assert results_line(m) == "EER 33.33 minDCF@0.01 0.3333 minDCF@0.001 0.3333 trials 5"


def test_bad_input():
    with pytest.raises(UserError, match="both target and non-target"):
        compute_eer([1, 2], [T, T])
    with pytest.raises(UserError, match="NaN"):
        compute_eer([1, np.nan], [T, N])
