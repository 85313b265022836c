"""dropclass_lib.load_model: a model package used from Python gives the recipe's x-vectors and scores."""

from __future__ import annotations

import shutil

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
from scipy.signal import resample_poly

import dropclass_lib
from conftest import load_script
from dropclass_lib.errors import UserError
from dropclass_lib.features import CONF_DIR
from dropclass_lib.package import frontend_record, write_frontend
from dropclass_lib.tables import read_key_rest
from model_package import feature_config, make_package, run_front_end


def _recipe_xvectors(model: str, no_sil, out) -> dict[str, np.ndarray]:
    load_script("steps/extract_embeddings.py").main([str(model), str(no_sil), str(out)])
    return {u: np.asarray(v) for u, v in kaldiio.load_scp(str(out / "xvector.scp")).items()}


def _cosine(a, b) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The tiny system trained on dithered features, and the recipe's x-vectors of its data."""
    root = tmp_path_factory.mktemp("api")
    exp, data = make_package(root, dither=1.0)
    return exp, data, _recipe_xvectors(exp / "final.pt", root / "work" / "data_no_sil", root / "xvectors")


def test_embedding_equals_the_recipe_xvector_with_dither(package):
    exp, data, recipe = package
    model = dropclass_lib.load_model(exp)
    wav = read_key_rest(data / "wav.scp")
    assert set(recipe) == set(wav)
    for utt, path in wav.items():
        # Without the recipe's utterance id the dither noise differs: nearly the same embedding.
        assert _cosine(model.embed(path), recipe[utt]) >= 0.99
        # With it, the same numbers as the recipe.
        np.testing.assert_allclose(model.embed(path, utt_id=utt), recipe[utt], rtol=1e-5, atol=1e-5)


def test_embedding_equals_the_recipe_xvector_without_dither(package, tmp_path):
    exp, data, _ = package
    # The same model with a dither-0 front end, and the recipe's steps run with those settings.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shutil.copy(exp / "final.pt", pkg / "final.pt")
    data0 = tmp_path / "data"
    shutil.copytree(data, data0, ignore=shutil.ignore_patterns("feats*", "vad.scp", "utt2num_frames", "log", ".*"))
    no_sil = run_front_end(data0, feature_config(tmp_path, 0.0), tmp_path / "work", cmn_window=50)
    write_frontend(pkg, frontend_record(data0 / "feats_config.yaml", CONF_DIR / "vad.yaml", 50))
    recipe = _recipe_xvectors(pkg / "final.pt", no_sil, tmp_path / "xvectors")
    model = dropclass_lib.load_model(pkg / "final.pt")  # the model file in a package works too
    wav = read_key_rest(data0 / "wav.scp")
    utts = sorted(wav)
    batch = model.embed_batch([wav[u] for u in utts])
    for utt, emb in zip(utts, batch):
        np.testing.assert_allclose(emb, recipe[utt], rtol=1e-5, atol=1e-6)
        # one utterance alone: only the batching differs, so float rounding at most
        np.testing.assert_allclose(model.embed(wav[utt]), emb, rtol=1e-5, atol=1e-6)


def test_arrays_and_resampling(package, tmp_path):
    exp, data, _ = package
    model = dropclass_lib.load_model(exp, device="cpu")
    path = read_key_rest(data / "wav.scp")["bob-w1"]
    x, rate = soundfile.read(path, dtype="float32")
    np.testing.assert_array_equal(model.embed(x, sample_rate=rate), model.embed(path))
    # 8 kHz audio is brought to the model's 16 kHz by resample_poly(x, 2, 1) before the front end.
    x8 = resample_poly(x.astype(np.float64), 1, 2).astype(np.float32)
    expected = model.embed(resample_poly(x8.astype(np.float64), 2, 1).astype(np.float32), sample_rate=16000)
    np.testing.assert_array_equal(model.embed(x8, sample_rate=8000), expected)
    soundfile.write(tmp_path / "bob8k.wav", x8, 8000, subtype="FLOAT")
    np.testing.assert_allclose(model.embed(tmp_path / "bob8k.wav"), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="needs its sample_rate"):
        model.embed(x)
    with pytest.raises(UserError, match="1-D"):
        model.embed(np.stack([x, x]), sample_rate=rate)
    with pytest.raises(UserError, match="no voiced frame"):
        model.embed(np.zeros(16000, dtype=np.float32), sample_rate=16000)


def test_extractor_is_the_torch_module(package):
    exp, data, _ = package
    model = dropclass_lib.load_model(exp)
    path = read_key_rest(data / "wav.scp")["carol-w0"]
    feats = model.features(path)
    assert feats.shape[1] == 20
    with torch.no_grad():
        direct = model.extractor(torch.from_numpy(feats)[None])[0].numpy()
    np.testing.assert_allclose(model.embed(path), direct, rtol=1e-5, atol=1e-6)


def test_cosine_and_plda_scores_equal_score_trials(package, tmp_path):
    exp, data, recipe = package
    wav = read_key_rest(data / "wav.scp")
    trials = tmp_path / "trials"
    trials.write_text("alice-w0 alice-w1 target\nalice-w0 bob-w2 nontarget\ncarol-w1 bob-w0 nontarget\n")
    pairs = [line.split()[:2] for line in trials.read_text().splitlines()]
    xv = tmp_path / "xvectors"
    xv.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{xv}/xvector.ark,{xv}/xvector.scp") as w:
        for utt in sorted(recipe):
            w(utt, recipe[utt])
    pkg = tmp_path / "pkg"
    shutil.copytree(exp, pkg, ignore=shutil.ignore_patterns("checkpoint_*", "tensorboard"))
    for backend in ("cosine", "plda"):
        if backend == "plda":
            load_script("steps/train_plda.py").main(["--lda-dim", "2", str(xv / "xvector.scp"),
                                                     str(data / "utt2spk"), str(pkg / "plda")])
        extra = ["--plda-dir", str(pkg / "plda")] if backend == "plda" else []
        load_script("steps/score_trials.py").main(["--backend", backend, *extra, str(trials), str(xv / "xvector.scp"),
                                                   str(xv / "xvector.scp"), str(tmp_path / f"scores_{backend}")])
        expected = [float(line.split()[2]) for line in (tmp_path / f"scores_{backend}" / "scores").read_text().splitlines()]
        model = dropclass_lib.load_model(pkg)
        assert model.backend.name == backend
        got = [model.score(recipe[e], recipe[t]) for e, t in pairs]
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
        if backend == "cosine":
            assert got[0] == pytest.approx(_cosine(recipe["alice-w0"], recipe["alice-w1"]), abs=1e-5)
    # Audio paths are embedded on the way.
    a, b = wav["alice-w0"], wav["alice-w1"]
    assert model.score(a, b) == model.score(model.embed(a), model.embed(b))
    with pytest.raises(UserError, match="embeddings of shape"):
        model.score(np.zeros(3), np.zeros(3))


def test_package_errors_are_user_errors(package, tmp_path):
    exp, _, _ = package
    with pytest.raises(UserError, match="does not exist"):
        dropclass_lib.load_model(tmp_path / "nothing")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shutil.copy(exp / "final.pt", pkg / "final.pt")
    with pytest.raises(UserError, match="not a complete model package: frontend.yaml"):
        dropclass_lib.load_model(pkg)
    (pkg / "frontend.yaml").write_text("feats: {feat_type: mfcc, num_ceps: 13}\nvad: {}\ncmn_window: 50\n")
    with pytest.raises(UserError, match="20-dimensional features but frontend.yaml describes 13"):
        dropclass_lib.load_model(pkg)
    (pkg / "frontend.yaml").write_text("feats: {feat_type: mfcc, num_cepz: 20}\nvad: {}\ncmn_window: 300\n")
    with pytest.raises(UserError, match="num_cepz"):
        dropclass_lib.load_model(pkg)
    (pkg / "frontend.yaml").write_text("feats: {feat_type: mfcc}\nvad: {}\n")
    with pytest.raises(UserError, match="missing key.s. cmn_window"):
        dropclass_lib.load_model(pkg)
    (pkg / "frontend.yaml").write_text("feats: {}\nvad: {}\ncmn_window: 0\n")
    with pytest.raises(UserError, match="cmn_window must be a positive integer"):
        dropclass_lib.load_model(pkg)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            dropclass_lib.load_model(exp, device="cuda")


def test_model_io_load_model_keeps_its_meaning(package):
    from dropclass_lib.model_io import TrainedModel, load_model

    exp, _, _ = package
    assert isinstance(load_model(exp / "final.pt"), TrainedModel)
