"""Cosine scoring: optional mean subtraction (e.g. the training-set mean), then length norm."""

from __future__ import annotations

import numpy as np

from dropclass_lib.backends.scoring import ScoringSpace


def length_norm(x: np.ndarray, scale_to_sqrt_dim: bool = False) -> np.ndarray:
    """Scale each row to unit norm (or to norm sqrt(dim), as Kaldi's ivector-normalize-length)."""
    x = np.asarray(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out = x / norms
    if scale_to_sqrt_dim:
        out *= np.sqrt(x.shape[1])
    return out


class CosineBackend:
    name = "cosine"

    def __init__(self, mean: np.ndarray | None = None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)

    def transform(self, x: np.ndarray) -> ScoringSpace:
        x = np.asarray(x, dtype=np.float64)
        if self.mean is not None:
            x = x - self.mean
        return ScoringSpace(length_norm(x).astype(np.float32))
