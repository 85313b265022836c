"""LDA and PLDA back-end: EM against the closed-form ML estimate, scoring against a direct LLR,
unsupervised adaptation against what Kaldi's ivector-adapt-plda guarantees."""

import logging

import numpy as np
import pytest
from scipy.linalg import eigh
from scipy.stats import multivariate_normal

from dropclass_lib.backends.lda import train_lda
from dropclass_lib.backends.plda import PldaAdaptConfig, PldaBackend, adapt_plda, estimate_plda
from dropclass_lib.backends.scoring import matrix_scores, pair_scores
from dropclass_lib.errors import UserError


def random_spd(rng, dim, scale):
    a = rng.normal(size=(dim, dim))
    return scale * (a @ a.T / dim + 0.3 * np.eye(dim))


def two_cov_data(rng, num_spk, utts_per_spk, dim, between_scale=2.0):
    b, w = random_spd(rng, dim, between_scale), random_spd(rng, dim, 1.0)
    m = rng.normal(size=dim) * 3
    spk = rng.multivariate_normal(np.zeros(dim), b, size=num_spk)
    counts = utts_per_spk if np.ndim(utts_per_spk) else np.full(num_spk, utts_per_spk)
    labels = np.repeat(np.arange(num_spk), counts)
    x = m + spk[labels] + rng.multivariate_normal(np.zeros(dim), w, size=labels.size)
    return x, labels, b, w


def test_em_converges_to_closed_form_ml_estimate_for_balanced_data():
    # With n utterances for every speaker the ML solution is known in closed form:
    # W = within scatter / (S (n - 1)),  B = (biased covariance of speaker means) - W / n.
    rng = np.random.default_rng(0)
    n, num_spk, dim = 5, 60, 4
    x, labels, _, _ = two_cov_data(rng, num_spk, n, dim)
    means = np.stack([x[labels == s].mean(axis=0) for s in range(num_spk)])
    scatter = sum((x[labels == s] - means[s]).T @ (x[labels == s] - means[s]) for s in range(num_spk))
    w_ml = scatter / (num_spk * (n - 1))
    dm = means - means.mean(axis=0)
    b_ml = dm.T @ dm / num_spk - w_ml / n
    assert np.all(np.linalg.eigvalsh(b_ml) > 0)
    plda = estimate_plda(x, labels, num_em_iters=300)
    inv = np.linalg.inv(plda.transform)
    np.testing.assert_allclose(inv @ inv.T, w_ml, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(inv @ np.diag(plda.psi) @ inv.T, b_ml, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(plda.mean, means.mean(axis=0), atol=1e-12)
    assert np.all(np.diff(plda.psi) <= 0)


def test_em_recovers_generating_model():
    rng = np.random.default_rng(1)
    x, labels, b, w = two_cov_data(rng, 400, rng.integers(2, 12, size=400), 3)
    plda = estimate_plda(x, labels)
    true_psi = np.sort(eigh(b, w, eigvals_only=True))[::-1]
    np.testing.assert_allclose(plda.psi, true_psi, rtol=0.2)


def test_lda_matches_generalised_eigenproblem():
    rng = np.random.default_rng(2)
    x, labels, _, _ = two_cov_data(rng, 30, rng.integers(1, 9, size=30), 8)
    x = x - x.mean(axis=0)
    # Utterance-weighted covariances (Kaldi's), written out per speaker: speaker s weighs n_s / N.
    spks = np.unique(labels)
    n = np.array([(labels == s).sum() for s in spks])
    within = sum(n_s * np.cov(x[labels == s].T, bias=True).reshape(8, 8) if n_s > 1
                 else np.zeros((8, 8)) for s, n_s in zip(spks, n)) / n.sum()
    means = np.stack([x[labels == s].mean(axis=0) for s in spks])
    between = np.cov(means.T, bias=True, aweights=n)
    lda = train_lda(x, labels, dim=5)
    assert lda.shape == (5, 8)
    np.testing.assert_allclose(lda @ within @ lda.T, np.eye(5), atol=1e-8)
    top = np.sort(eigh(between, within, eigvals_only=True))[::-1][:5]
    np.testing.assert_allclose(lda @ between @ lda.T, np.diag(top), atol=1e-8)


def test_lda_dim_is_capped_by_speakers_and_dim(caplog):
    """The between-class covariance has rank <= speakers - 1: the dimension is capped there (and
    at the input dimension) with a warning; below the cap nothing is said."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6))
    with caplog.at_level(logging.WARNING, logger="dropclass_lib.backends.lda"):
        assert train_lda(x, np.arange(40) % 4, dim=200).shape == (3, 6)
        assert "LDA dimension 200 capped to 3" in caplog.text
        caplog.clear()
        assert train_lda(x, np.arange(40) % 20, dim=200).shape == (6, 6)
        assert "LDA dimension 200 capped to 6" in caplog.text
        caplog.clear()
        assert train_lda(x, np.arange(40) % 4, dim=3).shape == (3, 6)
        assert train_lda(x, np.arange(40) % 20, dim=2).shape == (2, 6)
        assert caplog.text == ""
    with pytest.raises(UserError, match="at least 2 speakers"):
        train_lda(x, np.zeros(40), dim=3)
    with pytest.raises(UserError, match="a speaker with at least 2 utterances"):
        train_lda(x, np.arange(40), dim=3)


def test_plda_scores_equal_direct_log_likelihood_ratio():
    rng = np.random.default_rng(4)
    x, labels, _, _ = two_cov_data(rng, 50, rng.integers(2, 10, size=50), 7)
    backend = PldaBackend.train(x, labels, lda_dim=5)
    probe = rng.normal(size=(12, 7)) * 2 + x.mean(axis=0)
    y = backend.plda.to_plda_space(backend.preprocess(probe))
    psi = backend.plda.psi
    # Independent computation in the PLDA space (W = I, B = diag(psi)):
    # llr = log N([e;t]; 0, [[B+W, B], [B, B+W]]) - log N(e; 0, B+W) - log N(t; 0, B+W).
    d = psi.size
    tot, acr = np.diag(psi + 1), np.diag(psi)
    joint = np.block([[tot, acr], [acr, tot]])
    ei, ti = np.array([0, 1, 2, 3, 5, 11, 7]), np.array([1, 1, 9, 4, 6, 0, 2])
    direct = [multivariate_normal(np.zeros(2 * d), joint).logpdf(np.concatenate([y[i], y[j]]))
              - multivariate_normal(np.zeros(d), tot).logpdf(y[i])
              - multivariate_normal(np.zeros(d), tot).logpdf(y[j]) for i, j in zip(ei, ti)]
    space = backend.transform(probe)
    got = pair_scores(space, space, ei, ti)
    np.testing.assert_allclose(got, direct, rtol=2e-4, atol=2e-4)
    full = matrix_scores(space, space)
    np.testing.assert_allclose(full[ei, ti], got, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(full, full.T, rtol=1e-5, atol=1e-4)


def test_plda_length_normalisation_matches_kaldi_definition():
    rng = np.random.default_rng(5)
    x, labels, _, _ = two_cov_data(rng, 20, 4, 5)
    backend = PldaBackend.train(x, labels, lda_dim=4)
    y = backend.plda.to_plda_space(backend.preprocess(x[:6]))
    # Kaldi scales so that sum_i y_i^2 / (psi_i + 1/num_utts) == dim, with num_utts = 1.
    np.testing.assert_allclose((y ** 2 / (backend.plda.psi + 1)).sum(axis=1), 4.0)


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    x, labels, _, _ = two_cov_data(rng, 10, 3, 4)
    backend = PldaBackend.train(x, labels, lda_dim=3)
    backend.save(tmp_path / "plda.npz")
    again = PldaBackend.load(tmp_path / "plda.npz")
    a, b = backend.transform(x), again.transform(x)
    np.testing.assert_array_equal(a.vec, b.vec)
    with pytest.raises(UserError, match="does not exist"):
        PldaBackend.load(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_text("junk")
    with pytest.raises(UserError, match="not a PLDA back-end"):
        PldaBackend.load(tmp_path / "bad.npz")


def covariances(plda) -> tuple[np.ndarray, np.ndarray]:
    """``(W, B)`` of a PLDA in its input space, from its diagonalising transform."""
    inv = np.linalg.inv(plda.transform)
    return inv @ inv.T, inv @ np.diag(plda.psi) @ inv.T


@pytest.fixture(scope="module")
def fitted():
    """A PLDA fitted on generated data, and 40,000 unlabelled vectors drawn from that PLDA itself."""
    rng = np.random.default_rng(7)
    x, labels, _, _ = two_cov_data(rng, 300, 6, 5)
    plda = estimate_plda(x, labels)
    w, b = covariances(plda)
    return plda, plda.mean + rng.multivariate_normal(np.zeros(5), w + b, size=40000)


def test_plda_adaptation_defaults_are_kaldis():
    assert PldaAdaptConfig() == PldaAdaptConfig(mean_diff_scale=1.0, within_covar_scale=0.3, between_covar_scale=0.7)
    with pytest.raises(UserError, match="within-covar-scale must be >= 0"):
        PldaAdaptConfig(within_covar_scale=-0.1).validate()


def test_adapting_to_the_models_own_data_leaves_it_nearly_unchanged(fitted):
    plda, x = fitted
    w, b = covariances(plda)
    adapted = adapt_plda(plda, x)
    w2, b2 = covariances(adapted)
    assert np.linalg.norm(w2 - w) < 0.03 * np.linalg.norm(w)
    assert np.linalg.norm(b2 - b) < 0.03 * np.linalg.norm(b)
    np.testing.assert_allclose(adapted.mean, x.mean(axis=0))
    assert np.all(np.diff(adapted.psi) <= 0)


def test_data_varying_less_than_the_model_leave_its_covariances_as_they_are(fitted):
    plda, x = fitted
    shrunk = plda.mean + 0.5 * (x - plda.mean)  # every direction's variance a quarter of the model's
    adapted = adapt_plda(plda, shrunk)
    for before, after in zip(covariances(plda), covariances(adapted)):
        np.testing.assert_allclose(after, before, rtol=1e-9, atol=1e-9)


def test_an_added_direction_of_variance_is_matched_and_split_between_within_and_between(fitted):
    plda, x = fitted
    rng = np.random.default_rng(8)
    u = rng.normal(size=5)
    u /= np.linalg.norm(u)
    extra = 9.0
    shifted = x + rng.normal(scale=np.sqrt(extra), size=(len(x), 1)) * u
    w, b = covariances(plda)
    adapted = adapt_plda(plda, shifted)
    w2, b2 = covariances(adapted)
    data_var = u @ np.cov(shifted.T, bias=True) @ u
    assert u @ (w + b) @ u + 0.9 * extra < data_var
    np.testing.assert_allclose(u @ (w2 + b2) @ u, data_var, rtol=0.02)   # the model's total variance follows
    # the excess goes 0.3 : 0.7 to the within- and between-speaker covariances
    np.testing.assert_allclose((w2 - w) * 0.7, (b2 - b) * 0.3, atol=1e-9)
    assert u @ (b2 - b) @ u > 0.6 * extra
    config = PldaAdaptConfig(within_covar_scale=1.0, between_covar_scale=0.0)
    w3, b3 = covariances(adapt_plda(plda, shifted, config))
    np.testing.assert_allclose(b3, b, atol=1e-9)
    np.testing.assert_allclose(u @ w3 @ u, u @ (w2 + b2 - b) @ u, rtol=1e-6)


def test_the_offset_of_the_in_domain_mean_counts_with_mean_diff_scale(fitted):
    plda, x = fitted
    offset = np.array([0.0, 0.0, 4.0, 0.0, 0.0])
    w, b = covariances(plda)
    total = w + b
    kept = covariances(adapt_plda(plda, x + offset, PldaAdaptConfig(mean_diff_scale=0.0)))
    grown = covariances(adapt_plda(plda, x + offset))
    assert abs((kept[0] + kept[1])[2, 2] - total[2, 2]) < 0.03 * total[2, 2]
    # Kaldi adds the mean offset's outer product to the in-domain total covariance
    expected = np.cov((x + offset).T, bias=True)[2, 2] + 16.0
    np.testing.assert_allclose((grown[0] + grown[1])[2, 2], expected, rtol=0.03)
    np.testing.assert_allclose(adapt_plda(plda, x + offset).mean, (x + offset).mean(axis=0))


def test_backend_adaptation_works_after_the_backends_own_preprocessing():
    rng = np.random.default_rng(9)
    x, labels, _, _ = two_cov_data(rng, 40, 5, 6)
    backend = PldaBackend.train(x, labels, lda_dim=4)
    in_domain = rng.normal(size=(200, 6)) * 3 + 5
    adapted = backend.adapted(in_domain)
    np.testing.assert_array_equal(adapted.lda, backend.lda)
    np.testing.assert_array_equal(adapted.mean, backend.mean)
    expected = adapt_plda(backend.plda, backend.preprocess(in_domain))
    np.testing.assert_allclose(adapted.plda.transform, expected.transform)
    np.testing.assert_allclose(adapted.plda.mean, backend.preprocess(in_domain).mean(axis=0))
    with pytest.raises(UserError, match="dimension 4"):
        adapt_plda(backend.plda, np.zeros((3, 5)))
