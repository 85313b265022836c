"""MFCC/fbank extraction and the make_features step: frame counts, Kaldi's energy column,
archives readable with kaldiio, job-split independence, resume after a killed job, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kaldi_native_fbank as knf
import kaldiio
import numpy as np
import pytest
import soundfile

from dropclass_lib.config import load_config
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.features import (FbankFeatConfig, FeatureExtractor, MfccFeatConfig, default_config_path,
                                    make_features, utterance_seed)

ROOT = Path(__file__).resolve().parent.parent
STEP = ROOT / "steps" / "make_features.py"


def make_data_dir(tmp_path: Path, lengths, name="data", seed=0) -> Path:
    """A data dir of noisy-tone utterances with the given lengths in samples (16 kHz)."""
    rng = np.random.default_rng(seed)
    d = tmp_path / name
    (d / "wav").mkdir(parents=True)
    wav, u2s = [], []
    for i, n in enumerate(lengths):
        t = np.arange(n) / 16000
        x = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.01 * rng.standard_normal(n)
        path = d / "wav" / f"u{i:02d}.wav"
        soundfile.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
        wav.append(f"u{i:02d} {path}\n")
        u2s.append(f"u{i:02d} spk{i % 2}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2spk").write_text("".join(u2s))
    return d


def read_feats(data_dir: Path) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in kaldiio.load_scp(str(data_dir / "feats.scp")).items()}


def mfcc_cfg(**kw) -> MfccFeatConfig:
    return load_config(default_config_path("mfcc"), MfccFeatConfig, kw)


def test_conf_files_are_kaldi_voxceleb_defaults():
    cfg = mfcc_cfg()
    assert (cfg.num_mel_bins, cfg.num_ceps, cfg.low_freq, cfg.high_freq, cfg.snip_edges) == (30, 30, 20, 7600, False)
    assert (cfg.frame_length, cfg.frame_shift, cfg.sample_frequency, cfg.use_energy) == (25, 10, 16000, True)
    fb = load_config(default_config_path("fbank"), FbankFeatConfig)
    assert fb.num_mel_bins == 80 and not fb.use_energy


def test_config_errors_name_key_and_file(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("feat_type: mfcc\nnum_cep: 13\n")
    with pytest.raises(InputFileError, match=r"m.yaml:2: unknown config key 'num_cep'"):
        load_config(bad, MfccFeatConfig)
    with pytest.raises(UserError, match="this is an MFCC config but feat_type is 'fbank'"):
        load_config(default_config_path("fbank"), MfccFeatConfig, {"num_mel_bins": 30})
    with pytest.raises(UserError, match="num_ceps"):
        mfcc_cfg(num_ceps=40)


@pytest.mark.parametrize("n,frames", [(400, 3), (1000, 6), (16000, 100), (16079, 100), (16080, 101), (48123, 301)])
def test_frame_count_without_snip_edges(n, frames):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    for cfg, dim in ((mfcc_cfg(), 30), (load_config(default_config_path("fbank"), FbankFeatConfig), 80)):
        feats = FeatureExtractor(cfg)(x, "u")
        assert feats.shape == (frames, dim) and feats.dtype == np.float32
        assert np.isfinite(feats).all()


def test_c0_is_kaldi_raw_log_energy():
    """Column 0 is log(sum of squares) of the int16-scaled frame after DC removal; with
    snip_edges false frame t starts at sample 160 t + 80 - 200."""
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal(8000)).astype(np.float32)
    feats = FeatureExtractor(mfcc_cfg(dither=0.0))(x, "u")
    for t in (1, 10, 25, 48):
        frame = x[160 * t - 120: 160 * t + 280].astype(np.float64) * 32768
        frame -= frame.mean()
        assert feats[t, 0] == pytest.approx(np.log(np.sum(frame ** 2)), abs=1e-3)
    # the other cepstra are not the energy: louder audio shifts C0 by log(gain^2) and C1.. barely
    louder = FeatureExtractor(mfcc_cfg(dither=0.0))(x * 2, "u")
    assert np.allclose(louder[:, 0] - feats[:, 0], np.log(4), atol=1e-3)


def lhotse_options(cfg) -> dict:
    """``cfg``'s options by the names of lhotse's Kaldi-compatible layers."""
    return dict(
        sampling_rate=cfg.sample_frequency, frame_length=cfg.frame_length / 1000, frame_shift=cfg.frame_shift / 1000,
        remove_dc_offset=cfg.remove_dc_offset, preemph_coeff=cfg.preemphasis_coefficient, window_type=cfg.window_type,
        dither=cfg.dither, snip_edges=cfg.snip_edges, energy_floor=cfg.energy_floor, raw_energy=cfg.raw_energy)


@pytest.mark.parametrize("feat_type", ["mfcc", "fbank"])
def test_equals_stock_lhotse_layer(feat_type):
    """Our analysis gives lhotse's stock per-utterance result (its public layers, dither from
    the default generator seeded per utterance) to float rounding."""
    from lhotse.features.kaldi.layers import Wav2LogFilterBank, Wav2MFCC, Wav2Win
    import torch

    x = (0.2 * np.random.default_rng(3).standard_normal(48123)).astype(np.float32)
    cfg = mfcc_cfg() if feat_type == "mfcc" else load_config(default_config_path("fbank"), FbankFeatConfig)
    options = lhotse_options(cfg)
    bank = dict(round_to_power_of_two=cfg.round_to_power_of_two, low_freq=cfg.low_freq, high_freq=cfg.high_freq,
                num_filters=cfg.num_mel_bins)
    got = FeatureExtractor(cfg)(x, "utt7")
    wave = torch.from_numpy(x * 32768).unsqueeze(0)
    with torch.inference_mode():
        if feat_type == "mfcc":
            # lhotse's MFCC with use_energy fails (it indexes the wrong axis): its cepstra, and
            # the log energy of its framing layer, each from the same seeded dither
            torch.manual_seed(utterance_seed("utt7"))
            ref = Wav2MFCC(**options, **bank, num_ceps=cfg.num_ceps, cepstral_lifter=22)(wave)
            torch.manual_seed(utterance_seed("utt7"))
            ref[..., 0] = Wav2Win(**options, return_log_energy=True)(wave)[1]
        else:
            torch.manual_seed(utterance_seed("utt7"))
            ref = Wav2LogFilterBank(**options, **bank, use_energy=cfg.use_energy)(wave)
    ref = ref[0].numpy()
    assert got.shape == ref.shape == (301, cfg.num_mel_bins if feat_type == "fbank" else cfg.num_ceps)
    assert np.allclose(got, ref, rtol=1e-5, atol=1e-4 if feat_type == "mfcc" else 1e-5)
    assert not np.allclose(got, FeatureExtractor(cfg)(x, "utt8"), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("num_samples", [28011, 480])
def test_fbank_is_rounded_as_plain_power_spectrum_and_matmul(num_samples):
    """Bit for bit: lhotse's framing layer, then |X|^2 as (X * conj X).real (one rounding per
    product, none fused), then lhotse's mel matrix (a transposed view) and the log; a block of
    175 frames and one of 3 (BLAS takes other kernels for a few rows). Features, and every model
    trained on them, must not move with how the power spectrum or the matrix happens to be laid out."""
    from lhotse.features.kaldi.layers import Wav2Win, get_mel_banks
    import torch

    x = (0.2 * np.random.default_rng(5).standard_normal(num_samples)).astype(np.float32)
    cfg = load_config(default_config_path("fbank"), FbankFeatConfig)
    cfg.dither = 0.0
    got = FeatureExtractor(cfg)(x, "utt1")
    with torch.inference_mode():
        windowed, _ = Wav2Win(**lhotse_options(cfg), pad_length=512)(torch.from_numpy(x * 32768).unsqueeze(0))
        spectrum = torch.fft.rfft(windowed[0])
        power = (spectrum * spectrum.conj()).real
        banks, _ = get_mel_banks(cfg.num_mel_bins, windowed.shape[-1], cfg.sample_frequency, cfg.low_freq,
                                 cfg.high_freq)
        mel = torch.matmul(power, torch.nn.functional.pad(banks, (0, 1)).T)
        ref = torch.clamp(mel, min=float(np.finfo(np.float32).eps)).log().numpy()
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)


def kaldi_native_features(cfg, x: np.ndarray) -> np.ndarray:
    """Features of ``x`` computed by kaldi-native-fbank (Kaldi's algorithm) with ``cfg``'s options."""
    opts = knf.MfccOptions() if cfg.feat_type == "mfcc" else knf.FbankOptions()
    frame = opts.frame_opts
    frame.samp_freq, frame.frame_length_ms, frame.frame_shift_ms = cfg.sample_frequency, cfg.frame_length, cfg.frame_shift
    frame.dither, frame.snip_edges, frame.window_type = cfg.dither, cfg.snip_edges, cfg.window_type
    frame.preemph_coeff, frame.remove_dc_offset = cfg.preemphasis_coefficient, cfg.remove_dc_offset
    frame.round_to_power_of_two = cfg.round_to_power_of_two
    mel = opts.mel_opts
    mel.num_bins, mel.low_freq, mel.high_freq = cfg.num_mel_bins, cfg.low_freq, cfg.high_freq
    opts.use_energy, opts.energy_floor, opts.raw_energy = cfg.use_energy, cfg.energy_floor, cfg.raw_energy
    if cfg.feat_type == "mfcc":
        opts.num_ceps, opts.cepstral_lifter = cfg.num_ceps, cfg.cepstral_lifter
    online = (knf.OnlineMfcc if cfg.feat_type == "mfcc" else knf.OnlineFbank)(opts)
    online.accept_waveform(cfg.sample_frequency, x.astype(np.float32) * cfg.waveform_scale)
    online.input_finished()
    return np.array([online.get_frame(i) for i in range(online.num_frames_ready)])


def harmonic_speech(seed: int, digital_silence: bool) -> np.ndarray:
    """1.5 s of noisy harmonics, optionally with 0.3 s of exact zeros in the middle (as padded
    corpora have)."""
    rng = np.random.default_rng(seed)
    t = np.arange(24000) / 16000
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8)) * 0.1 + 0.02 * rng.standard_normal(t.size)
    if digital_silence:
        x[9000:13800] = 0.0
    return x.astype(np.float32)


# Reference tolerances: float32 FFTs of different libraries; the lifter scales the higher
# cepstra by up to 12, hence MFCC's. The bugs fixed against Kaldi were 0.05-0.4 (Blackman
# window), 4e-3-9e-3 (lifter 22.5 truncated to 22) and 18.6 (C0 of digital silence).
KALDI_TOL = {"mfcc": 1e-3, "fbank": 2e-4}


@pytest.mark.parametrize("feat_type,options", [
    ("mfcc", {}),
    ("mfcc", {"window_type": "blackman"}),
    ("mfcc", {"window_type": "hamming"}),
    ("mfcc", {"window_type": "hanning"}),
    ("mfcc", {"window_type": "rectangular"}),
    ("mfcc", {"snip_edges": True}),
    ("mfcc", {"raw_energy": False}),
    ("mfcc", {"energy_floor": 1e3}),
    ("fbank", {}),
    ("fbank", {"window_type": "blackman"}),
    ("fbank", {"use_energy": True}),
])
def test_equals_kaldi_without_dither(feat_type, options):
    """With dither 0 the features are Kaldi's (kaldi-native-fbank), digital silence included."""
    cfg_type = MfccFeatConfig if feat_type == "mfcc" else FbankFeatConfig
    cfg = load_config(default_config_path(feat_type), cfg_type, {"dither": 0.0, **options})
    x = harmonic_speech(11, digital_silence=True)
    got, ref = FeatureExtractor(cfg)(x, "u"), kaldi_native_features(cfg, x)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=KALDI_TOL[feat_type])


@pytest.mark.parametrize("lifter", [0.0, 22.0, 22.5, 7.3])
def test_cepstral_lifter_is_kaldis_real_valued_lifter(lifter):
    """0 means no lifter (it used to fail inside lhotse); a non-integer one is used as it is,
    not truncated. (No digital silence here: that is another test's bug.)"""
    cfg = mfcc_cfg(dither=0.0, cepstral_lifter=lifter)
    x = harmonic_speech(12, digital_silence=False)
    got = FeatureExtractor(cfg)(x, "u")
    np.testing.assert_allclose(got, kaldi_native_features(cfg, x), rtol=1e-5, atol=KALDI_TOL["mfcc"])


def test_log_energy_of_digital_silence_is_kaldis_floor():
    """Kaldi floors the frame energy at FLT_EPSILON: C0 (and fbank's energy column) of digital
    silence is log(FLT_EPSILON) = -15.94, not log(1e-15) = -34.5."""
    x = np.zeros(8000, dtype=np.float32)
    floor = np.log(np.finfo(np.float32).eps)
    mfcc = FeatureExtractor(mfcc_cfg(dither=0.0))(x, "u")
    fbank = FeatureExtractor(load_config(default_config_path("fbank"), FbankFeatConfig,
                                         {"dither": 0.0, "use_energy": True}))(x, "u")
    np.testing.assert_allclose(mfcc[:, 0], floor, rtol=1e-6)
    np.testing.assert_allclose(fbank[:, 0], floor, rtol=1e-6)
    np.testing.assert_allclose(fbank[:, 1:], floor, rtol=1e-6)  # mel energies: the same floor


@pytest.mark.parametrize("feat_type", ["mfcc", "fbank"])
def test_batched_equals_per_utterance(feat_type):
    """Frames of many utterances analysed in shared blocks (small blocks here, so that they
    straddle utterances) give each utterance the features of a call for it alone."""
    rng = np.random.default_rng(5)
    lengths = [16000, 50, 401, 48123, 1000, 160 * 700 + 3, 2400]
    items = [(f"u{i}", (0.1 * rng.standard_normal(n)).astype(np.float32)) for i, n in enumerate(lengths)]
    if feat_type == "mfcc":
        cfg = mfcc_cfg()
    else:
        cfg = load_config(default_config_path("fbank"), FbankFeatConfig, {"use_energy": True})
    single = FeatureExtractor(cfg)
    batched = FeatureExtractor(cfg)
    batched.BLOCK_FRAMES = 37
    got = list(batched.extract_many(iter(items)))
    assert [u for u, _ in got] == [u for u, _ in items]
    for (utt, x), (_, feats) in zip(items, got):
        ref = single(x, utt)
        assert feats.shape == ref.shape == (single.num_frames(len(x)), single.dim) and feats.dtype == np.float32
        # equal bit for bit but where a tiny block takes another BLAS kernel (float rounding)
        assert np.allclose(feats, ref, rtol=1e-5, atol=1e-4 if feat_type == "mfcc" else 1e-5)


@pytest.mark.parametrize("feat_type", ["mfcc", "fbank"])
def test_a_block_ends_after_the_utterance_that_completes_it(feat_type):
    """Bit for bit: an utterance of 403 frames then one of 50 go through the blocks 400, 3 and
    50 (each utterance's features then equal its features alone), not 400 and 53, whose last
    rows BLAS rounds otherwise; the block ends the reported features were computed with."""
    rng = np.random.default_rng(9)
    cfg = mfcc_cfg(dither=0.0) if feat_type == "mfcc" else load_config(default_config_path("fbank"), FbankFeatConfig,
                                                                        {"dither": 0.0})
    extractor = FeatureExtractor(cfg)
    long = (0.1 * rng.standard_normal(160 * 403)).astype(np.float32)
    short = (0.1 * rng.standard_normal(160 * 50)).astype(np.float32)
    got = dict(extractor.extract_many([("a", long), ("b", short)]))
    assert got["a"].shape[0] == 403 and got["b"].shape[0] == 50
    assert np.array_equal(got["a"], extractor(long, "a"))
    assert np.array_equal(got["b"], extractor(short, "b"))


def test_dither_is_seeded_by_utterance():
    x = np.zeros(4000, dtype=np.float32)
    ext = FeatureExtractor(mfcc_cfg())
    a, b, c = ext(x, "utt-a"), ext(x, "utt-a"), ext(x, "utt-b")
    assert np.array_equal(a, b) and not np.array_equal(a, c) and np.isfinite(a).all()


def test_dither_leaves_torch_default_generator_alone():
    """The dither noise has its own generator: features computed in a process that trains (the
    Python API) do not reseed torch's default generator."""
    import torch

    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    FeatureExtractor(mfcc_cfg())(np.zeros(4000, dtype=np.float32), "utt-a")
    assert torch.equal(torch.rand(4), expected)


def test_make_features_scp_and_nj_independence(tmp_path):
    lengths = [16000, 24321, 8000, 40000, 12345]
    d1 = make_data_dir(tmp_path, lengths, "d1")
    d2 = make_data_dir(tmp_path, lengths, "d2")
    make_features(d1, tmp_path / "f1", mfcc_cfg(), nj=1)
    make_features(d2, tmp_path / "f2", mfcc_cfg(), nj=2)
    f1, f2 = read_feats(d1), read_feats(d2)
    assert sorted(f1) == [f"u{i:02d}" for i in range(5)] == sorted(f2)
    n2f = dict(line.split() for line in (d2 / "utt2num_frames").read_text().splitlines())
    for i, n in enumerate(lengths):
        key = f"u{i:02d}"
        assert f1[key].shape == (round(n / 160 + 1e-9), 30)
        assert int(n2f[key]) == f1[key].shape[0]
        assert np.array_equal(f1[key], f2[key])
    assert sorted(p.name for p in (tmp_path / "f2").glob("*.scp")) == ["raw_mfcc_d2.1.scp", "raw_mfcc_d2.2.scp"]
    assert "feat_type: mfcc" in (d2 / "feats_config.yaml").read_text()
    assert len(list((d2 / "log").glob("make_mfcc_d2.*.log"))) == 2


def test_pipe_entries_and_unreadable_audio(tmp_path):
    d = make_data_dir(tmp_path, [8000, 8000, 8000])
    lines = (d / "wav.scp").read_text().splitlines()
    lines[0] = f"u00 cat {lines[0].split()[1]} |"
    lines[2] = f"u02 {tmp_path}/missing.wav"
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"wav.scp:3: cannot read utterance 'u02'"):
        make_features(d, tmp_path / "f", mfcc_cfg(), nj=2)
    assert not (d / "feats.scp").exists() and not (d / "utt2num_frames").exists()
    assert not (tmp_path / "f" / "raw_mfcc_data.2.scp").exists()
    lines[2] = lines[1].replace("u01", "u02")  # fix the entry: only the failed job reruns
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    make_features(d, tmp_path / "f", mfcc_cfg(), nj=2)
    feats = read_feats(d)
    assert np.array_equal(feats["u00"], FeatureExtractor(mfcc_cfg())(soundfile.read(d / "wav" / "u00.wav", dtype="float32")[0], "u00"))


def test_resume_after_half_written_job(tmp_path):
    lengths = [16000, 8000, 12000, 9000]
    ref_dir = make_data_dir(tmp_path, lengths, "ref")
    make_features(ref_dir, tmp_path / "fref", mfcc_cfg(), nj=2)
    d = make_data_dir(tmp_path, lengths, "data")
    fd = tmp_path / "f"
    make_features(d, fd, mfcc_cfg(), nj=2)
    # job 2 "killed": its ark half-written, no scp; job 1 finished earlier
    (fd / "raw_mfcc_data.2.scp").unlink()
    ark2 = fd / "raw_mfcc_data.2.ark"
    ark2.write_bytes(ark2.read_bytes()[:1000])
    job1_mtime = (fd / "raw_mfcc_data.1.ark").stat().st_mtime_ns
    (d / "feats.scp").unlink()
    make_features(d, fd, mfcc_cfg(), nj=2)
    assert (fd / "raw_mfcc_data.1.ark").stat().st_mtime_ns == job1_mtime
    ref, got = read_feats(ref_dir), read_feats(d)
    assert sorted(ref) == sorted(got) and all(np.array_equal(ref[k], got[k]) for k in ref)


def ark_times(fd):
    return {p.name: p.stat().st_mtime_ns for p in fd.glob("*.ark")}


def test_a_changed_setting_or_utterance_list_redoes_the_features(tmp_path):
    """The freshness rule per job: another option or other utterances are recomputed, never
    kept and never refused; an unchanged re-run touches nothing."""
    d, fd = make_data_dir(tmp_path, [8000] * 4), tmp_path / "f"
    make_features(d, fd, mfcc_cfg(), nj=2)
    before = ark_times(fd)
    make_features(d, fd, mfcc_cfg(), nj=2)
    assert ark_times(fd) == before
    make_features(d, fd, mfcc_cfg(num_ceps=20), nj=2)
    assert {m.shape[1] for m in read_feats(d).values()} == {20}
    (d / "utt2spk").write_text("u00 spk0\nu01 spk1\nu02 spk0\n")  # the data changed
    make_features(d, fd, mfcc_cfg(num_ceps=20), nj=2)
    assert sorted(read_feats(d)) == ["u00", "u01", "u02"]


def test_make_features_after_wav_scp_changed_redoes_the_changed_job(tmp_path):
    """The issue's case: wav.scp pointed at other audio and make_features said "all jobs were
    already done", keeping the old features."""
    d, fd = make_data_dir(tmp_path, [8000, 9000, 10000, 11000]), tmp_path / "f"
    make_features(d, fd, mfcc_cfg(dither=0.0), nj=2)
    old = read_feats(d)
    assert not np.allclose(old["u03"][:50], old["u00"], atol=1e-4)
    job1 = (fd / "raw_mfcc_data.1.ark").stat().st_mtime_ns
    lines = (d / "wav.scp").read_text().splitlines()
    lines[3] = f"u03 {lines[0].split()[1]}"          # u03 (job 2) now reads u00's audio
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    make_features(d, fd, mfcc_cfg(dither=0.0), nj=2)
    new = read_feats(d)
    assert new["u03"].shape == old["u00"].shape and np.allclose(new["u03"], old["u00"], atol=1e-4)
    assert (fd / "raw_mfcc_data.1.ark").stat().st_mtime_ns == job1  # job 1's lines did not change


def test_make_features_redoes_when_the_augmentation_setup_changed(tmp_path):
    """A rendered utterance depends on its augment.yaml: a changed setup redoes the features."""
    from dropclass_lib.augment import AugmentConfig, AugmentSetup, make_augmented_dir
    from dropclass_lib.corpora.voxceleb import write_prepared

    clean = make_data_dir(tmp_path, [16000] * 4, "clean")
    aug_dir, fd = tmp_path / "aug", tmp_path / "f"
    write_prepared(make_augmented_dir(clean, AugmentSetup(config=AugmentConfig(kinds=["self_noise"], num_aug_utts=4)),
                                      aug_dir), aug_dir)
    make_features(aug_dir, fd, mfcc_cfg(), nj=1)
    before = read_feats(aug_dir)
    write_prepared(make_augmented_dir(clean, AugmentSetup(config=AugmentConfig(kinds=["self_noise"], num_aug_utts=4,
                                                                               seed=99)), aug_dir), aug_dir)
    make_features(aug_dir, fd, mfcc_cfg(), nj=1)
    after = read_feats(aug_dir)
    assert sorted(after) == sorted(before) and any(not np.allclose(after[k], before[k]) for k in after)


def test_rerun_with_other_nj(tmp_path):
    """Another --nj gives the same features (the jobs are redone under the new split, and the
    old split's extra jobs are removed); a killed job is redone alone."""
    lengths = [8000, 9000, 10000, 11000, 12000]
    d, fd = make_data_dir(tmp_path, lengths), tmp_path / "f"
    make_features(d, fd, mfcc_cfg(), nj=3)
    expected = read_feats(d)
    for nj in (1, 2):
        make_features(d, fd, mfcc_cfg(), nj=nj)
        got = read_feats(d)
        assert sorted(got) == sorted(expected) and all(np.array_equal(got[k], expected[k]) for k in got)
        assert len((d / "utt2num_frames").read_text().splitlines()) == len(lengths)
    assert sorted(p.name for p in fd.glob("raw_mfcc_data.*.scp")) == ["raw_mfcc_data.1.scp", "raw_mfcc_data.2.scp"]
    job1 = (fd / "raw_mfcc_data.1.ark").stat().st_mtime_ns
    (fd / "raw_mfcc_data.2.scp").unlink()  # job 2 "killed"
    make_features(d, fd, mfcc_cfg(), nj=2)
    assert (fd / "raw_mfcc_data.1.ark").stat().st_mtime_ns == job1
    got = read_feats(d)
    assert sorted(got) == sorted(expected) and all(np.array_equal(got[k], expected[k]) for k in got)
    (fd / "raw_mfcc_data.1.made_from.json").unlink()  # archives of an older version: no record
    make_features(d, fd, mfcc_cfg(), nj=2)
    assert (fd / "raw_mfcc_data.1.made_from.json").is_file()


@pytest.mark.slow
def test_killed_run_then_rerun_completes(tmp_path):
    """Kill the whole step while job 2 is still reading audio; the rerun redoes only job 2."""
    d = make_data_dir(tmp_path, [8000] * 4)
    stall = tmp_path / "stall"
    stall.touch()
    lines = (d / "wav.scp").read_text().splitlines()
    path = lines[3].split()[1]
    lines[3] = f"u03 sh -c 'while [ -e {stall} ]; do sleep 0.1; done; cat {path}' |"
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(STEP), "--nj", "2", str(d), str(tmp_path / "f")]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=subprocess.PIPE)
    job1 = tmp_path / "f" / "raw_mfcc_data.1.scp"
    job1_record = tmp_path / "f" / "raw_mfcc_data.1.made_from.json"  # written after the scp: job 1 done
    deadline = time.time() + 60
    while not job1_record.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert job1_record.exists() and job1.exists()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "f" / "raw_mfcc_data.2.scp").exists() and not (d / "feats.scp").exists()
    stall.unlink()
    job1_mtime = job1.stat().st_mtime_ns
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert job1.stat().st_mtime_ns == job1_mtime
    feats = read_feats(d)
    audio = soundfile.read(path, dtype="float32")[0]
    assert sorted(feats) == ["u00", "u01", "u02", "u03"]
    assert np.array_equal(feats["u03"], FeatureExtractor(mfcc_cfg())(audio, "u03"))


@pytest.mark.slow
def test_cli_error_is_one_line(tmp_path):
    d = make_data_dir(tmp_path, [8000])
    (d / "wav.scp").write_text(f"u00 {tmp_path}/nope.wav\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(STEP), "--nj", "1", str(d), str(tmp_path / "f")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "ERROR (make_features.py)" in r.stderr and "wav.scp:1: cannot read utterance 'u00'" in r.stderr


def test_the_config_file_decides_the_kind_of_features(tmp_path):
    d = make_data_dir(tmp_path, [8000])
    conf = tmp_path / "fb.yaml"
    conf.write_text("feat_type: fbank\nnum_mel_bins: 40\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(STEP), "--nj", "1", "--config", str(conf), str(d), str(tmp_path / "f")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_feats(d)["u00"].shape[1] == 40
