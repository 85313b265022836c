"""steps/score_corpus.py: scoring a new corpus's trials with a trained model, no retraining."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import yaml

from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.features import CONF_DIR, default_config_path
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import save_model
from dropclass_lib.models import build_extractor
from dropclass_lib.package import frontend_record, write_cohort, write_frontend, write_yaml
from dropclass_lib.tables import read_kv

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "steps" / "score_corpus.py"
sys.path.insert(0, str(ROOT / "steps"))
import score_corpus  # noqa: E402

RATE = 16000


def _write_word(path: Path, f0: float, rng: np.random.Generator, seconds: float = 1.2) -> None:
    """A 'word': a harmonic tone with a formant-like envelope between two stretches of near-silence."""
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = (t > 0.3) & (t < 0.9)
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6)) * 0.2 * voiced
    x = x + 0.002 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, x.astype(np.float32), RATE)


@pytest.fixture
def audio_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "audio"
    for spk, f0 in (("alice", 110.0), ("bob", 180.0), ("carol", 260.0)):
        for i in range(3):
            _write_word(root / spk / f"w{i}.flac", f0 * (1 + 0.02 * i), rng)
    return root


def _run(*args, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"score_corpus failed:\n{proc.stderr}")
    return proc


def test_folder_speaker_from_parent_and_path_aliases(audio_folder):
    corpus = score_corpus.load_input(audio_folder, None)
    assert sorted(corpus.wav) == [f"{s}-w{i}" for s in ("alice", "bob", "carol") for i in range(3)]
    assert corpus.utt2spk["bob-w1"] == "bob"
    assert corpus.wav["bob-w1"] == str((audio_folder / "bob" / "w1.flac").resolve())
    for alias in ("bob/w1.flac", "bob/w1", "bob-w1"):
        assert corpus.aliases[alias] == "bob-w1"


def test_folder_speaker_from_filename_regex(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("00000007_NO_01.flac", "00000007_NO_02.flac", "00000009_NO_01.flac"):
        _write_word(tmp_path / "a" / "yes" / name, 150.0, rng, 0.3)
    corpus = score_corpus.load_input(tmp_path / "a", score_corpus.re.compile(r"^(\d+)_NO"))
    assert corpus.utt2spk == {"00000007-yes-00000007_NO_01": "00000007", "00000007-yes-00000007_NO_02": "00000007",
                              "00000009-yes-00000009_NO_01": "00000009"}
    with pytest.raises(UserError, match="does not match the file name"):
        score_corpus.load_input(tmp_path / "a", score_corpus.re.compile(r"^spk(\d+)"))


def test_file_without_speaker_folder_is_an_error(tmp_path):
    _write_word(tmp_path / "flat" / "x.wav", 100.0, np.random.default_rng(2), 0.3)
    with pytest.raises(UserError, match="no parent folder"):
        score_corpus.load_input(tmp_path / "flat", None)


def test_wav_scp_and_data_dir_inputs(tmp_path, audio_folder):
    wav = audio_folder / "alice" / "w0.flac"
    scp = tmp_path / "wav.scp"
    scp.write_text(f"a1 {wav}\nb1 {wav}\n")
    corpus = score_corpus.load_input(scp, None)
    assert corpus.utt2spk == {"a1": "a1", "b1": "b1"}
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"s1-u1 {wav}\ns2-u1 {wav}\n")
    (data / "utt2spk").write_text("s1-u1 s1\ns2-u1 s2\n")
    assert score_corpus.load_input(data, None).utt2spk == {"s1-u1": "s1", "s2-u1": "s2"}
    with pytest.raises(UserError, match="does not exist"):
        score_corpus.load_input(tmp_path / "nowhere", None)


def test_trials_kaldi_and_voxceleb_formats_with_line_errors(tmp_path, audio_folder):
    corpus = score_corpus.load_input(audio_folder, None)
    trials = tmp_path / "trials"
    trials.write_text("alice/w0.flac bob/w1 nontarget\n1 alice/w0.wav alice-w2\n")
    with pytest.raises(InputFileError, match=r"trials:2: utterance 'alice/w0.wav' is not in the input"):
        score_corpus.read_any_trials(trials, corpus.aliases)
    trials.write_text("alice/w0.flac bob/w1 nontarget\n1 alice/w0 alice-w2\n0 carol/w0 bob/w0\n")
    t = score_corpus.read_any_trials(trials, corpus.aliases)
    assert t.enrol.tolist() == ["alice-w0", "alice-w0", "carol-w0"]
    assert t.test.tolist() == ["bob-w1", "alice-w2", "bob-w0"]
    assert t.target.tolist() == [False, True, False]
    trials.write_text("alice/w0 bob/w1 same\n")
    with pytest.raises(InputFileError, match=r"trials:1: expected"):
        score_corpus.read_any_trials(trials, corpus.aliases)


def _tiny_model(model_dir: Path, num_ceps: int) -> None:
    """A small x-vector model written by the training code's model writer, with the frontend.yaml
    a recipe writes into its package (non-default cepstra, so a wrong front end fails)."""
    torch.manual_seed(0)
    ext = build_extractor("tdnn", input_dim=num_ceps, frame_dims=[24, 24, 24, 24, 48], emb_dim=16)
    head = build_head("softmax", 16, 4)
    save_model(model_dir / "final.pt", ext, head, ["s1", "s2", "s3", "s4"], {})
    feats = yaml.safe_load(default_config_path("mfcc").read_text())
    feats.update(num_mel_bins=24, num_ceps=num_ceps, dither=0.0)
    feats_config = model_dir / "feats_config.yaml"
    feats_config.write_text(yaml.safe_dump(feats))
    write_frontend(model_dir, frontend_record(feats_config, CONF_DIR / "vad.yaml", 100))


def _cosines(emb: dict, lines: list, mean: np.ndarray) -> None:
    """Each scored line ``enrol test score`` is the cosine of the embeddings less ``mean``."""
    for e, t, s in lines:
        a, b = emb[e] - mean, emb[t] - mean
        assert float(s) == pytest.approx(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), abs=1e-4)


def _score_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_end_to_end_scores_match_the_model(tmp_path, audio_folder):
    model_dir = tmp_path / "exp"
    _tiny_model(model_dir, num_ceps=20)
    trials = tmp_path / "trials"
    trials.write_text("alice/w0.flac alice/w1.flac target\nalice/w0.flac bob/w1.flac nontarget\n"
                      "bob/w0 bob/w2 target\nbob/w0 carol/w2 nontarget\ncarol/w0 carol/w1 target\ncarol/w0 alice/w2 nontarget\n")
    out = tmp_path / "out"
    # A package of final.pt and frontend.yaml serves cosine_dm (centred on the scored set) and the
    # model-free stats.
    proc = _run("--model", model_dir / "final.pt", "--nj", 1, audio_folder, trials, out)
    assert proc.stdout.startswith("# backend EER%")

    # The data dir holds exactly the utterances of the trials, with their speakers.
    assert read_kv(out / "data" / "utt2spk") == {u: u.split("-")[0] for u in
                                                 ("alice-w0", "alice-w1", "alice-w2", "bob-w0", "bob-w1",
                                                  "bob-w2", "carol-w0", "carol-w1", "carol-w2")}
    assert (out / "data" / "enrol.list").read_text().split() == ["alice-w0", "bob-w0", "carol-w0"]
    recorded = yaml.safe_load((out / "data" / "feats_config.yaml").read_text())
    assert recorded["num_ceps"] == 20 and recorded["num_mel_bins"] == 24

    # The scores are the cosine similarities of the model's embeddings of the CMN'd voiced frames,
    # less their mean.
    from dropclass_lib.model_io import load_model

    model = load_model(model_dir / "final.pt")
    feats = kaldiio.load_scp(str(out / "data_no_sil" / "feats.scp"))
    with torch.no_grad():
        emb = {u: model.extractor(torch.from_numpy(np.array(feats[u]))[None])[0].numpy().astype(np.float64)
               for u in feats}
    domain_mean = np.mean([emb[u] for u in sorted(emb)], axis=0)
    lines = _score_lines(out / "scores_out_cosine_dm" / "scores")
    assert len(lines) == 6
    _cosines(emb, lines, domain_mean)
    results = [line.split() for line in (out / "results.txt").read_text().splitlines()[1:]]
    assert [r[0] for r in results] == ["cosine_dm", "stats"] and len(results[0]) == 4  # no default back-end named
    assert 0.0 <= float(results[0][1]) <= 100.0

    # The package completed with a cohort, a PLDA and a default back-end: the second run, given the
    # package directory, reuses the features, embeddings and cosine_dm scores and adds every
    # back-end, the default first.
    xv = out / "xvectors" / "xvector.scp"
    subprocess.run([sys.executable, str(ROOT / "steps" / "train_plda.py"), "--lda-dim", "2", xv,
                    out / "data_no_sil" / "utt2spk", model_dir / "plda"], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    train_mean = domain_mean + 0.5
    write_cohort(model_dir, ["s1", "s2"], np.stack([emb["alice-w0"], emb["bob-w0"]]), train_mean)
    write_yaml(model_dir / "scoring.yaml", {"backend": "plda", "asnorm_top_n": 1})
    kept = {p: p.stat().st_mtime_ns for p in (xv, out / "data_no_sil" / "feats.scp", out / "data" / "feats.scp",
                                              out / "scores_out_cosine_dm" / "scores")}
    _run("--model", model_dir, "--nj", 1, audio_folder, trials, out)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    results = [line.split() for line in (out / "results.txt").read_text().splitlines()[1:]]
    assert [r[0] for r in results] == ["plda", "cosine", "cosine_dm", "cosine_dm_asnorm", "plda_dm", "stats"]
    assert results[0][-1] == "default" and all(len(r) == 4 for r in results[1:])
    assert len(_score_lines(out / "scores_out_plda" / "scores")) == 6
    _cosines(emb, _score_lines(out / "scores_out_cosine" / "scores"), train_mean)

    # --backends chooses; --set-name names the score dirs.
    proc = _run("--model", model_dir, "--backends", "cosine,plda_dm", "--set-name", "new", "--nj", 1,
                audio_folder, trials, out)
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:]] == ["cosine", "plda_dm"]
    assert (out / "scores_new_plda_dm" / "metrics.json").is_file()
    assert xv.stat().st_mtime_ns == kept[xv]


def test_cli_errors_are_one_line(tmp_path, audio_folder):
    model_dir = tmp_path / "exp"
    trials = tmp_path / "trials"
    trials.write_text("alice/w0 bob/w1 nontarget\n")
    proc = _run("--model", model_dir / "final.pt", audio_folder, trials, tmp_path / "out", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "does not exist" in proc.stderr
    model_dir.mkdir()
    save_model(model_dir / "final.pt", build_extractor("tdnn", input_dim=20, frame_dims=[8] * 5, emb_dim=4),
               build_head("softmax", 4, 2), ["a", "b"], {})
    proc = _run("--model", model_dir / "final.pt", audio_folder, trials, tmp_path / "out", check=False)
    assert proc.returncode == 1 and "is not a complete model package: frontend.yaml" in proc.stderr
    write_frontend(model_dir, frontend_record(default_config_path("mfcc"), CONF_DIR / "vad.yaml", 300))
    proc = _run("--model", model_dir, "--backends", "plda", audio_folder, trials, tmp_path / "out", check=False)
    assert proc.returncode == 1 and "serves none of the back-ends plda" in proc.stderr
    proc = _run("--model", model_dir, "--backends", "cosine,bogus", audio_folder, trials, tmp_path / "out", check=False)
    assert proc.returncode == 1 and "unknown back-end(s) bogus" in proc.stderr
    trials.write_text("alice/w0 dave/w1 nontarget\n")
    proc = _run("--model", model_dir, audio_folder, trials, tmp_path / "out", check=False)
    assert proc.returncode == 1 and "trials:1: utterance 'dave/w1' is not in the input" in proc.stderr
    assert proc.stderr.count("\n") == 1
