"""Cosine scoring, score normalisation, and the score_trials / train_plda command lines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.score_norm import cohort_stats, s_norm
from dropclass_lib.backends.scoring import matrix_scores, pair_scores
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.vector_io import write_vectors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "steps"))
import score_trials  # noqa: E402
import train_plda  # noqa: E402


def test_cosine_with_mean_subtraction():
    rng = np.random.default_rng(0)
    a, b, mean = rng.normal(size=(5, 4)), rng.normal(size=(6, 4)), rng.normal(size=4)
    be = CosineBackend(mean)
    ai, bi = np.array([0, 4, 2, 2]), np.array([5, 0, 1, 1])
    got = pair_scores(be.transform(a), be.transform(b), ai, bi, chunk=3)
    x, y = a[ai] - mean, b[bi] - mean
    expected = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(matrix_scores(be.transform(a), be.transform(b))[ai, bi], expected, rtol=1e-5)


@pytest.mark.parametrize("top_n", [None, 3])
def test_s_norm_and_as_norm_against_a_loop(top_n):
    rng = np.random.default_rng(1)
    e, t, c = rng.normal(size=(4, 6)), rng.normal(size=(5, 6)), rng.normal(size=(9, 6))
    be = CosineBackend()
    es, ts, cs = be.transform(e), be.transform(t), be.transform(c)
    ei, ti = np.array([0, 1, 3, 3, 2]), np.array([4, 0, 1, 2, 2])
    raw = pair_scores(es, ts, ei, ti)
    got = s_norm(raw, cohort_stats(es, cs, top_n, chunk=2), cohort_stats(ts, cs, top_n), ei, ti)

    def unit(v):
        return v / np.linalg.norm(v)

    for k, (i, j) in enumerate(zip(ei, ti)):
        s = unit(e[i]) @ unit(t[j])
        ce = np.sort([unit(e[i]) @ unit(x) for x in c])[::-1][:top_n or 9]
        ct = np.sort([unit(t[j]) @ unit(x) for x in c])[::-1][:top_n or 9]
        expected = 0.5 * ((s - ce.mean()) / ce.std() + (s - ct.mean()) / ct.std())
        assert got[k] == pytest.approx(expected, rel=1e-4)


def test_cohort_size_errors():
    be = CosineBackend()
    x = be.transform(np.eye(3))
    with pytest.raises(UserError, match="top-N"):
        cohort_stats(x, x, top_n=4)


def make_corpus(tmp_path, rng, num_spk=12, per_spk=6, dim=16):
    """Embeddings of speaker clusters, utt2spk and an all-pairs-of-first-utterance trial list."""
    centres = rng.normal(size=(num_spk, dim)) * 2
    keys, rows, utt2spk = [], [], {}
    for s in range(num_spk):
        for u in range(per_spk):
            k = f"spk{s:02d}-u{u}"
            keys.append(k)
            rows.append(centres[s] + rng.normal(size=dim))
            utt2spk[k] = f"spk{s:02d}"
    scp = write_vectors(tmp_path / "xv", "xvector", keys, np.array(rows))
    (tmp_path / "utt2spk").write_text("".join(f"{k} {v}\n" for k, v in utt2spk.items()))
    lines = [f"{a} {b} {'target' if utt2spk[a] == utt2spk[b] else 'nontarget'}\n"
             for a in keys[::per_spk] for b in keys if a != b]
    trials = tmp_path / "eval" / "trials"
    trials.parent.mkdir()
    trials.write_text("".join(lines))
    return scp, trials


@pytest.mark.slow
def test_score_trials_cosine_and_plda_end_to_end(tmp_path):
    rng = np.random.default_rng(2)
    scp, trials = make_corpus(tmp_path, rng)
    assert train_plda.main(["--lda-dim", "8", str(scp), str(tmp_path / "utt2spk"), str(tmp_path / "plda")]) == 0
    assert (tmp_path / "plda" / "plda.npz").is_file()
    for backend, extra in [("cosine", ["--mean-scp", str(scp)]),
                           ("plda", ["--plda-dir", str(tmp_path / "plda")]),
                           ("cosine", ["--snorm-cohort", str(scp), "--asnorm-top-n", "10"])]:
        out = tmp_path / f"scores_{backend}_{len(extra)}"
        assert score_trials.main(["--backend", backend, *extra, str(trials), str(scp), str(scp), str(out)]) == 0
        for name in ("scores", "metrics.json", "RESULTS", "det.png", "hist.png"):
            assert (out / name).stat().st_size > 0, name
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["trial_set"] == "eval"
        assert metrics["num_trials"] == len(trials.read_text().splitlines())
        assert metrics["eer"] < 5.0        # well-separated clusters
        assert (out / "RESULTS").read_text().startswith(f"EER {metrics['eer']:.2f} minDCF@0.01 ")
        first = (out / "scores").read_text().splitlines()[0].split()
        assert first[:2] == trials.read_text().split()[:2]
    assert json.loads((tmp_path / "scores_cosine_4" / "metrics.json").read_text())["backend"] == "cosine+asnorm10"
    # A rerun with the same inputs and options is skipped; other options redo the work.
    before = (out / "scores").stat().st_mtime_ns
    assert score_trials.main(["--snorm-cohort", str(scp), "--asnorm-top-n", "10", str(trials), str(scp), str(scp), str(out)]) == 0
    assert (out / "scores").stat().st_mtime_ns == before
    assert score_trials.main(["--snorm-cohort", str(scp), str(trials), str(scp), str(scp), str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["backend"] == "cosine+snorm"


def test_trial_with_unknown_utterance_names_file_line_and_utterance(tmp_path):
    rng = np.random.default_rng(3)
    scp, trials = make_corpus(tmp_path, rng, num_spk=3, per_spk=2)
    lines = trials.read_text().splitlines()
    lines.insert(2, "spk00-u0 ghost-utt nontarget")
    trials.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as err:
        score_trials.main([str(trials), str(scp), str(scp), str(tmp_path / "out")])
    assert err.value.lineno == 3
    assert f"test utterance 'ghost-utt' is not in {scp}" in str(err.value)
    assert str(trials) in str(err.value)
    # From the shell: one ERROR line, no traceback, exit status 1.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "steps" / "score_trials.py"), str(trials), str(scp), str(scp),
                           str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"ERROR (score_trials.py): {trials}:3: test utterance 'ghost-utt'" in proc.stderr
    assert not (tmp_path / "out" / "scores").exists()


def test_plda_backend_needs_its_directory(tmp_path):
    rng = np.random.default_rng(4)
    scp, trials = make_corpus(tmp_path, rng, num_spk=3, per_spk=2)
    with pytest.raises(UserError, match="--plda-dir"):
        score_trials.main(["--backend", "plda", str(trials), str(scp), str(scp), str(tmp_path / "o")])
    with pytest.raises(UserError, match="train_plda"):
        score_trials.main(["--backend", "plda", "--plda-dir", str(tmp_path), str(trials), str(scp), str(scp),
                           str(tmp_path / "o")])
