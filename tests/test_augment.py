"""Kaldi-v2 augmentation: per-utterance draws, SNR/reverb arithmetic, the wav.scp pipe end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import replicas
from dropclass_lib.audio import read_audio
from dropclass_lib.augment import (AugmentConfig, AugmentSetup, Sources, add_signal, draw_plan, load_setup,
                                   make_augmented_dir, power, reverberate)
from dropclass_lib.config import load_config
from dropclass_lib.corpora.musan_rir import prepare_musan, prepare_rirs
from dropclass_lib.corpora.voxceleb import prepare_voxceleb2
from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import InputFileError, UserError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs" / "voxceleb" / "conf" / "augment.yaml"


@pytest.fixture
def sources(tmp_path) -> AugmentSetup:
    """A setup over replica MUSAN and RIR data directories."""
    musan = replicas.make_musan(tmp_path / "musan")
    rirs = replicas.make_rirs(tmp_path / "rirs" / "RIRS_NOISES")
    data = tmp_path / "data"
    for category in ("noise", "music", "speech"):
        prepare_musan(musan, category).write(data / f"musan_{category}")
    for room_set in ("smallroom", "mediumroom"):
        prepare_rirs(rirs, room_set).write(data / f"rirs_{room_set}")
    return AugmentSetup(config=load_config(CONF, AugmentConfig), noise_dir=str(data / "musan_noise"),
                        music_dir=str(data / "musan_music"), speech_dir=str(data / "musan_speech"),
                        rir_dirs=[str(data / "rirs_smallroom"), str(data / "rirs_mediumroom")])


def test_conf_matches_kaldi_v2():
    cfg = load_config(CONF, AugmentConfig)
    assert cfg == AugmentConfig()
    assert (cfg.noise_snrs, cfg.music_snrs, cfg.babble_snrs) == ([15, 10, 5, 0], [15, 10, 8, 5], [20, 17, 15, 13])
    assert cfg.babble_speakers == [3, 4, 5, 6, 7] and cfg.noise_interval == 1.0 and cfg.num_aug_utts == 1000000


def test_config_errors(tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("seed: 1\nnoise_snr: [1]\n")
    with pytest.raises(InputFileError, match=r"a.yaml:2: unknown config key 'noise_snr'"):
        load_config(bad, AugmentConfig)
    bad.write_text("kinds: [reverb, echo]\n")
    with pytest.raises(UserError, match="kinds must be"):
        load_config(bad, AugmentConfig)


def test_draws_are_per_utterance_and_deterministic(sources):
    src = Sources(sources)
    utts = [f"spk-vid-{i:05d}" for i in range(24)]
    rirs = [draw_plan("reverb", f"{u}-reverb", 16000, src).rir for u in utts]
    assert rirs == [draw_plan("reverb", f"{u}-reverb", 16000, Sources(sources)).rir for u in utts]
    assert len(set(rirs)) >= 5  # one impulse response per utterance, not one for the whole set
    assert {Path(r).parts[-3] for r in rirs} == {"smallroom", "mediumroom"}
    babble = [draw_plan("babble", f"{u}-babble", 16000, src) for u in utts]
    for plan in babble:
        assert 3 <= len(plan.additions) <= 7
        assert len({a.path for a in plan.additions}) == len(plan.additions)  # distinct speakers
        assert all(a.snr in (20, 17, 15, 13) and a.repeat and a.offset == 0 for a in plan.additions)
    assert len({len(p.additions) for p in babble}) > 1
    music = [draw_plan("music", f"{u}-music", 16000, src).additions for u in utts]
    assert all(len(m) == 1 and m[0].snr in (15, 10, 8, 5) and m[0].repeat for m in music)
    other_seed = AugmentSetup(**{**sources.__dict__, "config": AugmentConfig(seed=1)})
    assert [draw_plan("reverb", f"{u}-reverb", 16000, Sources(other_seed)).rir for u in utts] != rirs


def test_foreground_noises_follow_each_other_with_the_interval(sources):
    src = Sources(sources)
    _, wav, dur = src.get(sources.noise_dir, need_dur=True)
    path2dur = {wav[u]: dur[u] for u in wav}
    n = 5 * 16000
    plan = draw_plan("noise", "u-noise", n, src)
    starts = [a.offset for a in plan.additions]
    assert starts[0] == 0 and starts[-1] < n
    for a, b in zip(plan.additions, plan.additions[1:]):
        assert b.offset - a.offset == pytest.approx((path2dur[a.path] + 1.0) * 16000, abs=1)
    last = plan.additions[-1]
    assert last.offset + (path2dur[last.path] + 1.0) * 16000 >= n - 1
    assert all(not a.repeat and a.snr in (15, 10, 5, 0) for a in plan.additions)


def test_add_signal_snr_and_placement():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000)
    noise = rng.standard_normal(2000) * 3
    y = x.copy()
    add_signal(y, noise, 10.0, 0, True, power(x))  # tiled exactly 4 times
    assert 10 * np.log10(power(x) / power(y - x)) == pytest.approx(10.0, abs=1e-9)
    y = x.copy()
    add_signal(y, noise, 5.0, 7000, False, power(x))  # foreground, cut at the end
    d = y - x
    assert np.all(d[:7000] == 0) and np.allclose(d[7000:], noise[:1000] * np.sqrt(10 ** -0.5 * power(x) / power(noise)))


def test_reverberate_aligns_to_direct_path_and_keeps_power():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4000).astype(np.float32)
    delta = np.zeros(300, np.float32)
    delta[37] = 0.5
    assert np.allclose(reverberate(x, delta), x, atol=1e-5)
    rir = np.zeros(300, np.float32)
    rir[[20, 120, 250]] = [1.0, 0.4, -0.2]
    expected = np.convolve(x, rir)[20:20 + len(x)]
    expected *= np.sqrt(power(x) / power(expected))
    y = reverberate(x, rir)
    assert len(y) == len(x) and np.allclose(y, expected, atol=1e-4)


@pytest.mark.slow
def test_augmented_dir_and_pipe(tmp_path, sources, monkeypatch):
    vox2 = replicas.make_voxceleb2(tmp_path / "vox2")
    clean = prepare_voxceleb2(vox2)
    clean.vad = {u: f"/vad.ark:{i}" for i, u in enumerate(clean.utts())}
    sources.config.num_aug_utts = 10
    aug = make_augmented_dir(clean, sources, tmp_path / "train_aug")
    assert len(aug) == 10 and aug.utts() == make_augmented_dir(clean, sources, tmp_path / "again").utts()
    for utt in aug.utts():
        base, kind = utt.rsplit("-", 1)
        assert kind in ("reverb", "noise", "music", "babble")
        assert aug.utt2spk[utt] == clean.utt2spk[base] and aug.vad[utt] == clean.vad[base]
        assert f"--kind {kind} --utt {utt} " in aug.wav[utt] and aug.wav[utt].endswith(" |")
    assert load_setup(tmp_path / "train_aug" / "augment.yaml") == sources
    sources.config.num_aug_utts = 1000
    assert len(make_augmented_dir(clean, sources, tmp_path / "all")) == 4 * len(clean)

    monkeypatch.setenv("PATH", replicas.path_with(tmp_path / "bin"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    replicas.fake_ffmpeg(tmp_path / "bin")
    full = make_augmented_dir(clean, sources, tmp_path / "all")
    base = "id00016-21Uxsk56VDQ-00002"
    x, _ = read_audio(clean.wav[base], base)
    outputs = {}
    for kind in ("reverb", "noise", "music", "babble"):
        utt = f"{base}-{kind}"
        y, rate = read_audio(full.wav[utt], utt)
        assert rate == 16000 and len(y) == len(x) and not np.allclose(y, x, atol=1e-3)
        outputs[kind] = y
    again, _ = read_audio(full.wav[f"{base}-babble"], f"{base}-babble")
    assert np.array_equal(outputs["babble"], again)
    plan = draw_plan("music", f"{base}-music", len(x), Sources(sources))
    snr = 10 * np.log10(power(x) / power(outputs["music"] - x))
    assert snr == pytest.approx(plan.additions[0].snr, abs=0.3)  # 16-bit rounding and a partial last tile
    assert power(outputs["reverb"]) == pytest.approx(power(x), rel=0.02)


def test_pipe_errors_are_one_line(tmp_path, sources):
    setup_dir = tmp_path / "aug"
    clean = DataDir(utt2spk={"u": "s"}, wav={"u": str(tmp_path / "missing.wav")})
    aug = make_augmented_dir(clean, sources, setup_dir)
    cmd = aug.wav["u-noise"][:-1]
    proc = subprocess.run(cmd.replace("python3", sys.executable, 1), shell=True, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ERROR (") and "missing.wav" in proc.stderr
    with pytest.raises(UserError, match="rirs_nowhere/wav.scp does not exist"):
        make_augmented_dir(clean, AugmentSetup(**{**sources.__dict__, "rir_dirs": [str(tmp_path / "rirs_nowhere")] * 2}),
                           tmp_path / "x")
