"""The two trial-scoring paths (dense tiles of BLAS products, row-wise gathers) against a direct
float64 computation and against each other, and the cost model's choice between them."""

import numpy as np
import pytest

from dropclass_lib.backends import scoring
from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.backends.scoring import ScoringSpace, choose_method, pair_scores, sorts_by_enrolment


def direct(a: ScoringSpace, b: ScoringSpace, ai, bi) -> np.ndarray:
    s = (a.vec[ai].astype(np.float64) * b.vec[bi]).sum(axis=1)
    for space, idx in ((a, ai), (b, bi)):
        if space.off is not None:
            s += space.off[idx]
    return s


def spaces(kind: str, rng, num_a=37, num_b=53, dim=12):
    """Enrolment and test spaces of a cosine back-end, or of a trained PLDA back-end (with offsets)."""
    x = rng.normal(size=(num_a + num_b, dim)) + 2 * rng.normal(size=(8, dim))[np.arange(num_a + num_b) % 8]
    if kind == "cosine":
        backend = CosineBackend(x.mean(axis=0))
    else:
        backend = PldaBackend.train(x, np.arange(x.shape[0]) % 8, lda_dim=6)
    a, b = backend.transform(x[:num_a]), backend.transform(x[num_a:])
    assert (a.off is not None) == (kind == "plda")
    return a, b


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 5 x 7 entries, so a few dozen utterances span many tiles with ragged edges."""
    monkeypatch.setattr(scoring, "TILE_TEST_ROWS", 7)
    monkeypatch.setattr(scoring, "TILE_ENTRIES", 35)


def trial_lists(rng, num_a, num_b):
    dense = (rng.integers(0, num_a, 1500), rng.integers(0, num_b, 1500))
    # Few trials over a few utterances: most tiles are empty and skipped.
    sparse = (rng.choice([2, 30, 31], 9), rng.choice([0, 6, 7, 50], 9))
    dup = (np.array([4, 4, 9, 4, 4]), np.array([8, 8, 1, 8, 52]))
    single = (np.array([36]), np.array([52]))
    return {"dense": dense, "sparse": sparse, "duplicates": dup, "single": single}


@pytest.mark.parametrize("kind", ["cosine", "plda"])
@pytest.mark.parametrize("case", ["dense", "sparse", "duplicates", "single"])
def test_dense_and_rowwise_paths_agree_with_direct_scores(kind, case, small_tiles):
    rng = np.random.default_rng(0)
    a, b = spaces(kind, rng)
    ai, bi = trial_lists(rng, len(a), len(b))[case]
    expected = direct(a, b, ai, bi)
    scale = np.abs(expected).max()
    rowwise = pair_scores(a, b, ai, bi, chunk=4, method="rowwise")
    dense = pair_scores(a, b, ai, bi, method="dense")
    for got in (rowwise, dense, pair_scores(a, b, ai, bi)):
        assert got.dtype == np.float32 and got.shape == ai.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(dense, rowwise, rtol=1e-5, atol=1e-6 * scale)
    if case == "duplicates":
        assert dense[0] == dense[1] == dense[3]


def test_dense_path_with_one_tile_and_same_space_on_both_sides():
    rng = np.random.default_rng(1)
    a, _ = spaces("plda", rng)
    ai, bi = rng.integers(0, len(a), 400), rng.integers(0, len(a), 400)
    np.testing.assert_allclose(pair_scores(a, a, ai, bi, method="dense"), direct(a, a, ai, bi), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("sort", [None, True, False])
def test_rowwise_enrolment_order_keeps_trial_order(sort, monkeypatch):
    """Above SORT_MIN_BYTES (here 0), or with sort=True, the row-wise path scores in enrolment
    order; the output stays in trial order."""
    monkeypatch.setattr(scoring, "SORT_MIN_BYTES", 0)
    calls = []
    inner = scoring._rowwise_dots

    def spy(va, vb, ai, bi, chunk, sort=False):
        calls.append((np.asarray(ai).copy(), sort))
        return inner(va, vb, ai, bi, chunk, sort)

    monkeypatch.setattr(scoring, "_rowwise_dots", spy)
    rng = np.random.default_rng(2)
    a, b = spaces("plda", rng)
    ai, bi = rng.integers(0, len(a), 300), rng.integers(0, len(b), 300)
    got = pair_scores(a, b, ai, bi, chunk=16, method="rowwise", sort=sort)
    np.testing.assert_allclose(got, direct(a, b, ai, bi), rtol=1e-5, atol=1e-4)
    if sort is False:
        assert len(calls) == 1 and not calls[0][1]
    else:
        assert len(calls) == 2 and calls[0][1] and np.all(np.diff(calls[1][0]) >= 0)


@pytest.mark.parametrize("method", ["dense", "rowwise"])
def test_method_forces_the_path(method, monkeypatch):
    taken = []
    for name in ("_dense_dots", "_rowwise_dots"):
        inner = getattr(scoring, name)
        monkeypatch.setattr(scoring, name, lambda *args, _f=inner, _n=name: taken.append(_n) or _f(*args))
    rng = np.random.default_rng(3)
    a, b = spaces("cosine", rng, num_a=300, num_b=300, dim=64)
    # A list the cost model scores the other way: 22 % of all pairs, or a diagonal (0.33 %).
    if method == "rowwise":
        ai, bi = rng.integers(0, 300, 20_000), rng.integers(0, 300, 20_000)
    else:
        ai, bi = rng.permutation(300), rng.permutation(300)
    auto = choose_method(ai.size, np.unique(ai).size, np.unique(bi).size, 64)
    assert auto != method
    forced = pair_scores(a, b, ai, bi, method=method)
    assert taken == [f"_{method}_dots"]
    taken.clear()
    np.testing.assert_allclose(pair_scores(a, b, ai, bi), forced, rtol=1e-5, atol=1e-6)
    assert taken == [f"_{auto}_dots"]


def test_cost_model_choices():
    # Random 5M trials over 10k utterances (5 % of pairs) go dense, at either dimension.
    assert choose_method(5_000_000, 10_000, 10_000, 512) == "dense"
    assert choose_method(5_000_000, 10_000, 10_000, 200) == "dense"
    # VoxCeleb1-O (0.17 % of pairs) and VoxCeleb1-E stay row-wise.
    assert choose_method(37_720, 4_708, 4_708, 512) == "rowwise"
    assert choose_method(579_818, 145_375, 145_375, 200) == "rowwise"
    # The break-even point lies between 0.3 % and 1.5 % of all pairs.
    assert choose_method(30_000, 1000, 10_000, 256) == "rowwise"
    assert choose_method(150_000, 1000, 10_000, 256) == "dense"
    # Row-wise in enrolment order only when the enrolment rows outgrow the cache (VoxCeleb1-E).
    assert not sorts_by_enrolment(4_708, 512)
    assert sorts_by_enrolment(145_375, 200)


def test_empty_and_bad_inputs():
    rng = np.random.default_rng(4)
    a, b = spaces("cosine", rng)
    assert pair_scores(a, b, [], []).shape == (0,)
    with pytest.raises(IndexError):
        pair_scores(a, b, [0, len(a)], [0, 1])
    with pytest.raises(ValueError, match="method"):
        pair_scores(a, b, [0], [0], method="fast")
    with pytest.raises(ValueError, match="one length"):
        pair_scores(a, b, [0, 1], [0])
