"""Linear discriminant analysis with the semantics of Kaldi's ``ivector-compute-lda``.

Every utterance carries the same weight (N utterances in all, n_s of speaker s, speaker mean
m_s, global mean m):

- within-class covariance W = sum over utterances of (x - m_s)(x - m_s)^T / N,
- between-class covariance B = sum over speakers of n_s (m_s - m)(m_s - m)^T / N,

so W + B is the total covariance. With ``total_covariance_factor = 0`` (Kaldi's default, and
what its VoxCeleb recipe uses) the data is first whitened w.r.t. W (eigenvalues floored at
``covariance_floor`` times the largest), then projected on the leading eigenvectors of the
whitened B; in the output space W is the identity and B diagonal with decreasing entries.
The input is expected to be mean-subtracted already (the back-end subtracts the training mean
before LDA), so the transform is linear, without offset.

Output dimension: B has rank at most (speakers - 1), since the weighted deviations
n_s (m_s - m) sum to zero. Directions beyond that rank carry no between-speaker variance, only
an arbitrary basis of the null space of B, so the dimension is capped at
min(dim, speakers - 1, input dimension), with a warning when that is below the requested
``dim``. (Kaldi's ``ivector-compute-lda`` does not cap at speakers - 1: it keeps that many
null-space directions; it refuses a ``dim`` above the input dimension.)
"""

from __future__ import annotations

import logging

import numpy as np

from dropclass_lib.errors import UserError

log = logging.getLogger(__name__)


def class_means(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(classes, inverse, means)``: the distinct labels, each row's class index, class means."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((classes.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    return classes, inverse, sums / counts[:, None]


def within_between(x: np.ndarray, labels, total_covariance_factor: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Utterance-weighted ``(matrix to whiten, B)``: the former is W, or W interpolated towards
    the total covariance W + B by ``total_covariance_factor``."""
    x = np.asarray(x, dtype=np.float64)
    _, inverse, means = class_means(x, np.asarray(labels))
    counts = np.bincount(inverse)
    num_utts = x.shape[0]
    centred = x - means[inverse]
    within = centred.T @ centred / num_utts
    weighted = (means - x.mean(axis=0)) * np.sqrt(counts)[:, None]
    between = weighted.T @ weighted / num_utts
    total = within + between
    return total_covariance_factor * total + (1.0 - total_covariance_factor) * within, between


def train_lda(x: np.ndarray, labels, dim: int = 200, total_covariance_factor: float = 0.0,
              covariance_floor: float = 1e-6) -> np.ndarray:
    """Return the ``(out_dim, in_dim)`` LDA matrix; out_dim = min(dim, num_speakers - 1, in_dim)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    num_spk = counts.size
    if num_spk < 2:
        raise UserError(f"LDA needs at least 2 speakers, got {num_spk}")
    if counts.max() < 2:
        raise UserError(f"LDA needs a speaker with at least 2 utterances: all {num_spk} speakers have one, "
                        "so there is no within-speaker variation to whiten")
    out_dim = min(dim, num_spk - 1, x.shape[1])
    if out_dim < dim:
        log.warning("LDA dimension %d capped to %d (at most num_speakers - 1 = %d and the input dimension %d)",
                    dim, out_dim, num_spk - 1, x.shape[1])
    to_whiten, between = within_between(x, labels, total_covariance_factor)
    s, u = np.linalg.eigh(to_whiten)
    s = np.maximum(s, covariance_floor * s.max())
    whiten = (u / np.sqrt(s)).T                   # whiten @ W @ whiten.T = I
    b_proj = whiten @ between @ whiten.T
    e, v = np.linalg.eigh((b_proj + b_proj.T) / 2)
    top = v[:, np.argsort(e)[::-1][:out_dim]]
    return top.T @ whiten
