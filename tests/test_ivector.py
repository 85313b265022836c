"""I-vector systems (dropclass_lib.backends.ivector, steps/train_ivector.py): the front end against
Kaldi's add-deltas, the UBM and the total-variability model against their definitions, and the
system in model packages and their back-ends (steps/make_model_package.py, steps/evaluate_model.py)."""

from __future__ import annotations

import dataclasses
import json

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from conftest import load_script, run_cli
from dropclass_lib.backends.ivector import (DiagUbm, IvectorConfig, IvectorExtractor, add_deltas, ivectors_data_dir,
                                            load_system, train_system)
from dropclass_lib.backends.trial_scoring import score_trial_list
from dropclass_lib.errors import UserError
from dropclass_lib.heads import build_head
from dropclass_lib.metrics import compute_eer
from dropclass_lib.model_io import save_model
from dropclass_lib.models import build_extractor
from dropclass_lib.package import open_package
from dropclass_lib.trials import read_trials
from dropclass_lib.vector_io import read_vectors
from test_training_data import make_feats_dir

package_step = load_script("steps/make_model_package.py")
evaluate_step = load_script("steps/evaluate_model.py")
TINY = {"num_gauss": 4, "ivector_dim": 3, "num_ceps": 6, "ubm_frames": 2000, "ubm_iters": 10, "num_iters": 3,
        "lda_dim": 2, "cmn_window": 0, "use_vad": False}


def kaldi_add_deltas(x: np.ndarray, order: int, window: int) -> np.ndarray:
    """A line-by-line transcription of Kaldi's DeltaFeatures (feature-functions.cc)."""
    scales = [np.array([1.0])]
    for i in range(1, order + 1):
        prev = scales[i - 1]
        prev_offset = (len(prev) - 1) // 2
        cur_offset = prev_offset + window
        cur = np.zeros(len(prev) + 2 * window)
        normalizer = 0.0
        for j in range(-window, window + 1):
            normalizer += j * j
            for k in range(-prev_offset, prev_offset + 1):
                cur[j + k + cur_offset] += j * prev[k + prev_offset]
        scales.append(cur / normalizer)
    num_frames, dim = x.shape
    out = np.zeros((num_frames, dim * (order + 1)))
    for frame in range(num_frames):
        for i in range(order + 1):
            max_offset = (len(scales[i]) - 1) // 2
            for j in range(-max_offset, max_offset + 1):
                offset_frame = min(max(frame + j, 0), num_frames - 1)
                out[frame, i * dim:(i + 1) * dim] += scales[i][j + max_offset] * x[offset_frame]
    return out


@pytest.mark.parametrize("frames,order,window", [(9, 2, 2), (3, 2, 2), (1, 2, 2), (12, 1, 3), (6, 0, 2)])
def test_add_deltas_is_kaldis(frames, order, window):
    x = np.random.default_rng(frames).standard_normal((frames, 4))
    np.testing.assert_allclose(add_deltas(x, order, window), kaldi_add_deltas(x, order, window), atol=1e-12)


def test_ubm_posteriors_are_scikit_learns():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, s, (300, 3)) for m, s in ((-3, 1.0), (0, 0.5), (4, 2.0))])
    gmm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(x)
    ubm = DiagUbm(gmm.weights_, gmm.means_, gmm.covariances_)
    np.testing.assert_allclose(ubm.posteriors(x), gmm.predict_proba(x), atol=1e-9)


def _extractor(rng, num_gauss=3, feat_dim=2, dim=2) -> IvectorExtractor:
    ubm = DiagUbm(np.full(num_gauss, 1.0 / num_gauss), rng.normal(0, 3, (num_gauss, feat_dim)),
                  rng.uniform(0.5, 2.0, (num_gauss, feat_dim)))
    config = dataclasses.replace(IvectorConfig(), num_gauss=num_gauss, ivector_dim=dim)
    return IvectorExtractor(config, "fbank", ubm, rng.normal(0, 1, (num_gauss * feat_dim, dim)))


def test_ivector_is_the_posterior_mode_of_the_model():
    """The gradient of log p(F | w) + log p(w), with F_c ~ N(N_c T_c w, N_c I) in the whitened
    space, vanishes at the extracted i-vector and not elsewhere."""
    rng = np.random.default_rng(1)
    ext = _extractor(rng)
    x = rng.normal(0, 2, (50, 2))
    n, f = ext.statistics(x)
    t = ext.matrix.reshape(3, 2, 2)
    fc = f.reshape(3, 2)

    def gradient(w):
        return sum(t[c].T @ (fc[c] - n[c] * t[c] @ w) for c in range(3)) - w

    w = ext.extract(n[None], f[None])[0]
    np.testing.assert_allclose(gradient(w), 0.0, atol=1e-9)
    assert np.abs(gradient(w + 0.1)).max() > 1e-3
    # the statistics from their definition: posteriors, centred on the means, whitened
    post = ext.ubm.posteriors(x)
    np.testing.assert_allclose(n, post.sum(0))
    np.testing.assert_allclose(fc, (post.T @ x - n[:, None] * ext.ubm.means) / np.sqrt(ext.ubm.variances))


def test_em_recovers_a_planted_subspace():
    """Utterances drawn from the model itself, each with its own w: after EM the i-vectors span
    the planted w (a linear map fits them), while those of the random start do not."""
    rng = np.random.default_rng(2)
    truth = _extractor(rng, num_gauss=4, feat_dim=3, dim=2)
    truth.ubm.means[:] = np.array([[-6, 0, 0], [6, 0, 0], [0, -6, 0], [0, 6, 0]], dtype=float)
    truth.matrix *= 0.3  # shifts small against the components' distances: each frame keeps its component
    w = rng.normal(0, 1, (300, 2))
    stats = []
    for u in range(300):
        comp = rng.integers(0, 4, 200)
        shift = (truth.matrix @ w[u]).reshape(4, 3) * np.sqrt(truth.ubm.variances)
        x = truth.ubm.means[comp] + shift[comp] + rng.standard_normal((200, 3)) * np.sqrt(truth.ubm.variances[comp])
        stats.append(truth.statistics(x))
    n, f = np.stack([s[0] for s in stats]), np.stack([s[1] for s in stats])
    model = dataclasses.replace(truth, matrix=rng.normal(0, 0.1, truth.matrix.shape))

    def fit(ivectors):
        design = np.column_stack([ivectors, np.ones(len(ivectors))])
        residual = w - design @ np.linalg.lstsq(design, w, rcond=None)[0]
        return 1.0 - (residual ** 2).sum() / ((w - w.mean(0)) ** 2).sum()

    before = fit(model.extract(n, f))
    for _ in range(5):
        model.em_iteration(n, f)
    assert fit(model.extract(n, f)) > 0.95 > before
    # T itself is identified up to a rotation of w: T T' is the planted one's, within what 300
    # utterances tell (the minimum-divergence step gets there in a few iterations)
    gram, planted = model.matrix @ model.matrix.T, truth.matrix @ truth.matrix.T
    assert np.linalg.norm(gram - planted) < 0.15 * np.linalg.norm(planted)


def _raw_dirs(tmp_path):
    """Training and test data dirs of raw 'fbank' features whose speakers differ in their mean
    spectrum, with vad.scp (the first 5 frames of every utterance unvoiced) and test trials."""
    dirs = {}
    for name, seed, spk in (("train", 0, 10), ("test", 1, 6)):
        d = make_feats_dir(tmp_path / name, num_spk=spk, utts_per_spk=5, dim=12, seed=seed)
        (d / "feats_config.yaml").write_text("feat_type: fbank\nnum_mel_bins: 12\n")
        with kaldiio.WriteHelper(f"ark,scp:{d}/vad.ark,{d}/vad.scp") as writer:
            for key, mat in kaldiio.load_scp_sequential(str(d / "feats.scp")):
                writer(key, (np.arange(mat.shape[0]) >= 5).astype(np.float32))
        dirs[name] = d
    utts = sorted(line.split()[0] for line in (dirs["test"] / "utt2spk").read_text().splitlines())
    trials = [f"{a} {b} {'target' if a.split('-')[0] == b.split('-')[0] else 'nontarget'}"
              for a in utts[::5] for b in utts if a != b]
    (dirs["test"] / "trials").write_text("\n".join(trials) + "\n")
    return dirs["train"], dirs["test"]


def _config_file(tmp_path, **changes):
    path = tmp_path / f"ivector_{len(list(tmp_path.glob('ivector_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def test_train_system_separates_speakers_and_is_kept_or_redone(tmp_path):
    train, test = _raw_dirs(tmp_path)
    step = load_script("steps/train_ivector.py")
    out = tmp_path / "sys"
    raw_conf = _config_file(tmp_path)
    assert step.main(["--config", str(raw_conf), str(train), str(out)]) == 0
    extractor, plda = load_system(out)
    assert extractor.matrix.shape == (4 * 18, 3) and extractor.feat_type == "fbank"
    assert plda.lda.shape == (2, 3)
    times = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert step.main(["--config", str(raw_conf), str(train), str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == times

    # The test speakers' mean spectra tell them apart: scored as the back-end scores (PLDA
    # after the i-vectors' own mean) the EER is low.
    scp = ivectors_data_dir(out, test, tmp_path / "iv")
    keys, x = read_vectors(scp)
    trials = read_trials(test / "trials")
    scores = score_trial_list(dataclasses.replace(plda, mean=x.astype(np.float64).mean(0)), trials, test / "trials",
                              (keys, x), (keys, x), "iv", "iv")
    assert compute_eer(scores, trials.target) < 0.1

    # another setting redoes the system
    assert step.main(["--config", str(raw_conf), "--set", "num_iters=2", str(train), str(out)]) == 0
    assert (out / "extractor.npz").stat().st_mtime_ns != times[out / "extractor.npz"]
    assert json.loads((out / ".made_from.json").read_text())["settings"]["num_iters"] == 2


def test_cmn_and_vad_front_end(tmp_path):
    """With CMN and VAD each utterance's frames are its voiced frames after sliding CMN of the
    cepstra and their deltas; a data dir without vad.scp is a one-line error."""
    train, _ = _raw_dirs(tmp_path)
    from dropclass_lib.backends.ivector import FrameFeatures
    from dropclass_lib.cmn import sliding_window_cmn
    from dropclass_lib.kaldi_analysis import liftered_dct

    config = dataclasses.replace(IvectorConfig(), num_ceps=6, cmn_window=20)
    feats = np.random.default_rng(0).normal(0, 1, (40, 12))
    vad = (np.arange(40) % 3 != 0).astype(np.float32)
    expected = sliding_window_cmn(kaldi_add_deltas(feats @ liftered_dct(12, 6, 22.0), 2, 2), 20)[vad != 0]
    np.testing.assert_allclose(FrameFeatures("fbank", config)(feats, vad), expected, atol=1e-5)

    (train / "vad.scp").unlink()
    status, err = run_cli("steps/train_ivector.py", "--config", str(_config_file(tmp_path, cmn_window=300, use_vad=True)),
                          str(train), str(tmp_path / "sys"))
    assert status == 1 and "vad.scp does not exist" in err and err.count("\n") == 1
    status, err = run_cli("steps/train_ivector.py", "--set", "num_gauss=0", str(train), str(tmp_path / "sys"))
    assert status == 1 and "num_gauss must be at least 1" in err


def test_package_backends_and_fusion(tmp_path):
    """make_model_package places the systems in their slots (checking their front end); the
    ivector back-ends score PLDA after the scored set's i-vector mean, and fuse like any other."""
    train, test = _raw_dirs(tmp_path)
    step = load_script("steps/train_ivector.py")
    raw, cmn = tmp_path / "raw", tmp_path / "cmn"
    assert step.main(["--config", str(_config_file(tmp_path)), str(train), str(raw)]) == 0
    assert step.main(["--config", str(_config_file(tmp_path, cmn_window=20, use_vad=True)), str(train), str(cmn)]) == 0
    torch.manual_seed(0)
    pkg = tmp_path / "model"
    pkg.mkdir()
    save_model(pkg / "final.pt", build_extractor("tdnn", input_dim=12, frame_dims=[8] * 4 + [16], emb_dim=6),
               build_head("softmax", 6, 10), [f"spk{s:03d}" for s in range(10)])
    (tmp_path / "vad.yaml").write_text("vad_energy_threshold: 5.5\n")
    common = ["--frontend-data", str(train), "--vad-conf", str(tmp_path / "vad.yaml"), "--lda-dim", "3", "--device", "cpu"]
    with pytest.raises(UserError, match="--ivector-raw .* is not the one of `ivector_raw`"):
        package_step.main([*common, "--ivector-raw", str(cmn), str(pkg), str(train)])
    with pytest.raises(UserError, match="--ivector .* is not the one of `ivector`"):
        package_step.main([*common, "--ivector", str(raw), str(pkg), str(train)])
    assert package_step.main([*common, "--ivector", str(cmn), "--ivector-raw", str(raw), str(pkg), str(train)]) == 0
    package = open_package(pkg)
    assert sorted(package.ivectors) == ["ivector", "ivector_raw"]
    assert (pkg / "ivector_raw" / "extractor.npz").samefile(raw / "extractor.npz")  # linked, not copied

    out = tmp_path / "eval"
    args = ["--backends", "cosine_dm,ivector,ivector_raw,fused", "--set-name", "t", "--raw-data", str(test),
            str(pkg), str(test), str(out)]
    assert evaluate_step.main(args) == 0
    for slot, system in (("ivector", cmn), ("ivector_raw", raw)):
        keys, x = read_vectors(out / f"{slot}_t" / "ivector.scp")
        _, plda = load_system(system)
        trials = read_trials(test / "trials")
        expected = score_trial_list(dataclasses.replace(plda, mean=x.astype(np.float64).mean(0)), trials,
                                    test / "trials", (keys, x), (keys, x), "iv", "iv")
        got = [float(line.split()[2]) for line in (out / f"scores_t_{slot}" / "scores").read_text().splitlines()]
        np.testing.assert_allclose(got, expected, atol=1e-3)

    fusion_step = load_script("steps/train_fusion.py")
    assert fusion_step.main(["--components", "cosine_dm,ivector_raw", "--dev", str(out), "t", str(pkg)]) == 0
    ivectors = out / "ivector_raw_t" / "ivector.scp"
    kept = ivectors.stat().st_mtime_ns
    assert evaluate_step.main(args) == 0
    metrics = json.loads((out / "scores_t_fused" / "metrics.json").read_text())
    assert metrics["components"] == ["cosine_dm", "ivector_raw"]
    assert ivectors.stat().st_mtime_ns == kept

    # a package without the systems skips their back-ends, naming what is missing
    for slot in ("ivector", "ivector_raw"):
        for name in ("extractor.npz", "plda.npz"):
            (pkg / slot / name).unlink()
    assert evaluate_step.main(args) == 0
    status, err = run_cli("steps/evaluate_model.py", "--backends", "ivector", "--raw-data", str(test), str(pkg),
                          str(test), str(tmp_path / "o"))
    assert status == 1 and "serves none of the back-ends ivector" in err
