"""Vectorised scoring in a back-end's scoring space: ``score(i, j) = vec_i . vec_j + off_i + off_j``.

Cosine scoring is the case ``off = 0`` on length-normalised vectors; the PLDA log-likelihood
ratio with one utterance per side is also of this form once its per-dimension weights are
folded into the vectors (see :mod:`dropclass_lib.backends.plda`).

A trial list is scored one of two ways (:func:`pair_scores`):

* **row-wise**: gather both rows of every trial and take their dot product. Memory-bound:
  about ``GATHER_NS_PER_DIM * dim`` per trial, whatever the trial list looks like. When the
  enrolment rows in use are too many to stay in the CPU cache (over ``SORT_MIN_BYTES``), the
  trials are taken in enrolment order so consecutive trials reuse a cached row: 1.2-1.3x faster
  at 512 dims on a VoxCeleb1-E-sized list (145k utterances, random order), within the noise at
  200 dims; not done on VoxCeleb1-O (4.7k utterances), where the sort itself costs up to 30 %.
* **dense**: one BLAS product per tile of (used enrolment rows x used test rows), and pick each
  trial's entry out of it. About ``GEMM_NS_PER_DIM * dim`` per pair of used utterances, whether
  a trial asks for it or not, plus ``PICK_NS`` per trial to group the trials by tile.

The cheaper one by this cost model is taken: the dense path once the trials cover more than
about 0.65 % of all (used enrolment x used test) pairs, at any dimension. A random 5M-trial
list over 10k utterances (5 %) goes dense; VoxCeleb1-O (37k trials over 4.7k x 4.7k
utterances, 0.17 %) and VoxCeleb1-E (580k over 145k x 145k, 0.003 %) stay row-wise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Trials per step: the gathered rows of both sides (2 x 4096 x dim floats) stay in the CPU cache.
DEFAULT_CHUNK = 4096

# Cost model, measured with one OpenBLAS thread on the project machine (AMD EPYC, float32,
# 2 shared cores under load; bench/bench_scoring.py): a matrix entry costs ~10-13 ns at 512 dims
# and ~5 ns at 200 (2 * dim flops at 80-100 GFlop/s, tiling included), grouping and picking
# ~60 ns per trial, a row-wise trial ~2.3 us at 512 dims and ~0.8 us at 200.
GEMM_NS_PER_DIM = 0.025
GATHER_NS_PER_DIM = 4.0
PICK_NS = 60.0

# Dense tiles: at most 2048 test rows wide and 4M entries (16 MB of float32). Smaller tiles
# (4 MB) measured 10-30 % slower in BLAS; 64 MB tiles no faster.
TILE_ENTRIES = 1 << 22
TILE_TEST_ROWS = 2048

# Row-wise path: sort trials by enrolment row above this many bytes of enrolment rows in use.
SORT_MIN_BYTES = 32 << 20

METHODS = ("auto", "dense", "rowwise")


@dataclass
class ScoringSpace:
    """Embeddings of one side, ready for scoring."""

    vec: np.ndarray                 # (n, d) float32
    off: np.ndarray | None = None   # (n,) float32 per-embedding offset, or None for 0

    def __len__(self) -> int:
        return self.vec.shape[0]


def choose_method(num_trials: int, num_a_used: int, num_b_used: int, dim: int) -> str:
    """``"dense"`` or ``"rowwise"``, whichever the cost model says is cheaper."""
    dense = num_a_used * num_b_used * dim * GEMM_NS_PER_DIM + num_trials * PICK_NS
    rowwise = num_trials * dim * GATHER_NS_PER_DIM
    return "dense" if dense < rowwise else "rowwise"


def sorts_by_enrolment(num_a_used: int, dim: int, itemsize: int = 4) -> bool:
    """Whether the row-wise path scores in enrolment order: when the enrolment rows in use
    exceed ``SORT_MIN_BYTES``, too many to stay in the CPU cache."""
    return num_a_used * dim * itemsize > SORT_MIN_BYTES


def pair_scores(a: ScoringSpace, b: ScoringSpace, ai: np.ndarray, bi: np.ndarray,
                chunk: int = DEFAULT_CHUNK, method: str = "auto", sort: bool | None = None) -> np.ndarray:
    """Scores of the pairs ``(a[ai[k]], b[bi[k]])`` in trial order (float32).

    ``method`` forces the ``"dense"`` or ``"rowwise"`` path; ``"auto"`` takes the cheaper one
    (:func:`choose_method`). Both give the same scores up to float32 rounding. ``sort`` forces
    the row-wise path to score in enrolment order (True) or in trial order (False); by default
    it does when :func:`sorts_by_enrolment`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    ai = np.asarray(ai, dtype=np.int64)
    bi = np.asarray(bi, dtype=np.int64)
    if ai.shape != bi.shape or ai.ndim != 1:
        raise ValueError(f"index arrays must be 1-D and of one length, not {ai.shape} and {bi.shape}")
    if ai.size == 0:
        return np.empty(0, dtype=np.float32)
    a_used, a_pos = _compact(ai, len(a))
    b_used, b_pos = _compact(bi, len(b))
    if method == "auto":
        method = choose_method(ai.size, a_used.size, b_used.size, a.vec.shape[1])
    if method == "dense":
        out = _dense_dots(a.vec[a_used], b.vec[b_used], a_pos, b_pos)
    else:
        if sort is None:
            sort = sorts_by_enrolment(a_used.size, a.vec.shape[1], a.vec.itemsize)
        out = _rowwise_dots(a.vec, b.vec, ai, bi, chunk, sort)
    if a.off is not None:
        out += a.off[ai]
    if b.off is not None:
        out += b.off[bi]
    return out


def _compact(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows ``idx`` uses (ascending) and each entry's position among them (int32); O(n)."""
    if idx.min() < -n or idx.max() >= n:
        raise IndexError(f"trial index out of range for {n} embeddings")
    used = np.zeros(n, dtype=bool)
    used[idx] = True
    pos = np.cumsum(used, dtype=np.int32) - 1
    return np.flatnonzero(used), pos[idx]


def _rowwise_dots(va: np.ndarray, vb: np.ndarray, ai: np.ndarray, bi: np.ndarray, chunk: int,
                  sort: bool = False) -> np.ndarray:
    """Dot products of gathered row pairs, ``chunk`` trials at a time; with ``sort``, in
    enrolment order (unless the trials already are) for cache reuse, returned in trial order."""
    if sort and (np.diff(ai) < 0).any():
        order = np.argsort(ai, kind="stable")
        out = np.empty(ai.size, dtype=np.float32)
        out[order] = _rowwise_dots(va, vb, ai[order], bi[order], chunk)
        return out
    out = np.empty(ai.size, dtype=np.float32)
    rows_a = np.empty((min(chunk, ai.size), va.shape[1]), dtype=va.dtype)
    rows_b = np.empty((min(chunk, ai.size), vb.shape[1]), dtype=vb.dtype)
    for s in range(0, ai.size, chunk):
        ia, ib = ai[s:s + chunk], bi[s:s + chunk]
        ra, rb = rows_a[:ia.size], rows_b[:ia.size]
        np.take(va, ia, axis=0, out=ra)
        np.take(vb, ib, axis=0, out=rb)
        out[s:s + chunk] = np.einsum("ij,ij->i", ra, rb)
    return out


def _dense_dots(va: np.ndarray, vb: np.ndarray, ai: np.ndarray, bi: np.ndarray) -> np.ndarray:
    """Dot products ``va[ai[k]] . vb[bi[k]]`` from tiles of ``va @ vb.T``; tiles no trial uses are skipped."""
    tile_b = min(len(vb), TILE_TEST_ROWS)
    tile_a = min(len(va), max(1, TILE_ENTRIES // tile_b))
    num_tiles_b = -(-len(vb) // tile_b)
    num_tiles = -(-len(va) // tile_a) * num_tiles_b
    tile = (ai // tile_a) * num_tiles_b + bi // tile_b
    # Trials grouped by tile; numpy's stable sort of 16-bit keys is a linear-time radix sort.
    order = np.argsort(tile.astype(np.uint16) if num_tiles <= 1 << 16 else tile, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(tile, minlength=num_tiles))))
    row_a, row_b = ai[order] % tile_a, bi[order] % tile_b
    picked = np.empty(ai.size, dtype=np.float32)
    for t in np.flatnonzero(bounds[1:] > bounds[:-1]):
        a0, b0 = (t // num_tiles_b) * tile_a, (t % num_tiles_b) * tile_b
        block = va[a0:a0 + tile_a] @ vb[b0:b0 + tile_b].T
        s, e = bounds[t], bounds[t + 1]
        np.take(block.ravel(), row_a[s:e] * block.shape[1] + row_b[s:e], out=picked[s:e])
    out = np.empty(ai.size, dtype=np.float32)
    out[order] = picked
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
