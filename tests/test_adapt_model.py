"""steps/adapt_model.py: a model package, its training data and unlabelled in-domain audio in,
an adapted model package out (DropAdapt and/or the back-ends' mean re-centring and PLDA adaptation)."""

from __future__ import annotations

import dataclasses
import filecmp
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

import dropclass_lib
from conftest import assert_line_error, load_script, run_cli
from dropclass_lib.backends.plda import PldaBackend, adapt_plda
from dropclass_lib.package import open_package
from dropclass_lib.tables import write_table
from dropclass_lib.vector_io import read_vectors
from model_package import make_package, word

STEP = "steps/adapt_model.py"
# DropAdapt sized for the tiny three-speaker model: one round removing one class, four iterations.
TINY_DROPADAPT = {
    "adapt": {"num_rounds": 1, "num_drop": 1, "its_per_drop": 4, "min_remaining": 2, "train_utts_for_plot": 4},
    "data": {"sampler": "random", "batch_size": 4, "min_frames": 20, "max_frames": 30, "min_utt_frames": 20,
             "num_workers": 0},
    "optim": {"lr": 0.05},
    "train": {"checkpoint_every": 4, "log_every": 2},
}
SCORING = {"backend": "plda", "asnorm_top_n": 2, "a_key_added_later": "kept"}


def write_in_domain_audio(folder: Path, seed: int = 3) -> list[Path]:
    """Words of two new speakers in their folders, and one file directly in ``folder``."""
    rng = np.random.default_rng(seed)
    paths = []
    for spk, f0 in {"dave": 140.0, "erin": 220.0}.items():
        for i in range(3):
            paths.append(folder / spk / f"{i}.wav")
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(paths[-1], word(f0 * (1 + 0.02 * i), rng), 16000)
    paths.append(folder / "loose.wav")
    soundfile.write(paths[-1], word(300.0, rng), 16000)
    return paths


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """``(package, training data dir, in-domain audio folder, DropAdapt config)``: the tiny package
    completed by steps/make_model_package.py, with a scoring.yaml holding a key unknown today."""
    root = tmp_path_factory.mktemp("adapt_model")
    exp, _ = make_package(root / "made")
    train = root / "made" / "work" / "data_no_sil"
    load_script("steps/make_model_package.py").main(["--lda-dim", "2", str(exp), str(train)])
    (exp / "scoring.yaml").write_text(yaml.safe_dump(SCORING, sort_keys=False))
    audio = root / "in_domain"
    write_in_domain_audio(audio)
    config = root / "dropadapt.yaml"
    config.write_text(yaml.safe_dump(TINY_DROPADAPT))
    return exp, train, audio, config


def in_domain_embeddings(out: Path, utts=None) -> np.ndarray:
    keys, x = read_vectors(out / "adapt" / "xvectors_in_domain" / "xvector.scp")
    return x if utts is None else x[[keys.index(u) for u in utts]]


def test_dropadapt_with_both_backend_adaptations_makes_a_complete_package(tmp_path, setup, caplog):
    exp, train, audio, config = setup
    out = tmp_path / "adapted"
    argv = ["--config", str(config), "--backend-adapt", "both", str(exp), str(train), str(audio), str(out)]
    code, err = run_cli(STEP, *argv)
    assert code == 0, err
    package = open_package(out)
    assert package.scoring == SCORING and (out / "frontend.yaml").read_bytes() == (exp / "frontend.yaml").read_bytes()
    # the extractor is DropAdapt's, not the source's
    assert filecmp.cmp(out / "final.pt", out / "adapt" / "dropadapt" / "final.pt", shallow=False)
    assert not filecmp.cmp(out / "final.pt", exp / "final.pt", shallow=False)
    record = yaml.safe_load((out / "adaptation.yaml").read_text())
    assert record["dropadapt"] is True and record["backend_adapt"] == "both" and record["adaptation_utterances"] == 7
    assert record["plda_adapt"] == {"mean_diff_scale": 1.0, "within_covar_scale": 0.3, "between_covar_scale": 0.7}

    # both: the centring mean is the in-domain one, then the PLDA is adapted to the data so centred
    x = in_domain_embeddings(out)
    assert x.shape[0] == 7
    trained = PldaBackend.load(out / "adapt" / "model" / "plda" / "plda.npz")
    speakers, speaker_means, train_mean = package.cohort_arrays()
    source_speakers, source_means, _ = open_package(out / "adapt" / "model").cohort_arrays()
    assert speakers == source_speakers == ["alice", "bob", "carol"]
    np.testing.assert_allclose(speaker_means, source_means)
    np.testing.assert_allclose(train_mean, x.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-7)
    plda = PldaBackend.load(package.plda)
    np.testing.assert_allclose(plda.mean, train_mean)
    np.testing.assert_array_equal(plda.lda, trained.lda)
    expected = adapt_plda(trained.plda, dataclasses.replace(trained, mean=train_mean).preprocess(x))
    np.testing.assert_allclose(plda.plda.transform, expected.transform, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(plda.plda.psi, expected.psi, rtol=1e-6, atol=1e-9)
    assert not np.allclose(plda.plda.psi, trained.plda.psi, rtol=1e-3)
    # the package serves the Python API
    model = dropclass_lib.load_model(out)
    assert model.embed(str(audio / "loose.wav")).shape == (x.shape[1],)

    # the same again does nothing; another setting is an error naming it, unless --overwrite
    made = {p: p.stat().st_mtime_ns for p in (out / "final.pt", out / "plda" / "plda.npz", out / ".made_from.json")}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code, err = run_cli(STEP, *argv)
    assert code == 0 and f"adapted package {out} is up to date" in caplog.text, err
    assert made == {p: p.stat().st_mtime_ns for p in made}
    changed = ["--backend-adapt", "mean", *argv[4:]]
    code, err = run_cli(STEP, "--config", str(config), *changed)
    assert code == 1 and "Traceback" not in err and "settings.backend_adapt ('both' -> 'mean')" in err, err
    assert len(err.strip().splitlines()) == 1, err
    dropadapt_made = (out / "adapt" / "dropadapt" / "final.pt").stat().st_mtime_ns
    code, err = run_cli(STEP, "--overwrite", "--config", str(config), *changed)
    assert code == 0, err
    assert (out / "adapt" / "dropadapt" / "final.pt").stat().st_mtime_ns == dropadapt_made  # DropAdapt kept
    recentred = PldaBackend.load(out / "plda" / "plda.npz")
    np.testing.assert_allclose(recentred.mean, train_mean)
    np.testing.assert_array_equal(recentred.plda.transform, trained.plda.transform)   # no PLDA adaptation
    np.testing.assert_allclose(open_package(out).cohort_arrays()[2], train_mean)
    assert yaml.safe_load((out / "adaptation.yaml").read_text())["plda_adapt"] is None


def test_backend_adaptation_alone_on_a_data_dir_with_an_enrolment_list(tmp_path, setup):
    exp, train, audio, _ = setup
    data = tmp_path / "in_domain"
    files = {"dave-a": audio / "dave" / "0.wav", "dave-b": audio / "dave" / "1.wav",
             "erin-a": audio / "erin" / "0.wav", "erin-b": audio / "erin" / "1.wav"}
    write_table(data / "wav.scp", {u: str(p) for u, p in files.items()})
    write_table(data / "utt2spk", {u: u.split("-")[0] for u in files})
    (data / "enrol.list").write_text("dave-a\nerin-a\nerin-b\n")
    out = tmp_path / "backend_only"
    code, err = run_cli(STEP, "--dropadapt", "false", "--backend-adapt", "plda", str(exp), str(train), str(data), str(out))
    assert code == 0, err
    assert filecmp.cmp(out / "final.pt", exp / "final.pt", shallow=False) and not (out / "adapt" / "dropadapt").exists()
    assert (out / "adapt" / "data_no_sil" / "enrol.list").read_text() == "dave-a\nerin-a\nerin-b\n"
    assert yaml.safe_load((out / "adaptation.yaml").read_text())["adaptation_utterances"] == 3
    # the source model on the same training data: make_model_package's back-ends come out the same
    source = PldaBackend.load(exp / "plda" / "plda.npz")
    remade = PldaBackend.load(out / "adapt" / "model" / "plda" / "plda.npz")
    np.testing.assert_allclose(remade.plda.transform, source.plda.transform, rtol=1e-5, atol=1e-8)
    # plda alone: Kaldi's ivector-adapt-plda on the enrolment utterances, the training mean kept
    x = in_domain_embeddings(out, ["dave-a", "erin-a", "erin-b"])
    adapted = PldaBackend.load(out / "plda" / "plda.npz")
    np.testing.assert_array_equal(adapted.mean, remade.mean)
    expected = adapt_plda(remade.plda, remade.preprocess(x))
    np.testing.assert_allclose(adapted.plda.transform, expected.transform, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(open_package(out).cohort_arrays()[2], open_package(exp).cohort_arrays()[2], rtol=1e-6)


def test_a_wav_scp_takes_the_utt2spk_beside_it_and_a_folder_may_hold_loose_files(tmp_path):
    step = load_script(STEP)
    paths = write_in_domain_audio(tmp_path / "audio")
    corpus = step.read_corpus(tmp_path / "audio", None)
    assert corpus.utt2spk["loose"] == "loose" and corpus.utt2spk["dave-0"] == "dave"
    write_table(tmp_path / "lists" / "wav.scp", {"u1": str(paths[0]), "u2": str(paths[3])})
    assert step.read_corpus(tmp_path / "lists" / "wav.scp", None).utt2spk == {"u1": "u1", "u2": "u2"}
    write_table(tmp_path / "lists" / "utt2spk", {"u1": "s1", "u2": "s2"})
    assert step.read_corpus(tmp_path / "lists" / "wav.scp", None).utt2spk == {"s1-u1": "s1", "s2-u2": "s2"}


def test_bad_inputs_are_one_line_errors(tmp_path, setup):
    exp, train, audio, config = setup
    out = str(tmp_path / "out")

    def error(*argv: str) -> str:
        code, err = run_cli(STEP, *argv)
        assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    assert "nowhere does not exist" in error(str(exp), str(train), str(tmp_path / "nowhere"), out)
    assert "no_train/feats.scp does not exist" in error(str(exp), str(tmp_path / "no_train"), str(audio), out)
    assert "is one audio file" in error(str(exp), str(train), str(audio / "loose.wav"), out)
    assert "adapts nothing" in error("--dropadapt", "false", str(exp), str(train), str(audio), out)
    assert "is the source package" in error(str(exp), str(train), str(audio), str(exp))
    assert "within-covar-scale must be >= 0" in error("--within-covar-scale", "-1", str(exp), str(train), str(audio), out)
    assert "adapt.nonsense" in error("--set", "adapt.nonsense=1", str(exp), str(train), str(audio), out)
    data = tmp_path / "data"
    write_table(data / "wav.scp", {"u1": str(audio / "loose.wav")})
    (data / "enrol.list").write_text("u1\nu9\n")
    code, err = run_cli(STEP, str(exp), str(train), str(data), out)
    assert_line_error(code, err, data / "enrol.list", 2, "u9", "is not in")
    assert not (tmp_path / "out").exists()
