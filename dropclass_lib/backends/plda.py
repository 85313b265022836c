"""Two-covariance PLDA with the semantics of Kaldi's ``ivector-compute-plda`` / ``ivector-plda-scoring``.

Model: x = m + y + e, speaker variable y ~ N(0, B), residual e ~ N(0, W).

Training (``estimate_plda``) follows Kaldi's EM: start from W = B = I; each iteration
re-estimates W and B from the within-speaker scatter and, per speaker with n examples and
mean m_s (centred on the mean of speaker means), the posterior of y:
``Sigma_n = (B^-1 + n W^-1)^-1``, ``w = Sigma_n n W^-1 m_s``; then
``B = mean_s(Sigma_n + w w^T)`` and
``W = (within scatter + sum_s n (Sigma_n + (m_s - w)(m_s - w)^T)) / num_examples``.
Every speaker has weight 1 whatever its number of examples.

The output is the simultaneous diagonalisation: ``transform`` maps x - m to a space where
W = I and B = diag(psi), psi in decreasing order.

Scoring (``PldaBackend``): in that space, each side is length-normalised as Kaldi's
``--normalize-length`` does (scaled so that ``sum_i y_i^2 / (psi_i + 1/n) = dim``, n = 1
utterance), then the log-likelihood ratio of "same speaker" against "different speakers":
``log N(t; a e, diag(1 + a)) - log N(t; 0, diag(1 + psi))`` with ``a = psi / (psi + 1)``.
With one utterance per side it expands to
``C + sum_i [b_i e_i t_i - c_i (e_i^2 + t_i^2) / 2]`` with ``b = psi / (2 psi + 1)``,
``c = psi^2 / ((psi + 1)(2 psi + 1))``, ``C = sum_i [log(psi_i + 1) - log(2 psi_i + 1) / 2]``:
a dot product of ``sqrt(b) * y`` plus a per-side offset, which is how it is vectorised.

Unsupervised adaptation (``adapt_plda``) follows Kaldi's ``ivector-adapt-plda``: from unlabelled
in-domain vectors (in the PLDA's input space) it takes their mean and total covariance (plus the
outer product of their mean's offset from the PLDA mean, scaled by ``mean_diff_scale``); in the
space where the model's total covariance W + B is I, along each eigenvector of that covariance
whose variance s exceeds 1, the excess s - 1 is added to W (``within_covar_scale``) and to B
(``between_covar_scale``); the PLDA mean becomes the in-domain mean. Directions where the
in-domain data vary less than the model expects are left as they are.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import numpy as np

from dropclass_lib.atomic import atomic_path
from dropclass_lib.backends.cosine import length_norm
from dropclass_lib.backends.lda import class_means, train_lda
from dropclass_lib.backends.scoring import ScoringSpace
from dropclass_lib.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Plda:
    mean: np.ndarray       # (d,) mean of the speaker means
    transform: np.ndarray  # (d, d): W -> I, B -> diag(psi)
    psi: np.ndarray        # (d,) between-class variances in the transformed space, decreasing

    def to_plda_space(self, x: np.ndarray, normalize_length: bool = True, num_utts: int = 1) -> np.ndarray:
        """Kaldi's ``Plda::TransformIvector`` for each row of ``x``."""
        y = (np.asarray(x, dtype=np.float64) - self.mean) @ self.transform.T
        if normalize_length:
            dot = (y ** 2 / (self.psi + 1.0 / num_utts)).sum(axis=1)
            dot[dot == 0] = 1.0
            y *= np.sqrt(y.shape[1] / dot)[:, None]
        return y


def estimate_plda(x: np.ndarray, labels, num_em_iters: int = 10) -> Plda:
    """Fit the two-covariance model by EM (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    _, inverse, means = class_means(x, labels)
    counts = np.bincount(inverse)
    num_spk, dim = means.shape
    if num_spk < 2:
        raise UserError(f"PLDA needs at least 2 speakers, got {num_spk}")
    centred = x - means[inverse]
    scatter = centred.T @ centred                     # within-speaker scatter, all speakers
    mean = means.mean(axis=0)
    m = means - mean
    groups = [(n, np.flatnonzero(counts == n)) for n in np.unique(counts)]
    within, between = np.eye(dim), np.eye(dim)
    for _ in range(num_em_iters):
        w_inv, b_inv = np.linalg.inv(within), np.linalg.inv(between)
        w_stats, b_stats = scatter.copy(), np.zeros((dim, dim))
        for n, idx in groups:
            mixed = np.linalg.inv(b_inv + n * w_inv)
            mixed = (mixed + mixed.T) / 2
            w = m[idx] @ (n * w_inv) @ mixed          # posterior means of y, one row per speaker
            r = m[idx] - w
            b_stats += idx.size * mixed + w.T @ w
            w_stats += n * (idx.size * mixed + r.T @ r)
        within = w_stats / counts.sum()
        between = b_stats / num_spk
    return _diagonalise(mean, within, between)


@dataclass
class PldaAdaptConfig:
    """The options of Kaldi's ``ivector-adapt-plda``, with its defaults."""

    mean_diff_scale: float = 1.0      # weight of the in-domain mean's offset in the total covariance
    within_covar_scale: float = 0.3   # share of the excess variance given to the within-speaker covariance
    between_covar_scale: float = 0.7  # share given to the between-speaker covariance

    def validate(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not value >= 0:
                raise UserError(f"PLDA adaptation: {name.replace('_', '-')} must be >= 0, got {value}")


def adapt_plda(plda: Plda, x: np.ndarray, config: PldaAdaptConfig | None = None) -> Plda:
    """The PLDA adapted to the unlabelled vectors ``x`` (rows, in the PLDA's input space), as
    Kaldi's ``PldaUnsupervisedAdaptor`` (see the module docstring)."""
    config = config or PldaAdaptConfig()
    config.validate()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != plda.mean.size:
        raise UserError(f"PLDA adaptation needs vectors of dimension {plda.mean.size}, got an array of shape {x.shape}")
    mean = x.mean(axis=0)
    centred = x - mean
    offset = mean - plda.mean
    total = centred.T @ centred / x.shape[0] + config.mean_diff_scale * np.outer(offset, offset)
    # to_unit_total maps x - m to where the model's W + B = I: the PLDA space scaled by 1 / sqrt(1 + psi)
    to_unit_total = plda.transform / np.sqrt(1.0 + plda.psi)[:, None]
    projected = to_unit_total @ total @ to_unit_total.T
    s, p = np.linalg.eigh((projected + projected.T) / 2)
    order = np.argsort(s)[::-1]
    s, p = s[order], p[:, order]
    log.info("PLDA adaptation: in-domain total variance in the model's unit-total space, eigenvalues %s",
             np.array2string(s, precision=3, max_line_width=200))
    # In the eigenbasis of the in-domain variance: the model's W and B, plus each direction's excess.
    within = p.T @ np.diag(1.0 / (1.0 + plda.psi)) @ p
    between = p.T @ np.diag(plda.psi / (1.0 + plda.psi)) @ p
    excess = np.maximum(s - 1.0, 0.0)
    within += np.diag(config.within_covar_scale * excess)
    between += np.diag(config.between_covar_scale * excess)
    back = np.linalg.inv(p.T @ to_unit_total)          # from that basis to the input space
    return _diagonalise(mean, back @ within @ back.T, back @ between @ back.T)


def _diagonalise(mean: np.ndarray, within: np.ndarray, between: np.ndarray) -> Plda:
    chol = np.linalg.cholesky(within)                 # W = L L^T
    c = np.linalg.inv(chol)                           # C W C^T = I
    b_proj = c @ between @ c.T
    s, u = np.linalg.eigh((b_proj + b_proj.T) / 2)
    order = np.argsort(s)[::-1]
    psi = np.maximum(s[order], 0.0)
    return Plda(mean=mean, transform=u[:, order].T @ c, psi=psi)


@dataclass
class PldaBackend:
    """The Kaldi VoxCeleb v2 back-end: subtract mean, LDA, length norm, PLDA."""

    mean: np.ndarray   # (D,) training-embedding mean, subtracted first
    lda: np.ndarray    # (d, D)
    plda: Plda
    name = "plda"

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        """Mean subtraction, LDA and length norm to sqrt(d): the input of PLDA training and scoring."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] != self.mean.size:
            raise UserError(f"embeddings have dimension {x.shape[1]}, the PLDA back-end expects {self.mean.size}")
        return length_norm((x - self.mean) @ self.lda.T, scale_to_sqrt_dim=True)

    def transform(self, x: np.ndarray) -> ScoringSpace:
        y = self.plda.to_plda_space(self.preprocess(x))
        psi = self.plda.psi
        b = psi / (2 * psi + 1)
        c = psi ** 2 / ((psi + 1) * (2 * psi + 1))
        const = np.sum(np.log(psi + 1) - 0.5 * np.log(2 * psi + 1))
        off = 0.5 * const - 0.5 * (c * y ** 2).sum(axis=1)
        return ScoringSpace((y * np.sqrt(b)).astype(np.float32), off.astype(np.float32))

    @classmethod
    def train(cls, x: np.ndarray, labels, lda_dim: int = 200, num_em_iters: int = 10) -> "PldaBackend":
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        lda = train_lda(x - mean, labels, dim=lda_dim)
        partial = cls(mean=mean, lda=lda, plda=None)
        plda = estimate_plda(partial.preprocess(x), labels, num_em_iters=num_em_iters)
        return cls(mean=mean, lda=lda, plda=plda)

    def adapted(self, x: np.ndarray, config: PldaAdaptConfig | None = None) -> "PldaBackend":
        """This back-end with its PLDA adapted (:func:`adapt_plda`) to the unlabelled embeddings
        ``x``, after this back-end's own preprocessing (mean, LDA, length norm)."""
        return dataclasses.replace(self, plda=adapt_plda(self.plda, self.preprocess(x), config))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mean=self.mean, lda=self.lda, plda_mean=self.plda.mean,
                         plda_transform=self.plda.transform, plda_psi=self.plda.psi)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PldaBackend":
        try:
            with np.load(path) as z:
                return cls(mean=z["mean"], lda=z["lda"],
                           plda=Plda(mean=z["plda_mean"], transform=z["plda_transform"], psi=z["plda_psi"]))
        except FileNotFoundError:
            raise UserError(f"PLDA back-end {path} does not exist (run steps/train_plda.py)") from None
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"{path}: not a PLDA back-end written by steps/train_plda.py ({err})") from None
