"""The evaluation chain: model packages (steps/make_model_package.py), every back-end's scores
(steps/evaluate_model.py, dropclass_lib.evaluation), and the freshness of each part."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from dropclass_lib.backends.cosine import length_norm
from dropclass_lib.errors import UserError
from dropclass_lib.evaluation import BACKENDS, RAW_FEATURE_BACKENDS
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import save_model
from dropclass_lib.models import build_extractor
from dropclass_lib.package import open_package
from dropclass_lib.vector_io import read_vectors
from test_training_data import make_feats_dir
from conftest import load_script

package_step = load_script("steps/make_model_package.py")
evaluate_step = load_script("steps/evaluate_model.py")


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    train = make_feats_dir(tmp_path / "train", num_spk=12, utts_per_spk=5, dim=6, seed=0)
    test = make_feats_dir(tmp_path / "test", num_spk=6, utts_per_spk=4, dim=6, seed=1)
    utts = sorted(line.split()[0] for line in (test / "utt2spk").read_text().splitlines())
    trials = [f"{a} {b} {'target' if a.split('-')[0] == b.split('-')[0] else 'nontarget'}"
              for a in utts[::4] for b in utts if a != b]
    (test / "trials").write_text("\n".join(trials) + "\n")
    ext = build_extractor("tdnn", input_dim=6, frame_dims=[16, 16, 16, 16, 32], emb_dim=8)
    head = build_head("softmax", 8, 12)
    pkg = tmp_path / "model"
    pkg.mkdir()
    save_model(pkg / "final.pt", ext, head, [f"spk{s:03d}" for s in range(12)])
    front = tmp_path / "front"
    front.mkdir()
    (front / "feats_config.yaml").write_text("feat_type: fbank\nnum_mel_bins: 6\n")
    (tmp_path / "vad.yaml").write_text("vad_energy_threshold: 5.5\n")
    return tmp_path, train, test, pkg, front


def make_package(tmp, train, pkg, front, *extra):
    assert package_step.main(["--frontend-data", str(front), "--vad-conf", str(tmp / "vad.yaml"),
                              "--lda-dim", "4", "--device", "cpu", *extra, str(pkg), str(train)]) == 0


def test_package_then_every_backend(setup):
    tmp, train, test, pkg, front = setup
    make_package(tmp, train, pkg, front, "--scoring-backend", "cosine_dm")
    p = open_package(pkg)
    assert p.plda is not None and p.cohort is not None and p.scoring["backend"] == "cosine_dm"
    assert p.frontend == {"feats": {"feat_type": "fbank", "num_mel_bins": 6},
                          "vad": {"vad_energy_threshold": 5.5}, "cmn_window": 300}
    speakers, means, train_mean = p.cohort_arrays()
    keys, x = read_vectors(pkg / "xvectors_train" / "xvector.scp")
    np.testing.assert_allclose(train_mean, x.astype(np.float64).mean(0), rtol=1e-6)
    assert len(speakers) == 12 and means.shape == (12, 8)

    out = tmp / "eval"
    assert evaluate_step.main(["--set-name", "t", "--asnorm-top-n", "5", str(pkg / "final.pt"), str(test), str(out)]) == 0
    metrics = {b: json.loads((out / f"scores_t_{b}" / "metrics.json").read_text())
               for b in BACKENDS if b not in RAW_FEATURE_BACKENDS}
    assert not any((out / f"scores_t_{b}").exists() for b in RAW_FEATURE_BACKENDS)  # no raw features given
    assert all(m["trial_set"] == "t" and m["backend"] == b for b, m in metrics.items())
    assert metrics["cosine_dm_asnorm"]["asnorm_top_n"] == 5
    # cosine_dm from its definition: cosine after the mean of the scored set's embeddings
    tk, tx = read_vectors(out / "xvectors_t" / "xvector.scp")
    idx = {k: i for i, k in enumerate(tk)}
    y = length_norm(tx - tx.astype(np.float64).mean(0))
    e, t, s = (out / "scores_t_cosine_dm" / "scores").read_text().split("\n")[3].split()
    assert float(s) == pytest.approx(float(y[idx[e]] @ y[idx[t]]), abs=1e-5)
    # the domain-mean PLDA differs from Kaldi's training-mean PLDA
    plda = [line.split()[2] for line in (out / "scores_t_plda" / "scores").read_text().splitlines()]
    plda_dm = [line.split()[2] for line in (out / "scores_t_plda_dm" / "scores").read_text().splitlines()]
    assert plda != plda_dm


def test_rerun_keeps_everything_and_a_change_redoes_only_what_depends_on_it(setup):
    tmp, train, test, pkg, front = setup
    make_package(tmp, train, pkg, front)
    out = tmp / "eval"
    args = ["--backends", "cosine,plda", str(pkg), str(test), str(out)]
    assert evaluate_step.main(args) == 0
    files = [pkg / "plda" / "plda.npz", pkg / "cohort.npz", out / "xvectors_test" / "xvector.scp",
             out / "scores_test_cosine" / "metrics.json", out / "scores_test_plda" / "metrics.json"]
    times = {f: f.stat().st_mtime_ns for f in files}
    make_package(tmp, train, pkg, front)
    assert evaluate_step.main(args) == 0
    assert {f: f.stat().st_mtime_ns for f in files} == times
    # another LDA dimension: the PLDA and its scores are redone, the cosine scores are not
    make_package(tmp, train, pkg, front, "--lda-dim", "3")
    assert evaluate_step.main(args) == 0
    assert (pkg / "plda" / "plda.npz").stat().st_mtime_ns != times[pkg / "plda" / "plda.npz"]
    assert (out / "scores_test_plda" / "metrics.json").stat().st_mtime_ns != times[out / "scores_test_plda" / "metrics.json"]
    assert (out / "scores_test_cosine" / "metrics.json").stat().st_mtime_ns == times[out / "scores_test_cosine" / "metrics.json"]
    # fewer trials: the scores are redone and say so
    lines = (test / "trials").read_text().splitlines()
    (test / "trials").write_text("\n".join(lines[:30]) + "\n")
    assert evaluate_step.main(args) == 0
    assert json.loads((out / "scores_test_cosine" / "metrics.json").read_text())["num_trials"] == 30


def test_chunk_frames_re_embeds_and_changes_only_the_longer_utterances(setup):
    tmp, train, test, pkg, front = setup
    make_package(tmp, train, pkg, front)
    out = tmp / "eval"
    scp = out / "xvectors_test" / "xvector.scp"
    assert evaluate_step.main(["--backends", "cosine", str(pkg), str(test), str(out)]) == 0
    keys, whole = read_vectors(scp)
    assert evaluate_step.main(["--backends", "cosine", "--chunk-frames", "60", str(pkg), str(test), str(out)]) == 0
    chunked_keys, chunked = read_vectors(scp)
    assert chunked_keys == keys
    num_frames = dict(line.split() for line in (test / "utt2num_frames").read_text().splitlines())
    long = np.array([int(num_frames[k]) > 60 for k in keys])
    assert 0 < long.sum() < len(keys)
    change = np.abs(chunked - whole).max(axis=1)
    assert change[~long].max() < 1e-6 and change[long].min() > 1e-5  # rounding vs a different embedding


def read_scores(score_dir):
    return np.array([float(line.split()[2]) for line in (score_dir / "scores").read_text().splitlines()])


def test_stats_and_fused_backends(setup):
    tmp, train, test, pkg, front = setup
    make_package(tmp, train, pkg, front)
    (test / "feats_config.yaml").write_text("feat_type: fbank\nnum_mel_bins: 6\n")
    out = tmp / "eval"
    args = ["--backends", "cosine_dm,plda_dm,stats,fused", "--set-name", "t", "--raw-data", str(test),
            str(pkg), str(test), str(out)]
    assert evaluate_step.main(args) == 0
    assert not (out / "scores_t_fused").exists()  # no fusion.yaml yet: skipped
    # stats from their definition: mean and std over frames of the liftered orthonormal DCT of
    # the filterbank (all 6 bins here), cosine after the set's mean
    from scipy.fft import dct
    from dropclass_lib.kaldi_analysis import lifter_coefficients
    from dropclass_lib.vector_io import iter_scp
    stats = {}
    for _, utt, m, _ in iter_scp(test / "feats.scp"):
        c = dct(m.astype(np.float64), type=2, norm="ortho", axis=1) * lifter_coefficients(6, 22.0)
        stats[utt] = np.concatenate([c.mean(0), c.std(0)])
    keys = sorted(stats)
    x = np.stack([stats[k] for k in keys])
    y = length_norm(x - x.mean(0))
    idx = {k: i for i, k in enumerate(keys)}
    trials = [line.split() for line in (test / "trials").read_text().splitlines()]
    expected = [y[idx[a]] @ y[idx[b]] for a, b, _ in trials]
    np.testing.assert_allclose(read_scores(out / "scores_t_stats"), expected, atol=1e-5)

    fusion_step = load_script("steps/train_fusion.py")
    assert fusion_step.main(["--components", "cosine_dm,plda_dm,stats", "--dev", str(out), "t", str(pkg)]) == 0
    fusion = yaml.safe_load((pkg / "fusion.yaml").read_text())
    assert fusion["components"] == ["cosine_dm", "plda_dm", "stats"] and fusion["trained_on"] == [f"{out}:t"]
    parts = {b: out / f"scores_t_{b}" / "metrics.json" for b in ("cosine_dm", "plda_dm", "stats")}
    times = {b: f.stat().st_mtime_ns for b, f in parts.items()}
    assert evaluate_step.main(args) == 0
    columns = np.stack([read_scores(out / f"scores_t_{b}") for b in fusion["components"]], axis=1)
    np.testing.assert_allclose(read_scores(out / "scores_t_fused"),
                               columns @ np.array(fusion["weights"]) + fusion["offset"], atol=1e-4)
    assert {b: f.stat().st_mtime_ns for b, f in parts.items()} == times  # the components are not redone
    # a fusion of other components replaces the old one, and the fused scores are redone
    assert fusion_step.main(["--components", "cosine_dm,stats", "--dev", str(out), "t", str(pkg)]) == 0
    assert evaluate_step.main(args) == 0
    fusion = yaml.safe_load((pkg / "fusion.yaml").read_text())
    columns = np.stack([read_scores(out / f"scores_t_{b}") for b in ("cosine_dm", "stats")], axis=1)
    np.testing.assert_allclose(read_scores(out / "scores_t_fused"),
                               columns @ np.array(fusion["weights"]) + fusion["offset"], atol=1e-4)
    with pytest.raises(UserError, match="two or more distinct back-ends"):
        fusion_step.main(["--components", "stats", "--dev", str(out), "t", str(pkg)])
    with pytest.raises(UserError, match="does not exist"):
        fusion_step.main(["--components", "cosine,stats", "--dev", str(out), "t", str(pkg)])


def test_package_errors_are_one_line(setup, tmp_path):
    tmp, train, test, pkg, front = setup
    with pytest.raises(UserError, match="frontend.yaml .* is missing"):
        open_package(pkg)
    with pytest.raises(UserError, match="does not exist"):
        open_package(tmp_path / "nowhere")
    (pkg / "frontend.yaml").write_text(yaml.safe_dump({"feats": {}, "vad": {}}))
    with pytest.raises(UserError, match="missing key.*cmn_window"):
        open_package(pkg)
    make_package(tmp, train, pkg, front)
    (pkg / "cohort.npz").unlink()
    (pkg / "plda" / "plda.npz").unlink()
    with pytest.raises(UserError, match="serves none of the back-ends"):
        evaluate_step.main(["--backends", "cosine,plda", str(pkg), str(test), str(tmp_path / "o")])
    # cosine after the scored set's own mean needs nothing but the model
    assert evaluate_step.main(["--backends", "cosine,cosine_dm", str(pkg), str(test), str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "scores_test_cosine_dm" / "metrics.json").is_file()
    assert not (tmp_path / "o" / "scores_test_cosine").exists()
    with pytest.raises(UserError, match="unknown back-end"):
        evaluate_step.main(["--backends", "cosine,lda_magic", str(pkg), str(test), str(tmp_path / "o")])
