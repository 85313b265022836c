"""Symmetric score normalisation against a cohort: S-norm and adaptive S-norm (AS-norm).

For a trial (e, t) with raw score s:
``s' = ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t) / 2``, where mu_x, sigma_x are the mean
and standard deviation of the scores of x against the cohort: all of the cohort (S-norm) or
only its ``top_n`` highest-scoring members for that x (AS-norm, Matejka et al. 2017).
"""

from __future__ import annotations

import numpy as np

from dropclass_lib.backends.scoring import ScoringSpace, matrix_scores, subset
from dropclass_lib.errors import UserError


def cohort_stats(space: ScoringSpace, cohort: ScoringSpace, top_n: int | None = None,
                 chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-embedding ``(mean, std)`` of its scores against the cohort (top ``top_n`` only if given)."""
    if top_n is not None and not 0 < top_n <= len(cohort):
        raise UserError(f"AS-norm top-N must be between 1 and the cohort size {len(cohort)}, got {top_n}")
    if len(cohort) < 2:
        raise UserError(f"the score-normalisation cohort needs at least 2 embeddings, got {len(cohort)}")
    mean = np.empty(len(space))
    std = np.empty(len(space))
    for s in range(0, len(space), chunk):
        block = matrix_scores(subset(space, np.arange(s, min(s + chunk, len(space)))), cohort).astype(np.float64)
        if top_n is not None and top_n < block.shape[1]:
            block = np.partition(block, block.shape[1] - top_n, axis=1)[:, -top_n:]
        mean[s:s + block.shape[0]] = block.mean(axis=1)
        std[s:s + block.shape[0]] = block.std(axis=1)
    std[std == 0] = 1.0
    return mean, std


def s_norm(raw: np.ndarray, enrol_stats: tuple[np.ndarray, np.ndarray],
           test_stats: tuple[np.ndarray, np.ndarray], ei: np.ndarray, ti: np.ndarray) -> np.ndarray:
    """Normalise trial scores ``raw`` (trial k pairs enrol ``ei[k]`` with test ``ti[k]``)."""
    (me, se), (mt, st) = enrol_stats, test_stats
    raw = np.asarray(raw, dtype=np.float64)
    return (0.5 * ((raw - me[ei]) / se[ei] + (raw - mt[ti]) / st[ti])).astype(np.float32)
