"""Augmentation: per-utterance draws, the signal arithmetic of every kind, speed perturbation, the
utt2aug table and its validation, rendering inside make_features (lists read once per job)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile

import replicas
from dropclass_lib import augment
from dropclass_lib.audio import read_audio
from dropclass_lib.augment import (AugmentConfig, AugmentSetup, Renderer, Sources, draw_plan, load_setup,
                                   make_augmented_dir, perturb_speed)
from dropclass_lib.augment_signal import add_signal, change_speed, power, reverberate
from dropclass_lib.config import load_config
from dropclass_lib.corpora.musan_rir import prepare_musan, prepare_rirs
from dropclass_lib.corpora.voxceleb import prepare_voxceleb2
from dropclass_lib.datadir import DataDir, combine, validate_data_dir
from dropclass_lib.datadir.utt2aug import parse_aug
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.features import MfccFeatConfig, default_config_path, make_features
from dropclass_lib.parallel import Dispatch
from dropclass_lib.tables import write_table

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs" / "voxceleb" / "conf" / "augment.yaml"
DEFAULT_CONF = ROOT / "conf" / "augment.yaml"
RATE = 16000


def write_clean_dir(root: Path, speakers: int = 5, per_spk: int = 3, seconds: float = 1.0) -> Path:
    """A clean data dir of speech-like utterances ``sNN-uM`` (wav.scp, utt2spk, utt2dur, vad.scp)."""
    d = root / "clean"
    utt2spk, wav, dur, vad = {}, {}, {}, {}
    for s in range(speakers):
        for u in range(per_spk):
            utt = f"s{s:02d}-u{u}"
            x = replicas.speechlike(seconds + 0.1 * u, 100 * s + u)
            wav[utt] = str(replicas.write_wav(root / "wav" / f"{utt}.wav", x))
            utt2spk[utt], dur[utt], vad[utt] = f"s{s:02d}", len(x) / RATE, f"/vad.ark:{len(vad)}"
    d.mkdir(parents=True)
    for name, table in (("utt2spk", utt2spk), ("wav.scp", wav), ("utt2dur", dur), ("vad.scp", vad)):
        write_table(d / name, table)
    DataDir.load(d).write(d)  # spk2utt
    return d


def self_setup(**config) -> AugmentSetup:
    base = load_config(DEFAULT_CONF, AugmentConfig)
    return AugmentSetup(config=dataclasses.replace(base, **config))


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


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(power(clean) / power(noisy.astype(np.float64) - clean))


def test_conf_matches_kaldi_v2():
    cfg = load_config(CONF, AugmentConfig)
    assert cfg == AugmentConfig()
    assert (cfg.noise_snrs, cfg.music_snrs, cfg.babble_snrs) == ([15, 10, 5, 0], [15, 10, 8, 5], [20, 17, 15, 13])
    assert cfg.babble_speakers == [3, 4, 5, 6, 7] and cfg.noise_interval == 1.0 and cfg.num_aug_utts == 1000000


def test_default_conf_needs_no_download_and_documents_every_key():
    cfg = load_config(DEFAULT_CONF, AugmentConfig)
    assert set(cfg.kinds) == {"sim_reverb", "self_noise", "self_babble"}
    paragraphs = DEFAULT_CONF.read_text().split("\n\n")
    for f in dataclasses.fields(AugmentConfig):  # each key set in a paragraph that comments on it
        (block,) = [p for p in paragraphs if f"\n{f.name}:" in f"\n{p}"]
        assert any(line.startswith("#") for line in block.splitlines()), f.name


@pytest.mark.parametrize("text, match", [
    ("seed: 1\nnoise_snr: [1]\n", r"a.yaml:2: unknown config key 'noise_snr'"),
    ("kinds: [reverb, echo]\n", r"a.yaml: kinds must be"),
    ("sim_rt60: [0.9, 0.2]\n", r"a.yaml: sim_rt60 must be \[low, high\]"),
    ("self_noise_tilt: [-1, 1]\n", r"a.yaml: self_noise_tilt must be"),
    ("self_babble_speakers: [0, 2]\n", r"a.yaml: self_babble_speakers must be >= 1"),
    ("self_noise_snrs: []\n", r"a.yaml: self_noise_snrs must not be empty"),
    ("speed_factor: 0\n", r"a.yaml: speed_factor must be within"),
    ("sim_direct_ratio_db: 3\n", r"a.yaml:1: sim_direct_ratio_db: expected a list"),
    ("sim_channel_high_cut_hz: [3000, 9000]\n", r"a.yaml: sim_channel_high_cut_hz must stay below 8000"),
    ("sim_channel_high_cut_hz: [200, 3000]\n", r"a.yaml: sim_channel_high_cut_hz must be \[low, high\]"),
])
def test_config_errors_name_the_file_and_key(tmp_path, text, match):
    bad = tmp_path / "a.yaml"
    bad.write_text(text)
    with pytest.raises(UserError, match=match):
        load_config(bad, AugmentConfig)


def test_draws_are_per_utterance_and_deterministic(sources):
    src = Sources(sources)
    utts = [f"spk-vid-{i:05d}" for i in range(24)]
    rirs = [draw_plan("reverb", u, 16000, src).rir for u in utts]
    assert rirs == [draw_plan("reverb", u, 16000, Sources(sources)).rir for u in utts]
    assert len(set(rirs)) >= 5  # one impulse response per utterance, not one for the whole set
    assert {Path(r).parts[-3] for r in rirs} == {"smallroom", "mediumroom"}
    babble = [draw_plan("babble", u, 16000, src) for u in utts]
    for plan in babble:
        assert 3 <= len(plan.additions) <= 7
        assert len({a.source for a in plan.additions}) == len(plan.additions)  # distinct speakers
        assert all(a.snr in (20, 17, 15, 13) and a.repeat and a.offset == 0 for a in plan.additions)
    assert len({len(p.additions) for p in babble}) > 1
    music = [draw_plan("music", u, 16000, src).additions for u in utts]
    assert all(len(m) == 1 and m[0].snr in (15, 10, 8, 5) and m[0].repeat for m in music)
    other_seed = AugmentSetup(**{**sources.__dict__, "config": AugmentConfig(seed=1)})
    assert [draw_plan("reverb", u, 16000, Sources(other_seed)).rir for u in utts] != rirs


def test_foreground_noises_follow_each_other_with_the_interval(sources):
    src = Sources(sources)
    pool = src.pool(sources.noise_dir, need_dur=True)
    path2dur = {pool.entries[u]: pool.dur[u] for u in pool.ids}
    n = 5 * 16000
    plan = draw_plan("noise", "u", n, src)
    starts = [a.offset for a in plan.additions]
    assert starts[0] == 0 and starts[-1] < n
    for a, b in zip(plan.additions, plan.additions[1:]):
        assert b.offset - a.offset == pytest.approx((path2dur[a.source] + 1.0) * 16000, abs=1)
    last = plan.additions[-1]
    assert last.offset + (path2dur[last.source] + 1.0) * 16000 >= n - 1
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


def test_sim_reverb_draws_rooms_within_the_ranges(tmp_path):
    setup = self_setup(sim_rt60=[0.3, 0.5], sim_direct_ratio_db=[0.0, 6.0])
    src = Sources(setup)
    x = replicas.speechlike(2.0, 3)
    lengths, outputs = set(), []
    for i in range(12):
        rir = draw_plan("sim_reverb", f"u{i}", len(x), src).rir
        assert np.array_equal(rir, draw_plan("sim_reverb", f"u{i}", len(x), Sources(setup)).rir)
        assert 0.3 * RATE <= len(rir) <= 0.5 * RATE  # the response lasts rt60
        ratio = 10 * np.log10(rir[0] ** 2 / np.sum(rir[1:] ** 2))
        assert 0.0 - 1e-6 <= ratio <= 6.0 + 1e-6
        lengths.add(len(rir))
        y = Renderer().render(x, draw_plan("sim_reverb", f"u{i}", len(x), src))
        assert len(y) == len(x) and power(y) == pytest.approx(power(x), rel=1e-4)
        assert not np.allclose(y, x, atol=1e-3)
        outputs.append(y)
    assert len(lengths) > 6


def test_sim_channel_is_another_microphone():
    """A band-limited, equalised copy at the input's power and length, drawn per utterance; the
    energy above the low-pass corner is gone."""
    setup = self_setup(sim_channel_high_cut_hz=[3000.0, 3500.0], sim_channel_eq_bands=2)
    x = np.random.default_rng(5).standard_normal(2 * RATE).astype(np.float32)
    responses = []
    for i in range(6):
        plan = draw_plan("sim_channel", f"u{i}", len(x), Sources(setup))
        again = draw_plan("sim_channel", f"u{i}", len(x), Sources(setup))
        assert np.array_equal(plan.response.band_pass, again.response.band_pass) and len(plan.response.eq) == 2
        y = Renderer().render(x, plan)
        assert y.dtype == np.float32 and len(y) == len(x) and power(y) == pytest.approx(power(x), rel=1e-4)
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / RATE)
        assert spectrum[freqs > 5000].sum() < 1e-3 * spectrum.sum()
        responses.append(plan.response.band_pass)
    assert not np.array_equal(responses[0], responses[1])


def test_self_noise_snr_and_length():
    setup = self_setup(self_noise_snrs=[7.0, 3.0], self_noise_tilt=[0.5, 1.5])
    x = replicas.speechlike(1.5, 4)
    snrs = set()
    for i in range(8):
        plan = draw_plan("self_noise", f"u{i}", len(x), Sources(setup))
        y = Renderer().render(x, plan)
        assert len(y) == len(x)
        assert snr_db(x, y) == pytest.approx(plan.additions[0].snr, abs=0.01)
        snrs.add(plan.additions[0].snr)
    assert snrs == {7.0, 3.0}


def test_self_babble_uses_other_speakers_of_the_clean_dir(tmp_path):
    clean = write_clean_dir(tmp_path)
    setup = self_setup(self_babble_speakers=[2, 3, 4], self_babble_snrs=[10.0])
    setup.clean_dir = str(clean)
    src = Sources(setup)
    dd = DataDir.load(clean)
    path2spk = {dd.wav[u]: dd.utt2spk[u] for u in dd.utts()}
    counts = set()
    for utt in dd.utts():
        plan = draw_plan("self_babble", utt, 16000, src)
        spks = [path2spk[a.source] for a in plan.additions]
        assert dd.utt2spk[utt] not in spks  # never the utterance's own speaker
        assert len(set(spks)) == len(spks) and 2 <= len(spks) <= 4
        assert all(a.repeat and a.offset == 0 and a.snr == 10.0 for a in plan.additions)
        counts.add(len(spks))
    assert len(counts) > 1
    one = self_setup(self_babble_speakers=[1], self_babble_snrs=[10.0])
    one.clean_dir = str(clean)
    x, _ = read_audio(dd.wav["s00-u0"])
    y = Renderer().render(x, draw_plan("self_babble", "s00-u0", len(x), Sources(one)))
    assert len(y) == len(x) and snr_db(x, y) == pytest.approx(10.0, abs=0.5)  # a partial last tile
    alone = tmp_path / "alone"
    DataDir.load(clean).subset(["s00-u0", "s00-u1"]).write(alone)
    one.clean_dir = str(alone)
    with pytest.raises(UserError, match="self_babble needs utterances of more than one speaker"):
        draw_plan("self_babble", "s00-u0", 16000, Sources(one))


def test_change_speed_resamples_like_sox_speed():
    t = np.arange(16000) / RATE
    x = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    for factor in (0.9, 1.1):
        y = change_speed(x, factor)
        assert len(y) == math.ceil(len(x) / factor)
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        peak_hz = np.argmax(spectrum) * RATE / len(y)
        assert peak_hz == pytest.approx(500 * factor, abs=2)  # pitch moves with the tempo
    assert np.array_equal(change_speed(x, 1.0), x)


def test_perturb_speed_dir(tmp_path):
    clean = write_clean_dir(tmp_path, speakers=2, per_spk=2)
    sp = perturb_speed(clean, 0.9, tmp_path / "sp0.9")
    sp.write(tmp_path / "sp0.9")
    dd = DataDir.load(clean)
    assert sp.utts() == [f"sp0.9-{u}" for u in dd.utts()]
    assert sp.speakers() == [f"sp0.9-{s}" for s in dd.speakers()]
    assert sp.wav is None and sp.vad is None and sp.feats is None and sp.utt2num_frames is None
    for u in dd.utts():
        assert sp.utt2dur[f"sp0.9-{u}"] == pytest.approx(dd.utt2dur[u] / 0.9, abs=1e-4)
        record = parse_aug(sp.aug[f"sp0.9-{u}"])
        assert record.source == dd.wav[u] and [(s.kind, s.input_utt) for s in record.steps] == [("speed", u)]
    assert load_setup(tmp_path / "sp0.9" / "augment.yaml").config.speed_factor == 0.9
    validate_data_dir(tmp_path / "sp0.9")
    x, _ = read_audio(dd.wav["s00-u0"])
    assert len(Renderer().audio(parse_aug(sp.aug["sp0.9-s00-u0"]), "sp0.9-s00-u0")) == math.ceil(len(x) / 0.9)
    same = perturb_speed(clean, 1.0, tmp_path / "sp1.0")
    assert same.aug is None and same.wav == {f"sp1.0-{u}": dd.wav[u] for u in dd.utts()}
    same.write(tmp_path / "sp1.0")
    both = combine([DataDir.load(tmp_path / "sp0.9"), DataDir.load(tmp_path / "sp1.0")], ["a", "b"])
    both.write(tmp_path / "sp")
    assert len(validate_data_dir(tmp_path / "sp")) == 2 * len(dd)  # wav.scp and utt2aug together
    proc = subprocess.run([sys.executable, str(ROOT / "utils" / "perturb_data_dir_speed.py"), "1.1", str(clean),
                           str(tmp_path / "sp1.1")], capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert DataDir.load(tmp_path / "sp1.1").utts()[0] == "sp1.1-s00-u0"


def test_augmented_dir_records_and_validation(tmp_path):
    clean = write_clean_dir(tmp_path)
    setup = self_setup(num_aug_utts=20)
    aug = make_augmented_dir(clean, setup, tmp_path / "aug")
    aug.write(tmp_path / "aug")
    dd = DataDir.load(clean)
    assert len(aug) == 20 and aug.wav is None
    assert aug.utts() == make_augmented_dir(clean, self_setup(num_aug_utts=20), tmp_path / "again").utts()
    for utt in aug.utts():
        base, kind = utt.rsplit("-", 1)
        record = parse_aug(aug.aug[utt])
        assert kind in setup.config.kinds and record.source == dd.wav[base]
        assert record.steps[0].kind == kind and record.steps[0].input_utt == base
        assert record.steps[0].setup == str((tmp_path / "aug" / "augment.yaml").resolve())
        assert aug.utt2spk[utt] == dd.utt2spk[base] and aug.vad[utt] == dd.vad[base]
    assert load_setup(tmp_path / "aug" / "augment.yaml").clean_dir == str(clean.resolve())
    validate_data_dir(tmp_path / "aug", check_files=False)
    combined = tmp_path / "combined"
    combine([DataDir.load(tmp_path / "aug"), dd], ["aug", "clean"]).write(combined)
    assert len(validate_data_dir(combined, check_files=False)) == 20 + len(dd)

    lines = (tmp_path / "aug" / "utt2aug").read_text().splitlines()
    broken = tmp_path / "broken"
    DataDir.load(tmp_path / "aug").write(broken)
    (broken / "utt2aug").write_text("\n".join([lines[0], lines[1].replace(" 1 ", " x ", 1), *lines[2:]]) + "\n")
    with pytest.raises(InputFileError, match=r"broken/utt2aug:2: expected the number of steps first"):
        validate_data_dir(broken, check_files=False)
    first = lines[0].split()
    (broken / "utt2aug").write_text("\n".join([" ".join([*first[:4], str(tmp_path / "gone.yaml"), *first[5:]]),
                                               *lines[1:]]) + "\n")
    with pytest.raises(InputFileError, match=r"utt2aug:1: augmentation setup .*gone.yaml does not exist"):
        validate_data_dir(broken)
    (broken / "utt2aug").write_text("\n".join(lines) + "\n")
    write_table(broken / "wav.scp", {lines[0].split()[0]: dd.wav["s00-u0"]})
    with pytest.raises(InputFileError, match=r"utt2aug:1: .* is also in wav.scp"):
        validate_data_dir(broken, check_files=False)
    with pytest.raises(UserError, match="utils/perturb_data_dir_speed.py"):
        make_augmented_dir(clean, self_setup(kinds=["speed"]), tmp_path / "x")
    with pytest.raises(UserError, match="data directory .*nowhere does not exist"):
        make_augmented_dir(tmp_path / "nowhere", setup, tmp_path / "x")


def test_renderer_reads_each_list_once_and_is_deterministic(tmp_path, monkeypatch):
    clean = write_clean_dir(tmp_path)
    aug = make_augmented_dir(clean, self_setup(), tmp_path / "aug")
    reads, setups = [], []
    real_read, real_setup = augment.read_utt_table, augment.load_setup
    monkeypatch.setattr(augment, "read_utt_table", lambda path, name: reads.append(str(path)) or real_read(path, name))
    monkeypatch.setattr(augment, "load_setup", lambda path: setups.append(path) or real_setup(path))
    renderer = Renderer()
    first = {u: renderer.audio(parse_aug(aug.aug[u]), u) for u in aug.utts()}
    assert len(first) == 45 and len(setups) == 1
    assert sorted(reads) == sorted({str(clean / "wav.scp"), str(clean / "utt2spk")})  # once each
    again = Renderer()
    for u in reversed(aug.utts()):  # the same audio in any order, from any renderer
        assert np.array_equal(again.audio(parse_aug(aug.aug[u]), u), first[u])
    dd = DataDir.load(clean)
    for u, y in first.items():
        x, _ = read_audio(dd.wav[u.rsplit("-", 1)[0]])
        assert len(y) == len(x) and not np.allclose(x, y, atol=1e-3)


def test_chained_speed_then_augmentation(tmp_path):
    clean = write_clean_dir(tmp_path, speakers=4, per_spk=2)
    perturb_speed(clean, 1.1, tmp_path / "sp").write(tmp_path / "sp")
    aug = make_augmented_dir(tmp_path / "sp", self_setup(kinds=["self_babble", "sim_reverb"]), tmp_path / "sp_aug")
    record = parse_aug(aug.aug["sp1.1-s01-u0-self_babble"])
    assert [(s.kind, s.input_utt) for s in record.steps] == [("speed", "s01-u0"), ("self_babble", "sp1.1-s01-u0")]
    renderer = Renderer()
    y = renderer.audio(record, "sp1.1-s01-u0-self_babble")
    sped = renderer.audio(parse_aug(DataDir.load(tmp_path / "sp").aug["sp1.1-s01-u0"]), "sp1.1-s01-u0")
    assert len(y) == len(sped) and not np.allclose(y, sped, atol=1e-3)  # babble of sped-up other speakers


def make_features_of(data_dir: Path, tmp_path: Path, nj: int = 1) -> dict[str, np.ndarray]:
    cfg = load_config(default_config_path("mfcc"), MfccFeatConfig)
    make_features(data_dir, tmp_path / f"mfcc_{data_dir.name}", cfg, nj=nj)
    return {k: np.array(v) for k, v in kaldiio.load_scp(str(data_dir / "feats.scp")).items()}


def test_make_features_renders_in_process_like_audio_on_disk(tmp_path, monkeypatch):
    clean = write_clean_dir(tmp_path, speakers=3, per_spk=2)
    aug_dir = tmp_path / "aug"
    make_augmented_dir(clean, self_setup(), aug_dir).write(aug_dir)
    combined = tmp_path / "combined"
    combine([DataDir.load(aug_dir), DataDir.load(clean)], ["aug", "clean"]).write(combined)
    log = tmp_path / "reads.log"
    real_read = augment.read_utt_table

    def counted(path, name):
        with open(log, "a") as f:
            f.write(f"{path}\n")
        return real_read(path, name)

    # Each of the two jobs run here as a dispatched job is (a job process would not see the
    # patch), then the stage merges them.
    monkeypatch.setattr(augment, "read_utt_table", counted)
    cfg, feat_dir = load_config(default_config_path("mfcc"), MfccFeatConfig), tmp_path / "mfcc_combined"
    for job in (1, 2):
        make_features(combined, feat_dir, cfg, nj=2, dispatch=Dispatch(job=job, num_jobs=2))
    reads = log.read_text().split()
    arks = {p: p.stat().st_mtime_ns for p in feat_dir.glob("*.ark")}
    feats = make_features_of(combined, tmp_path, nj=2)
    assert len(arks) == 2 and {p: p.stat().st_mtime_ns for p in feat_dir.glob("*.ark")} == arks  # merged as they are
    assert len(reads) <= 2 * 2 and set(reads) == {str(clean / "wav.scp"), str(clean / "utt2spk")}  # once per job

    dd, rendered = DataDir.load(combined), tmp_path / "rendered"
    renderer = Renderer()
    wav = {}
    for utt in dd.utts():  # the rendered audio written to disk, float, so nothing is rounded
        x = renderer.audio(parse_aug(dd.aug[utt]), utt) if utt in dd.aug else read_audio(dd.wav[utt])[0]
        wav[utt] = str(tmp_path / "render_wav" / f"{utt}.wav")
        Path(wav[utt]).parent.mkdir(exist_ok=True)
        soundfile.write(wav[utt], x, RATE, subtype="FLOAT")
    DataDir(utt2spk=dd.utt2spk, wav=wav).write(rendered)
    expected = make_features_of(rendered, tmp_path)
    assert feats.keys() == expected.keys() and len(feats) == 3 * 6 + 6
    for utt in expected:
        assert np.array_equal(feats[utt], expected[utt]), utt


def test_make_features_errors_name_utt2aug_and_line(tmp_path):
    clean = write_clean_dir(tmp_path, speakers=2, per_spk=1)
    aug_dir = tmp_path / "aug"
    make_augmented_dir(clean, self_setup(kinds=["self_noise"]), aug_dir).write(aug_dir)
    lines = (aug_dir / "utt2aug").read_text().splitlines()
    fields = lines[1].split()
    fields[-1] = str(tmp_path / "missing.wav")
    (aug_dir / "utt2aug").write_text("\n".join([lines[0], " ".join(fields)]) + "\n")
    with pytest.raises(UserError, match=r"aug/utt2aug:2: cannot read utterance 's01-u0-self_noise'.*missing.wav"):
        make_features_of(aug_dir, tmp_path)
    fields = lines[1].split()
    fields[4] = str(tmp_path / "nothere.yaml")
    (aug_dir / "utt2aug").write_text("\n".join([lines[0], " ".join(fields)]) + "\n")
    with pytest.raises(UserError, match=r"aug/utt2aug:2: config file .*nothere.yaml does not exist"):
        make_features_of(aug_dir, tmp_path)


def test_step_cli(tmp_path):
    clean = write_clean_dir(tmp_path, speakers=2, per_spk=1)
    step = ROOT / "steps" / "augment_data_dir.py"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(step), "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "--musan-prefix" in proc.stdout and "CLEAN_DIR" in proc.stdout
    proc = subprocess.run([sys.executable, str(step), "--set", "sim_rt60=[1, 0.5]", str(clean), str(tmp_path / "a")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "conf/augment.yaml: sim_rt60 must be" in proc.stderr
    proc = subprocess.run([sys.executable, str(step), "--set", "kinds=[noise]", str(clean), str(tmp_path / "a")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "augmentation kind 'noise' needs noise_dir" in proc.stderr
    proc = subprocess.run([sys.executable, str(step), "--set", "num_aug_utts=3", str(clean), str(tmp_path / "a")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(validate_data_dir(tmp_path / "a", check_files=False)) == 3  # vad.scp of the fixture is made up


@pytest.mark.slow
def test_musan_and_rir_kinds_render_in_process(tmp_path, sources, monkeypatch):
    vox2 = replicas.make_voxceleb2(tmp_path / "vox2")
    monkeypatch.setenv("PATH", replicas.path_with(tmp_path / "bin"))
    replicas.fake_ffmpeg(tmp_path / "bin")
    clean = prepare_voxceleb2(vox2)
    clean.vad = {u: f"/vad.ark:{i}" for i, u in enumerate(clean.utts())}
    clean.write(tmp_path / "train")
    sources.config.num_aug_utts = 10
    aug = make_augmented_dir(tmp_path / "train", sources, tmp_path / "train_aug")
    assert len(aug) == 10 and aug.utts() == make_augmented_dir(tmp_path / "train", sources, tmp_path / "again").utts()
    for utt in aug.utts():
        base, kind = utt.rsplit("-", 1)
        assert kind in ("reverb", "noise", "music", "babble")
        assert aug.utt2spk[utt] == clean.utt2spk[base] and aug.vad[utt] == clean.vad[base]
        assert parse_aug(aug.aug[utt]).source == clean.wav[base]  # the ffmpeg pipe of the clean audio
    sources.config.num_aug_utts = 1000
    full = make_augmented_dir(tmp_path / "train", sources, tmp_path / "all")
    assert len(full) == 4 * len(clean)
    assert load_setup(tmp_path / "all" / "augment.yaml") == sources
    base = "id00016-21Uxsk56VDQ-00002"
    x, _ = read_audio(clean.wav[base], base)
    outputs, renderer = {}, Renderer()
    for kind in ("reverb", "noise", "music", "babble"):
        utt = f"{base}-{kind}"
        y = renderer.audio(parse_aug(full.aug[utt]), utt)
        assert len(y) == len(x) and not np.allclose(y, x, atol=1e-3)
        outputs[kind] = y
    assert np.array_equal(outputs["babble"], Renderer().audio(parse_aug(full.aug[f"{base}-babble"]), base))
    plan = draw_plan("music", base, len(x), Sources(sources))
    assert snr_db(x, outputs["music"]) == pytest.approx(plan.additions[0].snr, abs=0.3)  # a partial last tile
    assert power(outputs["reverb"]) == pytest.approx(power(x), rel=0.02)
    with pytest.raises(UserError, match="rirs_nowhere/wav.scp does not exist"):
        make_augmented_dir(tmp_path / "train", AugmentSetup(**{**sources.__dict__,
                                                               "rir_dirs": [str(tmp_path / "rirs_nowhere")] * 2}),
                           tmp_path / "x")
