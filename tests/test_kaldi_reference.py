"""The LDA + PLDA back-end against an independent transcription of Kaldi's LDA.

``kaldi_compute_lda`` follows ``ivector-compute-lda`` step by step (mean subtraction, the
per-speaker covariance statistics, the normalising transform from an eigendecomposition with
floored eigenvalues, the eigenvectors of the projected between-class covariance sorted by
decreasing eigenvalue), written in plain per-speaker loops and sharing no code with
``dropclass_lib.backends.lda``. The speakers are unbalanced (2-40 utterances), which is where
weighting utterances (Kaldi) and weighting speakers differ.
"""

import numpy as np
import pytest

from dropclass_lib.backends.lda import train_lda
from dropclass_lib.backends.plda import PldaBackend, estimate_plda
from dropclass_lib.backends.scoring import matrix_scores


def kaldi_compute_lda(utt2vec: dict[str, np.ndarray], spk2utt: dict[str, list[str]], lda_dim: int,
                      total_covariance_factor: float = 0.0, covariance_floor: float = 1e-6
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, linear part)`` of the affine LDA transform ``ivector-compute-lda`` writes
    (its offset column is ``-linear @ mean``)."""
    dim = next(iter(utt2vec.values())).size
    mean = np.zeros(dim)
    for vec in utt2vec.values():
        mean += vec / len(utt2vec)
    centred = {utt: vec - mean for utt, vec in utt2vec.items()}

    # Covariance statistics, accumulated one speaker at a time.
    tot_stats, between_stats = np.zeros((dim, dim)), np.zeros((dim, dim))
    num_utt = num_spk = 0
    for spk in sorted(spk2utt):
        utts = np.stack([centred[utt] for utt in spk2utt[spk]])
        tot_stats += utts.T @ utts
        spk_average = utts.sum(axis=0) / len(utts)
        between_stats += len(utts) * np.outer(spk_average, spk_average)
        num_utt += len(utts)
        num_spk += 1
    assert num_utt - num_spk > 0 and num_utt >= dim
    total_covar = tot_stats / num_utt
    within_covar = (tot_stats - between_stats) / num_utt

    # Normalising transform T of the interpolated covariance: T C T^T = I.
    to_normalize = total_covariance_factor * total_covar + (1 - total_covariance_factor) * within_covar
    s, u = np.linalg.eigh(to_normalize)
    order = np.argsort(-s)
    s, u = s[order], u[:, order]
    s = np.maximum(s, covariance_floor * s[0])
    normalizing = np.diag(s ** -0.5) @ u.T

    between_covar = total_covar - within_covar
    between_proj = normalizing @ between_covar @ normalizing.T
    e, v = np.linalg.eigh(between_proj)
    v = v[:, np.argsort(-e)]
    return mean, v[:, :lda_dim].T @ normalizing


def unbalanced_speakers(seed: int, num_spk: int = 60, dim: int = 16):
    """Embeddings of speakers with 2-40 utterances each whose within-speaker spread grows with
    their number of utterances, so that speaker and utterance weighting disagree clearly."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 41, size=num_spk)
    counts[:2] = (2, 40)
    a = rng.normal(size=(dim, dim))
    between = a @ a.T / dim + 0.5 * np.eye(dim)
    centres = rng.multivariate_normal(np.zeros(dim), 2 * between, size=num_spk) + 5
    directions = rng.normal(size=(num_spk, dim))
    labels, rows = [], []
    for s, n in enumerate(counts):
        noise = rng.normal(size=(n, dim)) * (0.5 + n / 20)
        noise += rng.normal(size=(n, 1)) * (n / 10) * directions[s]
        rows.append(centres[s] + noise)
        labels += [f"spk{s:03d}"] * n
    x = np.concatenate(rows)
    utts = [f"{spk}-utt{i:04d}" for i, spk in enumerate(labels)]
    return x, np.array(labels), utts


def kaldi_maps(x, labels, utts):
    utt2vec = dict(zip(utts, x))
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in zip(utts, labels):
        spk2utt.setdefault(spk, []).append(utt)
    return utt2vec, spk2utt


@pytest.mark.parametrize("total_covariance_factor", [0.0, 0.1])
def test_lda_equals_kaldi_transcription(total_covariance_factor):
    x, labels, utts = unbalanced_speakers(0)
    mean, ref = kaldi_compute_lda(*kaldi_maps(x, labels, utts), lda_dim=10,
                                  total_covariance_factor=total_covariance_factor)
    got = train_lda(x - x.mean(axis=0), labels, dim=10, total_covariance_factor=total_covariance_factor)
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=1e-12)
    # Eigenvectors are defined up to sign: align each row before comparing.
    signs = np.sign(np.sum(got * ref, axis=1))
    np.testing.assert_allclose(got * signs[:, None], ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("seed", [1, 2])
def test_plda_scores_with_project_lda_equal_kaldi_lda(seed):
    """The project's LDA + PLDA scores as Kaldi's LDA followed by the same PLDA, to 1e-3."""
    x, labels, utts = unbalanced_speakers(seed)
    lda_dim = 12
    ours = PldaBackend.train(x, labels, lda_dim=lda_dim)
    mean, kaldi_lda = kaldi_compute_lda(*kaldi_maps(x, labels, utts), lda_dim=lda_dim)
    partial = PldaBackend(mean=mean, lda=kaldi_lda, plda=None)
    reference = PldaBackend(mean=mean, lda=kaldi_lda, plda=estimate_plda(partial.preprocess(x), labels))
    rng = np.random.default_rng(100 + seed)
    probe = np.concatenate([x[rng.choice(len(x), 40, replace=False)],
                            x.mean(axis=0) + rng.normal(size=(20, x.shape[1])) * x.std(axis=0)])
    got = matrix_scores(ours.transform(probe), ours.transform(probe))
    ref = matrix_scores(reference.transform(probe), reference.transform(probe))
    assert np.ptp(ref) > 10  # scores that discriminate, so that 1e-3 is a real bound
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)
