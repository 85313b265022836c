"""Linear discriminant analysis with the semantics of Kaldi's ``ivector-compute-lda``.

Each speaker carries the same total weight (each of its utterances weighs 1 / n_utts), so:

- within-class covariance W = mean over speakers of the speaker's (biased) covariance,
- between-class covariance B = (biased) covariance of the speaker means.

With ``total_covariance_factor = 0`` (what Kaldi's VoxCeleb recipe uses) the data is first
whitened w.r.t. W (eigenvalues floored at ``covariance_floor * max``), then projected on the
leading eigenvectors of the whitened B; in the output space W is the identity and B diagonal
with decreasing entries. The input is expected to be mean-subtracted already (the recipe
subtracts the training mean before LDA), so the transform is linear, without offset.
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


def within_between(x: np.ndarray, labels: np.ndarray, total_covariance_factor: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Speaker-weighted within- and between-class covariances (the matrix to whiten, B)."""
    x = np.asarray(x, dtype=np.float64)
    _, inverse, means = class_means(x, labels)
    counts = np.bincount(inverse)
    num_spk = means.shape[0]
    centred = (x - means[inverse]) / np.sqrt(counts[inverse])[:, None]
    within = centred.T @ centred / num_spk
    mu = means.mean(axis=0)
    dm = means - mu
    between = dm.T @ dm / num_spk
    total = within + between
    return total_covariance_factor * total + (1.0 - total_covariance_factor) * within, between


def train_lda(x: np.ndarray, labels, dim: int = 200, total_covariance_factor: float = 0.0,
              covariance_floor: float = 1e-6) -> np.ndarray:
    """Return the ``(out_dim, in_dim)`` LDA matrix; out_dim = min(dim, num_speakers - 1, in_dim)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    num_spk = np.unique(labels).size
    if num_spk < 2:
        raise UserError(f"LDA needs at least 2 speakers, got {num_spk}")
    out_dim = min(dim, num_spk - 1, x.shape[1])
    if out_dim < dim:
        log.info("LDA dimension %d capped to %d (num_speakers - 1 = %d, input dim = %d)",
                 dim, out_dim, num_spk - 1, x.shape[1])
    to_whiten, between = within_between(x, labels, total_covariance_factor)
    s, u = np.linalg.eigh(to_whiten)
    s = np.maximum(s, covariance_floor * s.max())
    whiten = (u / np.sqrt(s)).T                   # whiten @ W @ whiten.T = I
    b_proj = whiten @ between @ whiten.T
    e, v = np.linalg.eigh((b_proj + b_proj.T) / 2)
    top = v[:, np.argsort(e)[::-1][:out_dim]]
    return top.T @ whiten
