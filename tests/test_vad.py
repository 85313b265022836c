"""Kaldi energy VAD: the vectorised rule against a per-frame loop, a signal with known
silences through real MFCC/fbank features, and the compute_vad step."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile

from dropclass_lib.config import load_config
from dropclass_lib.errors import UserError
from dropclass_lib.features import (CONF_DIR, FbankFeatConfig, FeatureExtractor, MfccFeatConfig, default_config_path,
                                    make_features)
from dropclass_lib.vad import VadConfig, compute_vad_dir, energy_vad, frame_log_energy


def loop_vad(e, threshold, mean_scale, context, proportion):
    """compute-vad written out frame by frame, as the reference."""
    thr = threshold + mean_scale * sum(e) / len(e)
    out = []
    for t in range(len(e)):
        num = den = 0
        for t2 in range(t - context, t + context + 1):
            if 0 <= t2 < len(e):
                den += 1
                num += e[t2] > thr
        out.append(1.0 if num >= den * proportion else 0.0)
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("context,proportion", [(0, 0.6), (2, 0.12), (5, 0.5), (30, 0.3)])
def test_vectorised_rule_equals_loop(context, proportion):
    rng = np.random.default_rng(context)
    for n in (1, 3, 57, 400):
        e = rng.normal(10, 4, n)
        cfg = VadConfig(vad_energy_threshold=5.5, vad_energy_mean_scale=0.5,
                        vad_frames_context=context, vad_proportion_threshold=proportion)
        assert np.array_equal(energy_vad(e, cfg), loop_vad(list(e), 5.5, 0.5, context, proportion))


def test_default_config_is_voxceleb_vad_conf():
    cfg = load_config(CONF_DIR / "vad.yaml", VadConfig)
    assert (cfg.vad_energy_threshold, cfg.vad_energy_mean_scale, cfg.vad_frames_context,
            cfg.vad_proportion_threshold) == (5.5, 0.5, 2, 0.12)
    with pytest.raises(UserError, match="vad_proportion_threshold"):
        load_config(CONF_DIR / "vad.yaml", VadConfig, {"vad_proportion_threshold": 1.5})


BURSTS = [(0.30, 0.80), (1.20, 1.50), (2.10, 2.70)]  # seconds of tone; the rest near-silence
DURATION = 3.0


def burst_signal(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(DURATION * 16000)) / 16000
    x = 3e-4 * rng.standard_normal(len(t))  # about -70 dBFS of noise
    for start, end in BURSTS:
        on = (t >= start) & (t < end)
        x[on] += 0.3 * np.sin(2 * np.pi * 440 * t[on]) + 0.1 * np.sin(2 * np.pi * 1250 * t[on])
    return x.astype(np.float32)


def check_bursts(vad: np.ndarray, context: int) -> None:
    """Voiced inside every burst, unvoiced in the silences, up to the context plus the
    frame overlap (a 25 ms frame centred at t*10 ms touches the neighbouring 1.5 frames)."""
    margin = context + 2
    expected = np.zeros(len(vad), dtype=bool)
    for start, end in BURSTS:
        expected[int(start * 100): int(end * 100)] = True
    near_edge = np.zeros(len(vad), dtype=bool)
    for start, end in BURSTS:
        for edge in (int(start * 100), int(end * 100)):
            near_edge[max(edge - margin, 0): edge + margin] = True
    assert np.array_equal(vad[~near_edge] > 0, expected[~near_edge])
    assert vad[expected].mean() > 0.95


def test_bursts_and_silence_mfcc_and_fbank():
    x = burst_signal()
    cfg = VadConfig()
    mfcc = FeatureExtractor(load_config(default_config_path("mfcc"), MfccFeatConfig))(x, "u")
    check_bursts(energy_vad(frame_log_energy(mfcc, "c0"), cfg), cfg.vad_frames_context)
    fbank = FeatureExtractor(load_config(default_config_path("fbank"), FbankFeatConfig))(x, "u")
    check_bursts(energy_vad(frame_log_energy(fbank, "log_mel_sum"), cfg), cfg.vad_frames_context)


def test_log_mel_sum_is_logsumexp():
    f = np.log(np.array([[1.0, 2.0, 3.0], [1e-30, 1e-30, 5.0]], dtype=np.float32))
    assert np.allclose(frame_log_energy(f, "log_mel_sum", fft_size=8), np.log([6.0 / 4, 5.0 / 4]), atol=1e-5)


def make_burst_dir(tmp_path: Path, n=3) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    wav, u2s = [], []
    for i in range(n):
        p = d / f"u{i}.wav"
        soundfile.write(p, burst_signal(i), 16000, subtype="FLOAT")
        wav.append(f"u{i} {p}\n")
        u2s.append(f"u{i} s{i}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2spk").write_text("".join(u2s))
    return d


@pytest.mark.parametrize("feat_type", ["mfcc", "fbank"])
def test_compute_vad_step(tmp_path, feat_type):
    d = make_burst_dir(tmp_path)
    cls = MfccFeatConfig if feat_type == "mfcc" else FbankFeatConfig
    make_features(d, tmp_path / "feats", load_config(default_config_path(feat_type), cls), nj=2)
    compute_vad_dir(d, tmp_path / "vad", load_config(CONF_DIR / "vad.yaml", VadConfig), nj=2)
    feats = kaldiio.load_scp(str(d / "feats.scp"))
    vads = kaldiio.load_scp(str(d / "vad.scp"))
    assert sorted(vads) == ["u0", "u1", "u2"]
    for utt in vads:
        vad = vads[utt]
        assert vad.ndim == 1 and vad.dtype == np.float32 and len(vad) == feats[utt].shape[0]
        assert set(np.unique(vad)) <= {0.0, 1.0}
        check_bursts(vad, 2)
    source = "log_mel_sum" if feat_type == "fbank" else "c0"
    assert f"energy: {source}" in (tmp_path / "vad" / "log" / "vad_data.1.log").read_text()
    assert '"fft_size": 512' in (tmp_path / "vad" / "vad_data.1.made_from.json").read_text()


def test_compute_vad_rerun_with_other_nj_or_changed_features(tmp_path):
    """Another --nj or a killed job gives the same vad.scp; features recomputed with another
    option (same feats.scp bytes: same offsets) redo the VAD."""
    d = make_burst_dir(tmp_path, n=3)
    feat_cfg = load_config(default_config_path("mfcc"), MfccFeatConfig)
    make_features(d, tmp_path / "feats", feat_cfg, nj=1)
    cfg = load_config(CONF_DIR / "vad.yaml", VadConfig)
    compute_vad_dir(d, tmp_path / "vad", cfg, nj=2)
    vad = {k: v.tolist() for k, v in kaldiio.load_scp(str(d / "vad.scp")).items()}
    compute_vad_dir(d, tmp_path / "vad", cfg, nj=3)
    assert {k: v.tolist() for k, v in kaldiio.load_scp(str(d / "vad.scp")).items()} == vad
    (tmp_path / "vad" / "vad_data.1.scp").unlink()
    compute_vad_dir(d, tmp_path / "vad", cfg, nj=3)
    assert {k: v.tolist() for k, v in kaldiio.load_scp(str(d / "vad.scp")).items()} == vad
    scp = (d / "feats.scp").read_text()
    make_features(d, tmp_path / "feats", dataclasses.replace(feat_cfg, dither=0.0, energy_floor=1e6), nj=1)
    assert (d / "feats.scp").read_text() == scp  # same offsets, other matrices
    # job 1 is redone: its record now names the new feature archive (its log may come out
    # byte-identical, and an identical rewrite keeps the old file and time)
    record = tmp_path / "vad" / "vad_data.1.made_from.json"
    before = record.read_text()
    compute_vad_dir(d, tmp_path / "vad", cfg, nj=3)
    assert record.read_text() != before


def test_auto_energy_needs_feats_config(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    kaldiio.save_ark(str(tmp_path / "f.ark"), {"u1": np.ones((5, 3), np.float32)}, scp=str(d / "feats.scp"))
    with pytest.raises(UserError, match="feats_config.yaml .* is missing"):
        compute_vad_dir(d, tmp_path / "vad", VadConfig(), nj=1)
    compute_vad_dir(d, tmp_path / "vad", VadConfig(energy_source="c0"), nj=1)
    assert kaldiio.load_scp(str(d / "vad.scp"))["u1"].shape == (5,)
