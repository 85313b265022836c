"""bench/score_pretrained_peer.py: reading, trial scoring, outputs and the results-table row,
with a deterministic stand-in encoder given through the script's encoder argument; and the real
Resemblyzer on a few utterances of the shared speechocean762 copy when both are available."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import ROOT, load_script, run_tool
from dropclass_lib.backends.trial_scoring import OUTPUT_FILES, write_scoring_outputs
from dropclass_lib.cli import run_main
from dropclass_lib.errors import UserError
from dropclass_lib.metrics import compute_metrics
from dropclass_lib.tables import write_table
from dropclass_lib.trials import read_trials

peer = load_script("bench/score_pretrained_peer.py")

SHARED_SO = ROOT.parent / "shared" / "data" / "speechocean762"
SPEAKER_HZ = {"spkA": 220.0, "spkB": 330.0, "spkC": 500.0}
NUM_BANDS = 16


def band_energy_encoder(calls: list | None = None):
    """A stand-in encoder: log energy of the spectrum in NUM_BANDS bands up to 1 kHz (tones of
    different speakers fall into different bands). Records ``(length, rate)`` of each call."""
    def embed(samples: np.ndarray, rate: int) -> np.ndarray:
        if calls is not None:
            calls.append((samples.size, rate))
        spectrum = np.abs(np.fft.rfft(samples)) ** 2
        freqs = np.fft.rfftfreq(samples.size, 1 / rate)
        edges = np.linspace(0, 1000, NUM_BANDS + 1)
        return np.log([spectrum[(freqs >= lo) & (freqs < hi)].sum() + 1e-6 for lo, hi in zip(edges, edges[1:])])
    return embed


def make_tone_data(tmp_path: Path, rates: dict[str, int] | None = None) -> Path:
    """3 speakers x 3 utterances (a tone at the speaker's pitch with jitter and noise) plus one
    utterance no trial uses; trials: every pair of distinct trial utterances."""
    rng = np.random.default_rng(7)
    data, wav = tmp_path / "data" / "eval", {}
    utts = []
    for spk, hz in SPEAKER_HZ.items():
        for j in range(3):
            utt = f"{spk}-u{j}"
            rate = (rates or {}).get(utt, 16000)
            t = np.arange(int(rate * (0.5 + 0.1 * j))) / rate
            x = 0.3 * np.sin(2 * np.pi * hz * (1 + 0.01 * rng.standard_normal()) * t) + 0.01 * rng.standard_normal(t.size)
            path = tmp_path / "wav" / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, x.astype(np.float32), rate, subtype="PCM_16")
            wav[utt] = str(path)
            utts.append(utt)
    unused = tmp_path / "wav" / "unused.wav"
    soundfile.write(unused, np.zeros(800, np.float32), 16000)
    wav["spkZ-unused"] = str(unused)
    write_table(data / "wav.scp", wav)
    lines = [f"{e} {t} {'target' if e.split('-')[0] == t.split('-')[0] else 'nontarget'}"
             for i, e in enumerate(utts) for t in utts[i + 1:]]
    (data / "trials").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_peer_scores_the_trials_with_the_encoder_and_writes_a_scoring_dir(tmp_path):
    data = make_tone_data(tmp_path, rates={"spkB-u1": 8000})
    out = tmp_path / "exp" / "standin" / "scores_eval"
    calls: list = []
    encoder = band_energy_encoder(calls)
    metrics = peer.score_with_peer(data, out, "standin", encoder)

    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    trials = read_trials(data / "trials")
    # only the trial utterances, each once, at the rate of its own file
    assert len(calls) == 9 and (int(0.6 * 8000), 8000) in calls
    # the scores are the cosines of the encoder's embeddings of the audio files, in trial order
    wav = dict(line.split() for line in (data / "wav.scp").read_text().splitlines())
    emb = {u: encoder(*soundfile.read(wav[u], dtype="float32")) for u in trials.utts()}
    expected = np.array([cosine(emb[e], emb[t]) for e, t in zip(trials.enrol, trials.test)])
    rows = [line.split() for line in (out / "scores").read_text().splitlines()]
    assert [(e, t) for e, t, _ in rows] == list(zip(trials.enrol, trials.test))
    np.testing.assert_allclose([float(s) for _, _, s in rows], expected, atol=2e-6)
    assert expected[trials.target].min() > expected[~trials.target].max()  # the stand-in separates the tones

    written = json.loads((out / "metrics.json").read_text())
    assert written == metrics
    assert written["peer"] == "standin" and written["backend"] == "cosine" and written["trial_set"] == "eval"
    assert "floor" not in written
    assert written["eer"] == pytest.approx(compute_metrics(expected, trials.target)["eer"], abs=1e-6)
    assert written["num_utts"] == 9 and written["embedding_dim"] == NUM_BANDS
    durations = sum(soundfile.info(wav[u]).frames / soundfile.info(wav[u]).samplerate for u in trials.utts())
    assert written["audio_seconds"] == pytest.approx(durations, abs=1e-3)
    assert written["x_real_time"] > 0 and written["embed_seconds"] >= 0


def test_peer_row_in_the_results_table(tmp_path):
    data = make_tone_data(tmp_path)
    exp = tmp_path / "exp"
    trials = read_trials(data / "trials")
    rng = np.random.default_rng(0)
    for system, extra in (("baseline", {}), ("mfcc_floor", {"floor": True})):
        scores = rng.standard_normal(len(trials)) + trials.target * (2.0 if system == "baseline" else 0.5)
        write_scoring_outputs(exp / system / "scores_eval", trials, scores,
                              {"backend": "cosine", "trial_set": "eval", **extra})
    metrics = peer.score_with_peer(data, exp / "resemblyzer" / "scores_eval", "resemblyzer", band_energy_encoder())

    res = run_tool(sys.executable, str(ROOT / "steps" / "make_results_table.py"), str(exp))
    assert res.returncode == 0, res.stderr
    header, *rows = [line.strip("| ").split(" | ") for line in (exp / "RESULTS.md").read_text().splitlines()
                     if line.startswith("| ")]
    assert [r[0] for r in rows] == ["baseline", "resemblyzer (pretrained peer)", "mfcc_floor (floor)"]
    cells = dict(zip(header, rows[1]))
    # its EER, and no change against the baseline
    assert cells["cosine EER (%)"] == f"{metrics['eer']:.2f}" and cells["cosine ΔEER (%)"] == "–"
    table = json.loads((exp / "RESULTS.json").read_text())["sets"]["eval"]["rows"]
    by_name = {r["system"]: r for r in table}
    assert by_name["resemblyzer"]["peer"] == "resemblyzer" and by_name["baseline"]["peer"] is None
    assert by_name["resemblyzer"]["backends"]["cosine"]["rel_eer_change"] is None


def test_cli_prints_time_and_real_time_factor(tmp_path, monkeypatch, capsys):
    data = make_tone_data(tmp_path)
    monkeypatch.setitem(peer.PEERS, "standin", lambda device: band_energy_encoder())
    out = tmp_path / "scores"
    with pytest.raises(SystemExit) as exit_info:
        run_main(peer.main, ["--peer", "standin", str(data), str(out)])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"standin on eval: EER {metrics['eer']:.2f}" in printed
    assert f"({metrics['x_real_time']:.1f} x real time)" in printed and "elapsed in all" in printed


def test_trial_utterance_without_audio_is_an_error_before_embedding(tmp_path):
    data = make_tone_data(tmp_path)
    with open(data / "trials", "a", encoding="utf-8") as f:
        f.write("spkA-u0 ghost nontarget\n")
    lineno = len((data / "trials").read_text().splitlines())
    calls: list = []
    with pytest.raises(UserError, match=rf"{data / 'trials'}:{lineno}: test utterance 'ghost' is not in "):
        peer.score_with_peer(data, tmp_path / "scores", "standin", band_energy_encoder(calls))
    assert calls == []


def test_encoder_failures_name_the_utterance(tmp_path):
    data = make_tone_data(tmp_path)

    def no_speech(samples, rate):
        raise peer.NoSpeechError("nothing left after trimming")
    with pytest.raises(UserError, match=r"utterance 'spkA-u0' \(.*spkA-u0\.wav\): nothing left after trimming"):
        peer.score_with_peer(data, tmp_path / "s1", "standin", no_speech)

    sizes = iter(range(3, 100))
    with pytest.raises(UserError, match=r"utterance 'spkA-u1' .*shape \(4,\), the others have \(3,\)"):
        peer.score_with_peer(data, tmp_path / "s2", "standin", lambda s, r: np.ones(next(sizes)))
    with pytest.raises(UserError, match=r"utterance 'spkA-u0' .*non-finite"):
        peer.score_with_peer(data, tmp_path / "s3", "standin", lambda s, r: np.full(3, np.nan))
    assert not (tmp_path / "s1" / "scores").exists()


def test_missing_resemblyzer_says_what_to_install(tmp_path, monkeypatch, capsys):
    data = make_tone_data(tmp_path)
    monkeypatch.setitem(sys.modules, "resemblyzer", None)   # import resemblyzer now fails
    with pytest.raises(SystemExit) as exit_info:
        run_main(peer.main, [str(data), str(tmp_path / "scores")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err and len(err.splitlines()) == 1
    assert "pip install resemblyzer 'setuptools<81'" in err and sys.prefix in err

    # a resemblyzer whose import needs pkg_resources, in an environment without it
    fake = tmp_path / "fake_site" / "resemblyzer"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import pkg_resources\n")
    monkeypatch.syspath_prepend(str(fake.parent))
    monkeypatch.delitem(sys.modules, "resemblyzer")
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    with pytest.raises(SystemExit) as exit_info:
        run_main(peer.main, [str(data), str(tmp_path / "scores")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "pip install 'setuptools<81'" in err and len(err.splitlines()) == 1


def test_real_resemblyzer_on_shared_speechocean762(tmp_path):
    pytest.importorskip("resemblyzer", reason="resemblyzer is not installed (pip install resemblyzer "
                                              "'setuptools<81'); CI runs without it")
    if not (SHARED_SO / "WAVE").is_dir():
        pytest.skip(f"shared speechocean762 copy not found at {SHARED_SO} (absent in a fresh clone)")
    speakers = sorted((SHARED_SO / "WAVE").glob("SPEAKER*"))[:4]
    wav = {}
    for spk in speakers:
        files = sorted(f for f in spk.iterdir() if f.suffix.lower() in (".wav", ".flac", ".opus"))[:3]
        for f in files:
            wav[f"{spk.name}-{f.stem}"] = str(f)
    utts = sorted(wav)
    if len(speakers) < 2 or len(utts) < 8:
        pytest.skip(f"too few recordings under {SHARED_SO / 'WAVE'}")
    data = tmp_path / "so"
    write_table(data / "wav.scp", wav)
    (data / "trials").write_text("".join(
        f"{e} {t} {'target' if e.split('-')[0] == t.split('-')[0] else 'nontarget'}\n"
        for i, e in enumerate(utts) for t in utts[i + 1:]), encoding="utf-8")
    metrics = peer.score_with_peer(data, tmp_path / "scores", "resemblyzer", peer.load_resemblyzer("cpu"))
    assert metrics["peer"] == "resemblyzer" and metrics["num_utts"] == len(utts)
    trials = read_trials(data / "trials")
    scores = np.array([float(line.split()[2]) for line in (tmp_path / "scores" / "scores").read_text().splitlines()])
    # a speaker encoder trained on thousands of speakers: same-speaker pairs score higher on average
    assert scores[trials.target].mean() > scores[~trials.target].mean()


def test_rendered_copies_are_embedded_as_the_feature_step_renders_them(tmp_path):
    """A cross-channel set: the test side of each trial is an utt2aug copy with no audio file."""
    from dropclass_lib.augment import Renderer
    from dropclass_lib.datadir.utt2aug import parse_aug

    data = make_tone_data(tmp_path)
    utts = sorted(line.split()[0] for line in (data / "wav.scp").read_text().splitlines())
    write_table(data / "utt2spk", {u: u.split("-")[0] for u in utts})
    write_table(data / "spk2utt", {s: [u for u in utts if u.startswith(s)] for s in sorted({u.split("-")[0] for u in utts})})
    augment = load_script("steps/augment_data_dir.py")
    assert augment.main(["--config", str(ROOT / "egs" / "realspeech" / "conf" / "cross_channel.yaml"),
                         str(data), str(tmp_path / "aug")]) == 0
    xch = tmp_path / "data" / "xch"
    assert load_script("steps/make_cross_channel_set.py").main([str(data), str(tmp_path / "aug"), str(xch)]) == 0
    calls: list = []
    encoder = band_energy_encoder(calls)
    peer.score_with_peer(xch, tmp_path / "out", "standin", encoder)
    trials = read_trials(xch / "trials")
    wav = dict(line.split() for line in (data / "wav.scp").read_text().splitlines())
    aug = dict(line.split(None, 1) for line in (xch / "utt2aug").read_text().splitlines())
    emb = {u: encoder(*soundfile.read(wav[u], dtype="float32")) for u in set(trials.enrol)}
    emb.update({u: encoder(Renderer().audio(parse_aug(aug[u]), u), 16000) for u in set(trials.test)})
    expected = [cosine(emb[e], emb[t]) for e, t in zip(trials.enrol, trials.test)]
    got = [float(line.split()[2]) for line in (tmp_path / "out" / "scores").read_text().splitlines()]
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert all(t.endswith("-sim_channel") for t in trials.test)
