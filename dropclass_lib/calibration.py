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


def train_calibration(scores, labels, target_prior: float = 0.5) -> LinearCalibration:
    """The prior-weighted logistic-regression calibration of ``scores`` (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    check_prior(target_prior)
    scores, labels = check_scores(scores, labels)
    n_tar = labels.sum()
    n_non = labels.size - n_tar
    # Weights summing to the number of trials keep the solver's tolerances on their usual scale.
    weight = np.where(labels, target_prior / n_tar, (1.0 - target_prior) / n_non) * labels.size
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)
    model.fit(scores[:, None], labels.astype(int), sample_weight=weight)
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    return LinearCalibration(slope, intercept - logit(target_prior), float(target_prior))
