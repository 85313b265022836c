"""Vectorised scoring in a back-end's scoring space: ``score(i, j) = vec_i . vec_j + off_i + off_j``.

Cosine scoring is the case ``off = 0`` on length-normalised vectors; the PLDA log-likelihood
ratio with one utterance per side is also of this form once its per-dimension weights are
folded into the vectors (see :mod:`dropclass_lib.backends.plda`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Trials per step: the gathered rows of both sides (2 x 4096 x dim floats) stay in the CPU cache.
DEFAULT_CHUNK = 4096


@dataclass
class ScoringSpace:
    """Embeddings of one side, ready for scoring."""

    vec: np.ndarray                 # (n, d) float32
    off: np.ndarray | None = None   # (n,) float32 per-embedding offset, or None for 0

    def __len__(self) -> int:
        return self.vec.shape[0]


def pair_scores(a: ScoringSpace, b: ScoringSpace, ai: np.ndarray, bi: np.ndarray,
                chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Scores of the pairs ``(a[ai[k]], b[bi[k]])``, computed row-wise in chunks (float32)."""
    ai = np.asarray(ai, dtype=np.int64)
    bi = np.asarray(bi, dtype=np.int64)
    out = np.empty(ai.size, dtype=np.float32)
    rows_a = np.empty((min(chunk, ai.size), a.vec.shape[1]), dtype=a.vec.dtype)
    rows_b = np.empty((min(chunk, ai.size), b.vec.shape[1]), dtype=b.vec.dtype)
    for s in range(0, ai.size, chunk):
        ia, ib = ai[s:s + chunk], bi[s:s + chunk]
        ra, rb = rows_a[:ia.size], rows_b[:ia.size]
        np.take(a.vec, ia, axis=0, out=ra)
        np.take(b.vec, ib, axis=0, out=rb)
        res = np.einsum("ij,ij->i", ra, rb)
        if a.off is not None:
            res += a.off[ia]
        if b.off is not None:
            res += b.off[ib]
        out[s:s + chunk] = res
    return out


def matrix_scores(a: ScoringSpace, b: ScoringSpace) -> np.ndarray:
    """All ``len(a) x len(b)`` scores."""
    res = a.vec @ b.vec.T
    if a.off is not None:
        res += a.off[:, None]
    if b.off is not None:
        res += b.off[None, :]
    return res


def subset(space: ScoringSpace, idx: np.ndarray) -> ScoringSpace:
    return ScoringSpace(space.vec[idx], None if space.off is None else space.off[idx])
