"""A tiny trained model package made by the recipe's own steps, for the tests of the Python API,
the export and the README's examples.

``make_package(root)`` writes ``root/data`` (voiced synthetic 'words' of three speakers),
runs make_features -> compute_vad -> prepare_feats_for_egs on it, trains a small TDNN on the
result for a few iterations and leaves ``root/exp`` as a recipe leaves a system: final.pt,
frontend.yaml (through dropclass_lib.package, as steps/make_model_package.py writes it) and checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import yaml

from conftest import load_script
from dropclass_lib.config import from_dict
from dropclass_lib.features import CONF_DIR, default_config_path
from dropclass_lib.package import frontend_record, write_frontend
from dropclass_lib.tables import write_table
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.trainer import train

RATE = 16000
SPEAKERS = {"alice": 110.0, "bob": 180.0, "carol": 260.0}
UTTS_PER_SPK = 3
TINY_TRAINING = {
    "model": {"extractor": "tdnn", "extractor_opts": {"frame_dims": [16, 16, 16, 16, 32], "emb_dim": 12},
              "head": "softmax"},
    "data": {"sampler": "random", "batch_size": 4, "min_frames": 20, "max_frames": 30, "min_utt_frames": 20,
             "num_workers": 0},
    "optim": {"lr": 0.05},
    "train": {"num_iters": 12, "checkpoint_every": 4, "keep_checkpoints": 3, "log_every": 4},
}


def word(f0: float, rng: np.random.Generator, seconds: float = 1.2, rate: int = RATE) -> np.ndarray:
    """A 'word': a harmonic tone between two stretches of near-silence (the VAD removes those)."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = (t > 0.3) & (t < 0.9)
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6)) * 0.2 * voiced
    return (x + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


def make_audio_data_dir(root: Path) -> Path:
    """``root/data`` with wav.scp (WAV files under ``root/wav``), utt2spk, spk2utt."""
    rng = np.random.default_rng(0)
    data, wav, utt2spk, spk2utt = root / "data", {}, {}, {}
    for spk, f0 in SPEAKERS.items():
        for i in range(UTTS_PER_SPK):
            utt = f"{spk}-w{i}"
            path = root / "wav" / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, word(f0 * (1 + 0.03 * i), rng), RATE, subtype="FLOAT")
            wav[utt], utt2spk[utt] = str(path), spk
            spk2utt.setdefault(spk, []).append(utt)
    write_table(data / "wav.scp", wav)
    write_table(data / "utt2spk", utt2spk)
    write_table(data / "spk2utt", spk2utt)
    return data


def feature_config(root: Path, dither: float) -> Path:
    """The library's default MFCC options with non-default cepstra (a wrong front end then fails)
    and ``dither``."""
    feats = yaml.safe_load(default_config_path("mfcc").read_text())
    feats.update(num_mel_bins=24, num_ceps=20, dither=dither)
    path = root / f"mfcc_dither{dither:g}.yaml"
    path.write_text(yaml.safe_dump(feats))
    return path


def run_front_end(data: Path, feat_conf: Path, work: Path, cmn_window: int) -> Path:
    """The recipe's front end on ``data``: features, VAD, CMN + silence removal; returns the
    data dir of CMN'd voiced frames."""
    load_script("steps/make_features.py").main(["--nj", "1", "--config", str(feat_conf), str(data), str(work / "mfcc")])
    load_script("steps/compute_vad.py").main(["--nj", "1", str(data), str(work / "mfcc")])
    no_sil = work / f"{data.name}_no_sil"
    load_script("steps/prepare_feats_for_egs.py").main(["--nj", "1", "--cmn-window", str(cmn_window), str(data),
                                                        str(no_sil), str(work / "feats_no_sil")])
    return no_sil


def make_package(root: Path, dither: float = 0.0, cmn_window: int = 50) -> tuple[Path, Path]:
    """Train the tiny system on the recipe's front end; return ``(package dir, data dir)``."""
    data = make_audio_data_dir(root)
    feat_conf = feature_config(root, dither)
    no_sil = run_front_end(data, feat_conf, root / "work", cmn_window)
    exp = root / "exp"
    train(from_dict(TrainConfig, TINY_TRAINING), no_sil, exp)
    write_frontend(exp, frontend_record(data / "feats_config.yaml", CONF_DIR / "vad.yaml", cmn_window))
    return exp, data
