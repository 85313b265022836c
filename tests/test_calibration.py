"""Cllr, min-Cllr and the logistic-regression calibration (dropclass_lib/metrics.py, calibration.py,
steps/calibrate_scores.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize

from conftest import run_cli
from dropclass_lib.backends.trial_scoring import write_scoring_outputs
from dropclass_lib.calibration import LinearCalibration, train_calibration, train_fusion
from dropclass_lib.errors import UserError
from dropclass_lib.metrics import compute_cllr, compute_eer, compute_min_cllr, pav_llrs
from dropclass_lib.trials import Trials, write_trials


def _calibrated_gaussian(n_tar: int, n_non: int, mu: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """LLRs that are perfectly calibrated: target ~ N(mu, 2 mu), non-target ~ N(-mu, 2 mu)
    (for these, log p(s|tar)/p(s|non) = s)."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(mu, np.sqrt(2 * mu), n_tar), rng.normal(-mu, np.sqrt(2 * mu), n_non)])
    return scores, np.arange(n_tar + n_non) < n_tar


def _expected_cllr(mu: float) -> float:
    """Cllr of the calibrated Gaussian LLRs by numerical integration (the two halves are equal by symmetry)."""
    sd = np.sqrt(2 * mu)
    pdf = lambda s: np.exp(-(s - mu) ** 2 / (2 * sd ** 2)) / (sd * np.sqrt(2 * np.pi))  # noqa: E731
    value, _ = quad(lambda s: pdf(s) * np.logaddexp(0, -s), -np.inf, np.inf)
    return value / np.log(2)


def test_cllr_of_calibrated_gaussian_scores():
    for mu in (0.5, 2.0, 6.0):
        scores, labels = _calibrated_gaussian(200_000, 200_000, mu, seed=1)
        assert compute_cllr(scores, labels) == pytest.approx(_expected_cllr(mu), rel=0.01)
    # Definition on a tiny list: (log2(1 + e^-2) + (log2(1 + e^1) + log2(1 + e^-3)) / 2) / 2.
    expected = (np.log2(1 + np.exp(-2)) + (np.log2(1 + np.exp(1)) + np.log2(1 + np.exp(-3))) / 2) / 2
    assert compute_cllr([2.0, 1.0, -3.0], [True, False, False]) == pytest.approx(expected)
    assert compute_cllr(np.zeros(4), [True, False, True, False]) == pytest.approx(1.0)  # LLR 0: one bit


def test_min_cllr_by_pav():
    # Separable scores: PAV gives +-inf LLRs, which cost nothing.
    assert compute_min_cllr([-1.0, 0.0, 5.0, 7.0], [False, False, True, True]) == 0.0
    # Scores in the wrong order: PAV pools everything into the prior, LLR 0, one bit.
    assert compute_min_cllr([3.0, 4.0, 1.0, 2.0], [False, False, True, True]) == pytest.approx(1.0)
    # A hand-made PAV: labels by ascending score N T N T T -> blocks {N}, {T, N} (1/2), {T, T}.
    llrs = pav_llrs([1, 2, 3, 4, 5], [False, True, False, True, True])
    prior = np.log(3 / 2)
    np.testing.assert_allclose(llrs[1:3], [-prior, -prior])
    assert llrs[0] == -np.inf and np.all(llrs[3:] == np.inf)
    expected = (np.log2(1 + np.exp(prior)) / 3 + np.log2(1 + np.exp(-prior)) / 2) / 2
    assert compute_min_cllr([1, 2, 3, 4, 5], [False, True, False, True, True]) == pytest.approx(expected)


def test_pav_with_tied_scores_equals_scikit_learns_isotonic_regression():
    # Tied scores pool into one point: the reference is scikit-learn's IsotonicRegression, which does so.
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(3)
    scores = np.round(rng.standard_normal(2000), 1)  # about 60 distinct values
    labels = rng.random(2000) < 0.3 + 0.2 * (scores > 0)
    posterior = IsotonicRegression(out_of_bounds="clip").fit_transform(scores, labels.astype(np.float64))
    with np.errstate(divide="ignore"):
        expected = np.log(posterior) - np.log1p(-posterior) - np.log(labels.sum() / (~labels).sum())
    llrs = pav_llrs(scores, labels)
    assert np.array_equal(np.isinf(llrs), np.isinf(expected)) and np.isinf(llrs).any()
    np.testing.assert_allclose(llrs, expected, atol=1e-12)
    assert len(np.unique(llrs[scores == scores[0]])) == 1


def test_min_cllr_is_at_most_cllr_and_invariant_under_monotone_maps():
    rng = np.random.default_rng(2)
    scores, labels = _calibrated_gaussian(3000, 6000, 1.5, seed=3)
    base = compute_min_cllr(scores, labels)
    assert base <= compute_cllr(scores, labels)
    for transform in (lambda s: 3 * s + 7, lambda s: s ** 3, np.exp, lambda s: np.arctan(s / 4)):
        mapped = transform(scores)
        assert compute_min_cllr(mapped, labels) == pytest.approx(base, abs=1e-12)
        assert compute_min_cllr(mapped, labels) <= compute_cllr(mapped, labels)
    for _ in range(5):
        s, y = rng.normal(size=200), rng.random(200) < 0.3
        assert compute_min_cllr(s, y) <= compute_cllr(s, y) + 1e-12


def _weighted_objective(params, scores, labels, prior):
    llr = params[0] * scores + params[1] + np.log(prior / (1 - prior))
    return prior * np.logaddexp(0, -llr[labels]).mean() + (1 - prior) * np.logaddexp(0, llr[~labels]).mean()


@pytest.mark.parametrize("prior", [0.5, 0.1, 0.9])
def test_calibration_minimises_the_prior_weighted_cross_entropy(prior):
    llrs, labels = _calibrated_gaussian(500, 4000, 2.0, seed=4)
    scores = 0.3 * llrs - 1.2        # miscalibrated: the true map back is (s + 1.2) / 0.3
    cal = train_calibration(scores, labels, target_prior=prior)
    direct = minimize(_weighted_objective, x0=[1.0, 0.0], args=(scores, labels, prior), method="Nelder-Mead",
                      options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000}).x
    assert cal.target_prior == prior
    assert (cal.slope, cal.offset) == pytest.approx(tuple(direct), abs=2e-4)
    assert cal.slope == pytest.approx(1 / 0.3, rel=0.15) and cal.offset == pytest.approx(1.2 / 0.3, rel=0.15)


def test_fusion_recovers_the_llr_of_two_independent_systems():
    """Two systems with independent Gaussian scores, target ~ N(m_i, 1), non-target ~ N(0, 1):
    the joint LLR is m_1 s_1 + m_2 s_2 - (m_1^2 + m_2^2) / 2, which the fusion must find."""
    rng = np.random.default_rng(7)
    m = np.array([2.0, 0.7])
    n_tar, n_non = 4000, 20000
    labels = np.arange(n_tar + n_non) < n_tar
    scores = rng.standard_normal((labels.size, 2)) + np.where(labels[:, None], m, 0.0)
    fusion = train_fusion(["a", "b"], scores, labels, np.zeros(labels.size, int), ["dev"])
    # standard error of each weight about 0.02 here
    np.testing.assert_allclose(fusion.weights, m, atol=0.08)
    assert fusion.offset == pytest.approx(-(m @ m) / 2, abs=0.15)
    assert fusion.apply(scores[:2]) == pytest.approx(scores[:2] @ np.array(fusion.weights) + fusion.offset)
    # each list weighs the same whatever its size: a list a quarter the size (of scores scaled by
    # 2) counts as if it were repeated four times
    quarter = np.r_[rng.choice(n_tar, n_tar // 4, replace=False), n_tar + rng.choice(n_non, n_non // 4, replace=False)]
    small, small_labels = 2 * scores[quarter], labels[quarter]
    grouped = train_fusion(["a", "b"], np.r_[scores, small], np.r_[labels, small_labels],
                           np.r_[np.zeros(labels.size, int), np.ones(small_labels.size, int)], ["one", "two"])
    repeated = train_fusion(["a", "b"], np.r_[scores, np.tile(small, (4, 1))], np.r_[labels, np.tile(small_labels, 4)],
                            np.zeros(labels.size + 4 * small_labels.size, int), ["one+two"])
    np.testing.assert_allclose(grouped.weights, repeated.weights, rtol=1e-4)
    assert grouped.offset == pytest.approx(repeated.offset, abs=1e-4)
    with pytest.raises(UserError, match="target and non-target"):
        train_fusion(["a", "b"], scores[:10], labels[:10], np.zeros(10, int), ["dev"])


def test_calibration_lowers_cllr_on_a_miscalibrated_list():
    dev_llrs, dev_labels = _calibrated_gaussian(1000, 9000, 2.0, seed=5)
    eval_llrs, eval_labels = _calibrated_gaussian(1000, 9000, 2.0, seed=6)
    miscalibrate = lambda s: 4.0 * s + 3.0  # noqa: E731   overconfident and shifted
    cal = train_calibration(miscalibrate(dev_llrs), dev_labels)
    before = compute_cllr(miscalibrate(eval_llrs), eval_labels)
    after = compute_cllr(cal.apply(miscalibrate(eval_llrs)), eval_labels)
    floor = compute_min_cllr(eval_llrs, eval_labels)
    assert before > 1.0 and after < before  # worse than the uninformative LLR 0, then better
    assert after == pytest.approx(compute_cllr(eval_llrs, eval_labels), abs=0.01)  # as good as the true LLRs
    assert floor <= after < floor + 0.02
    assert compute_eer(cal.apply(miscalibrate(eval_llrs)), eval_labels) == compute_eer(eval_llrs, eval_labels)
    with pytest.raises(UserError, match="target prior"):
        train_calibration(dev_llrs, dev_labels, target_prior=1.0)


def _score_dir(root, name, llrs, labels, transform):
    """A scoring directory as steps/score_trials.py leaves it, for a list of ``transform(llrs)``."""
    n = len(llrs)
    trials = Trials(np.array([f"e{i % 7}" for i in range(n)], dtype=object),
                    np.array([f"t{i}" for i in range(n)], dtype=object), np.asarray(labels))
    trials_path = root / f"{name}.trials"
    write_trials(trials_path, trials)
    write_scoring_outputs(root / f"scores_{name}", trials, transform(llrs),
                          {"backend": "plda", "trial_set": name, "trials": str(trials_path)})
    return root / f"scores_{name}"


def test_metrics_json_has_cllr_and_the_step_calibrates(tmp_path):
    transform = lambda s: 0.5 * s - 2.0  # noqa: E731
    dev = _score_dir(tmp_path, "dev", *_calibrated_gaussian(400, 2000, 2.0, seed=7), transform)
    test_llrs, test_labels = _calibrated_gaussian(400, 2000, 2.0, seed=8)
    test = _score_dir(tmp_path, "test", test_llrs, test_labels, transform)
    raw = json.loads((test / "metrics.json").read_text())
    # metrics.json carries the two Cllr figures, computed from the written scores.
    assert raw["cllr"] == pytest.approx(compute_cllr(transform(test_llrs), test_labels))
    assert raw["min_cllr"] == pytest.approx(compute_min_cllr(test_llrs, test_labels))

    out = tmp_path / "sys"
    code, err = run_cli("steps/calibrate_scores.py", "--train", str(dev), str(test), str(out))
    assert code == 0, err
    cal = LinearCalibration.load(out / "calibration_scores_dev.json")
    assert cal.slope == pytest.approx(2.0, rel=0.15) and cal.target_prior == 0.5
    calibrated = json.loads((out / "scores_test_cal" / "metrics.json").read_text())
    assert calibrated["backend"] == "plda+cal" and calibrated["trial_set"] == "test"
    assert calibrated["eer"] == pytest.approx(raw["eer"]) and calibrated["min_cllr"] == pytest.approx(raw["min_cllr"])
    assert calibrated["cllr"] < raw["cllr"] and calibrated["cllr"] < calibrated["min_cllr"] + 0.05
    lines = (out / "scores_test_cal" / "scores").read_text().splitlines()
    written = np.array([float(line.split()[2]) for line in lines])
    np.testing.assert_allclose(written, cal.apply(np.round(transform(test_llrs), 6)), atol=2e-6)

    # A saved calibration applies to other lists as it is; the prior option changes the training.
    code, err = run_cli("steps/calibrate_scores.py", "--calibration", str(out / "calibration_scores_dev.json"),
                        str(dev), str(tmp_path / "again"))
    assert code == 0, err
    assert (tmp_path / "again" / "scores_dev_cal" / "scores").is_file()
    code, err = run_cli("steps/calibrate_scores.py", "--target-prior", "0.05", "--train", str(dev), str(dev),
                        str(tmp_path / "p05"))
    assert code == 0, err
    assert LinearCalibration.load(tmp_path / "p05" / "calibration_scores_dev.json").target_prior == 0.05


def test_step_errors_are_one_line(tmp_path):
    dev = _score_dir(tmp_path, "dev", *_calibrated_gaussian(50, 100, 2.0, seed=9), lambda s: s)
    code, err = run_cli("steps/calibrate_scores.py", "--train", str(tmp_path / "nope"), str(dev), str(tmp_path / "o"))
    assert code == 1 and "metrics.json does not exist" in err and "Traceback" not in err
    lines = (dev / "scores").read_text().splitlines()
    lines[3] = "e3 tX 1.0"
    (dev / "scores").write_text("\n".join(lines) + "\n")
    code, err = run_cli("steps/calibrate_scores.py", "--train", str(dev), str(dev), str(tmp_path / "o"))
    assert code == 1 and f"{dev / 'scores'}:4:" in err and "'e3 tX 1.0'" in err
    code, err = run_cli("steps/calibrate_scores.py", "--target-prior", "0", "--train", str(dev), str(dev), str(tmp_path / "o"))
    assert code == 1 and "target prior must be in (0, 1)" in err
    code, err = run_cli("steps/calibrate_scores.py", "--calibration", str(tmp_path / "none.json"), str(dev), str(tmp_path / "o"))
    assert code == 1 and "does not exist" in err
