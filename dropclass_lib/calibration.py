"""Score calibration: an affine map from a system's scores to log-likelihood ratios, trained by
prior-weighted logistic regression on a development list (as BOSARIS's and FoCal's linear
calibration).

The map ``llr = slope * score + offset`` minimises the prior-weighted cross-entropy

    P * mean_tar log(1 + e^-(llr + logit P)) + (1 - P) * mean_non log(1 + e^(llr + logit P))

with ``P`` the target prior (0.5 by default; at 0.5 this is Cllr, up to a factor). That is a
logistic regression of the labels on the scores in which each target trial weighs ``P /
N_tar`` and each non-target ``(1 - P) / N_non``, whatever the list's own proportions; its
fitted log-odds are posterior log-odds at prior P, so ``logit P`` is taken off to give LLRs.
Fitted by scikit-learn's ``LogisticRegression`` without regularisation. Being increasing
(slope > 0 for any usable system), the map leaves EER, minDCF and min-Cllr unchanged: it only
makes the score values mean what an LLR means, so thresholds can be set from the costs and
prior (Bayes threshold ``-logit p_target``) instead of on a development list.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from dropclass_lib.atomic import atomic_open
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.metrics import check_scores


def logit(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))


@dataclass
class LinearCalibration:
    slope: float
    offset: float
    target_prior: float
    """The prior the cross-entropy was weighted with in training."""

    def apply(self, scores) -> np.ndarray:
        """Log-likelihood ratios (natural log) of ``scores``."""
        return self.slope * np.asarray(scores, dtype=np.float64) + self.offset

    def save(self, path: str | os.PathLike) -> None:
        with atomic_open(path, "w", encoding="utf-8") as f:
            json.dump({"type": "linear", **asdict(self)}, f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LinearCalibration":
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise UserError(f"calibration {path} does not exist (train one with steps/calibrate_scores.py --train)") from None
        except (OSError, ValueError) as err:
            raise InputFileError(path, None, f"not a calibration file ({err})") from None
        if not isinstance(data, dict) or data.get("type") != "linear" or not {"slope", "offset", "target_prior"} <= set(data):
            raise InputFileError(path, None, "not a calibration file written by steps/calibrate_scores.py")
        return cls(float(data["slope"]), float(data["offset"]), float(data["target_prior"]))


def check_prior(target_prior: float) -> None:
    if not 0.0 < target_prior < 1.0:
        raise UserError(f"the target prior must be in (0, 1), got {target_prior}")


def _prior_weighted_fit(columns: np.ndarray, labels: np.ndarray, target_prior: float,
                        groups: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``(coefficients, LLR offset)`` of the prior-weighted logistic regression of ``labels`` on
    the score ``columns`` (trials x systems). With ``groups`` (a trial-list index per trial), each
    list weighs the same in total, whatever its size."""
    from sklearn.linear_model import LogisticRegression

    check_prior(target_prior)
    groups = np.zeros(labels.size, dtype=int) if groups is None else np.asarray(groups)
    weight = np.empty(labels.size)
    names = np.unique(groups)
    for g in names:
        sel = groups == g
        n_tar = labels[sel].sum()
        n_non = sel.sum() - n_tar
        if n_tar == 0 or n_non == 0:
            raise UserError("every development list needs target and non-target trials")
        weight[sel] = np.where(labels[sel], target_prior / n_tar, (1.0 - target_prior) / n_non) / len(names)
    # Weights summing to the number of trials keep the solver's tolerances on their usual scale.
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)
    model.fit(columns, labels.astype(int), sample_weight=weight * labels.size)
    return model.coef_[0].astype(np.float64), float(model.intercept_[0]) - logit(target_prior)


def train_calibration(scores, labels, target_prior: float = 0.5) -> LinearCalibration:
    """The prior-weighted logistic-regression calibration of ``scores`` (see the module docstring)."""
    scores, labels = check_scores(scores, labels)
    coef, offset = _prior_weighted_fit(scores[:, None], labels, target_prior)
    return LinearCalibration(float(coef[0]), offset, float(target_prior))


@dataclass
class LinearFusion:
    """Linear score fusion (FoCal's): ``llr = sum_i weights[i] * scores_i + offset``, with
    ``components[i]`` the back-end whose scores are ``scores_i``. Trained as the calibration,
    by prior-weighted logistic regression, so the fused scores are LLRs."""

    components: list[str]
    weights: list[float]
    offset: float
    target_prior: float
    trained_on: list[str]
    """The development trial lists, for the record."""

    def apply(self, columns: np.ndarray) -> np.ndarray:
        """LLRs of ``columns`` (trials x components, in ``components`` order)."""
        return np.asarray(columns, dtype=np.float64) @ np.asarray(self.weights) + self.offset

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record, path: str | os.PathLike) -> "LinearFusion":
        keys = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(record, dict) or set(record) != keys:
            raise InputFileError(path, None, f"not a fusion written by steps/train_fusion.py (keys {', '.join(sorted(keys))})")
        if len(record["components"]) != len(record["weights"]) or not record["components"]:
            raise InputFileError(path, None, "components and weights differ in number")
        return cls([str(c) for c in record["components"]], [float(w) for w in record["weights"]],
                   float(record["offset"]), float(record["target_prior"]), [str(t) for t in record["trained_on"]])


def train_fusion(components: list[str], columns: np.ndarray, labels, groups: np.ndarray,
                 trained_on: list[str], target_prior: float = 0.5) -> LinearFusion:
    """The fusion of the score ``columns`` (trials x components) of the development lists
    ``trained_on`` (``groups``: each trial's list index), each list weighing the same."""
    columns = np.asarray(columns, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if columns.ndim != 2 or columns.shape != (labels.size, len(components)):
        raise UserError(f"fusion: {columns.shape} scores for {labels.size} trials and {len(components)} components")
    if not np.isfinite(columns).all():
        raise UserError("fusion: scores must be finite")
    coef, offset = _prior_weighted_fit(columns, labels, target_prior, groups)
    return LinearFusion(list(components), coef.tolist(), offset, float(target_prior), list(trained_on))
