"""Vectorised scoring in a back-end's scoring space: ``score(i, j) = vec_i . vec_j + off_i + off_j``.

Cosine scoring is the case ``off = 0`` on length-normalised vectors; the PLDA log-likelihood
ratio with one utterance per side is also of this form once its per-dimension weights are
folded into the vectors (see :mod:`dropclass_lib.backends.plda`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CHUNK = 1 << 17


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
    for s in range(0, ai.size, chunk):
        ia, ib = ai[s:s + chunk], bi[s:s + chunk]
        res = np.einsum("ij,ij->i", a.vec[ia], b.vec[ib])
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
