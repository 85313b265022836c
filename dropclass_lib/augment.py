#!/usr/bin/env python3
"""Kaldi voxceleb-v2 data augmentation: reverberation with simulated RIRs, MUSAN noise, music, babble.

How the augmented audio reaches the features step: the augmented data directory's wav.scp holds,
per utterance, a pipe through this module,

    UTT-noise python3 -m dropclass_lib.augment --setup DIR/augment.yaml --kind noise --utt UTT-noise 'SOURCE' |

where SOURCE is the clean utterance's own wav.scp value (a path, or itself a pipe such as the
ffmpeg decoding of VoxCeleb2). Nothing is written to disk (a 1M-utterance augmented set would be
hundreds of GB of wav); ``read_audio`` runs the pipe where features are computed, exactly as
Kaldi runs wav-reverberate. The pipe draws its impulse response or noises from a generator seeded
with (setup seed, utterance id): the same utterance always gets the same augmentation, and every
utterance its own draw.

Semantics follow Kaldi (steps/data/augment_data_dir.py, reverberate_data_dir.py, wav-reverberate):
* reverb: a room set chosen by weight, an RIR uniformly within it; the output is the convolution
  shifted to the RIR's direct path (its peak) and cut to the input length, rescaled to the input power;
* noise (foreground): from t = 0, a random noise at a random SNR from ``noise_snrs``, the next one
  starting ``noise_interval`` seconds after it ends, until the utterance is covered;
* music (background): one random music file, repeated to the utterance length, SNR from ``music_snrs``;
* babble (background): ``babble_speakers`` (a random count) distinct MUSAN speech files, each
  repeated to the length and each at its own SNR from ``babble_snrs``.
SNRs are relative to the power of the whole (clean) utterance. Lengths never change, so the clean
utterance's VAD applies to its augmented copies (Kaldi v2 reuses it the same way).
"""

from __future__ import annotations

import hashlib
import io
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

from dropclass_lib.audio import read_audio
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, save_config
from dropclass_lib.datadir import DataDir, read_utt_table
from dropclass_lib.errors import UserError

KINDS = ("reverb", "noise", "music", "babble")
SAMPLE_RATE = 16000


@dataclass
class AugmentConfig:
    """Augmentation settings (Kaldi voxceleb v2 values as defaults)."""

    seed: int = 777                      # seeds the subset choice and (with the utt id) each utterance's draw
    kinds: list[str] = field(default_factory=lambda: list(KINDS))  # one augmented copy per kind: utt suffix -KIND
    num_aug_utts: int = 1000000          # random subset of all (utterance, kind) copies kept; Kaldi: 1M
    noise_snrs: list[float] = field(default_factory=lambda: [15.0, 10.0, 5.0, 0.0])
    noise_interval: float = 1.0          # seconds between foreground noises
    music_snrs: list[float] = field(default_factory=lambda: [15.0, 10.0, 8.0, 5.0])
    babble_snrs: list[float] = field(default_factory=lambda: [20.0, 17.0, 15.0, 13.0])
    babble_speakers: list[int] = field(default_factory=lambda: [3, 4, 5, 6, 7])
    rir_weights: list[float] = field(default_factory=lambda: [0.5, 0.5])  # one per rir dir, in order

    def validate(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise UserError(f"kinds must be distinct values among {', '.join(KINDS)}, got {self.kinds}")
        if self.num_aug_utts < 1:
            raise UserError(f"num_aug_utts must be >= 1, got {self.num_aug_utts}")
        for name in ("noise_snrs", "music_snrs", "babble_snrs", "babble_speakers", "rir_weights"):
            if not getattr(self, name):
                raise UserError(f"{name} must not be empty")
        if self.noise_interval < 0 or min(self.babble_speakers) < 1 or min(self.rir_weights) < 0 \
                or sum(self.rir_weights) <= 0:
            raise UserError("noise_interval >= 0, babble_speakers >= 1 and rir_weights >= 0 (not all 0) required")


@dataclass
class AugmentSetup:
    """What an augmentation pipe needs: the settings and the source data directories (absolute)."""

    config: AugmentConfig = field(default_factory=AugmentConfig)
    noise_dir: str = ""                  # MUSAN noise data dir (wav.scp + utt2dur)
    music_dir: str = ""                  # MUSAN music data dir
    speech_dir: str = ""                 # MUSAN speech data dir (babble)
    rir_dirs: list[str] = field(default_factory=list)  # one data dir per room set

    def validate(self) -> None:
        self.config.validate()
        needed = {"noise": ["noise_dir"], "music": ["music_dir"], "babble": ["speech_dir"], "reverb": []}
        dirs = []
        for kind in self.config.kinds:
            for name in needed[kind]:
                if not getattr(self, name):
                    raise UserError(f"augmentation kind {kind!r} needs {name}")
                dirs.append(getattr(self, name))
        if "reverb" in self.config.kinds:
            if len(self.rir_dirs) != len(self.config.rir_weights):
                raise UserError(f"{len(self.rir_dirs)} rir dirs but {len(self.config.rir_weights)} rir_weights")
            dirs += self.rir_dirs
        for d in dirs:
            if not (Path(d) / "wav.scp").is_file():
                raise UserError(f"augmentation source {d}/wav.scp does not exist (prepare MUSAN and the RIRs first)")


@dataclass
class Addition:
    """One additive signal: ``path`` scaled to ``snr`` dB, from sample ``offset``; ``repeat`` tiles it."""

    path: str
    snr: float
    offset: int
    repeat: bool


@dataclass
class Plan:
    """The augmentation drawn for one utterance: an impulse response or additive signals."""

    kind: str
    rir: str | None = None
    additions: list[Addition] = field(default_factory=list)


class Sources:
    """The source lists of a setup, loaded lazily (a pipe for a reverb copy reads no MUSAN list)."""

    def __init__(self, setup: AugmentSetup):
        self.setup = setup
        self._cache: dict[str, tuple[list[str], dict[str, str], dict[str, float] | None]] = {}

    def get(self, data_dir: str, need_dur: bool = False) -> tuple[list[str], dict[str, str], dict[str, float] | None]:
        """``(sorted ids, wav.scp, utt2dur)`` of ``data_dir``."""
        if data_dir not in self._cache:
            d = Path(data_dir)
            wav = read_utt_table(d / "wav.scp", "wav.scp")
            dur = read_utt_table(d / "utt2dur", "utt2dur") if need_dur else None
            if not wav:
                raise UserError(f"{d}/wav.scp is empty")
            self._cache[data_dir] = (sorted(wav), wav, dur)
        return self._cache[data_dir]


def utterance_rng(seed: int, utt: str) -> np.random.Generator:
    """A generator that depends only on the setup seed and the utterance id."""
    digest = hashlib.sha256(f"{seed}\0{utt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_plan(kind: str, utt: str, num_samples: int, sources: Sources) -> Plan:
    """Draw the augmentation of utterance ``utt`` (``num_samples`` long) for ``kind``."""
    cfg = sources.setup.config
    rng = utterance_rng(cfg.seed, utt)
    if kind == "reverb":
        weights = np.asarray(cfg.rir_weights, dtype=float)
        room_set = sources.setup.rir_dirs[rng.choice(len(weights), p=weights / weights.sum())]
        ids, wav, _ = sources.get(room_set)
        return Plan(kind, rir=wav[ids[rng.integers(len(ids))]])
    if kind == "noise":
        ids, wav, dur = sources.get(sources.setup.noise_dir, need_dur=True)
        additions, t = [], 0.0
        while t * SAMPLE_RATE < num_samples:
            noise = ids[rng.integers(len(ids))]
            additions.append(Addition(wav[noise], float(rng.choice(cfg.noise_snrs)), int(round(t * SAMPLE_RATE)), False))
            step = dur[noise] + cfg.noise_interval
            if step <= 0:
                raise UserError(f"{sources.setup.noise_dir}/utt2dur: noise {noise!r} has duration 0 and noise_interval is 0")
            t += step
        return Plan(kind, additions=additions)
    if kind == "music":
        ids, wav, _ = sources.get(sources.setup.music_dir)
        music = ids[rng.integers(len(ids))]
        return Plan(kind, additions=[Addition(wav[music], float(rng.choice(cfg.music_snrs)), 0, True)])
    if kind == "babble":
        ids, wav, _ = sources.get(sources.setup.speech_dir)
        count = min(int(rng.choice(cfg.babble_speakers)), len(ids))
        chosen = rng.choice(len(ids), size=count, replace=False)
        return Plan(kind, additions=[Addition(wav[ids[i]], float(rng.choice(cfg.babble_snrs)), 0, True)
                                     for i in chosen])
    raise UserError(f"unknown augmentation kind {kind!r} (known: {', '.join(KINDS)})")


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve, align to the direct path (the RIR's peak), keep the input length and power."""
    n = len(x)
    if n == 0:
        return x.copy()
    peak = int(np.argmax(np.abs(rir)))
    size = n + len(rir) - 1
    nfft = 1 << (size - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(rir, nfft), nfft)[peak:peak + n]
    p_out = power(y)
    return (y * np.sqrt(power(x) / p_out) if p_out > 0 else y).astype(np.float32)


def add_signal(x: np.ndarray, noise: np.ndarray, snr_db: float, offset: int, repeat: bool,
               signal_power: float) -> None:
    """Add ``noise`` to ``x`` in place, scaled to ``snr_db`` below ``signal_power``."""
    p_noise = power(noise)
    if p_noise == 0 or offset >= len(x):
        return
    scaled = noise * np.sqrt(10 ** (-snr_db / 10) * signal_power / p_noise)
    if repeat:
        scaled = np.tile(scaled, -(-(len(x) - offset) // len(scaled)))
    span = min(len(scaled), len(x) - offset)
    x[offset:offset + span] += scaled[:span]


def render(x: np.ndarray, plan: Plan, utt: str = "") -> np.ndarray:
    """Apply ``plan`` to the clean samples ``x`` (float32 mono, 16 kHz)."""
    if plan.rir is not None:
        rir, _ = read_audio(plan.rir, utt, expected_rate=SAMPLE_RATE)
        return reverberate(x, rir)
    y = x.astype(np.float64)
    p_signal = power(x)
    for a in plan.additions:
        noise, _ = read_audio(a.path, utt, expected_rate=SAMPLE_RATE)
        add_signal(y, noise, a.snr, a.offset, a.repeat, p_signal)
    return y.astype(np.float32)


def wav_bytes(x: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM wav, clipped (libsndfile would otherwise wrap out-of-range samples)."""
    buf = io.BytesIO()
    soundfile.write(buf, np.clip(x, -1.0, 32767 / 32768), rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def pipe_entry(setup_path: str | Path, kind: str, aug_utt: str, source_rx: str) -> str:
    """The wav.scp value that produces ``aug_utt`` from the clean entry ``source_rx``."""
    return (f"python3 -m dropclass_lib.augment --setup {shlex.quote(str(Path(setup_path).resolve()))} "
            f"--kind {kind} --utt {shlex.quote(aug_utt)} {shlex.quote(source_rx)} |")


def load_setup(path: str | Path) -> AugmentSetup:
    return load_config(path, AugmentSetup)


def make_augmented_dir(clean: DataDir, setup: AugmentSetup, out_dir: str | Path) -> DataDir:
    """Write ``out_dir/augment.yaml`` and return the augmented data directory (not yet written).

    Of all (utterance, kind) copies, ``num_aug_utts`` chosen at random (all if fewer) are kept,
    with ids ``UTT-KIND``, the clean speaker, a pipe wav.scp entry and, when the clean directory
    has one, the clean vad.scp entry.
    """
    if clean.wav is None:
        raise UserError("the clean data directory has no wav.scp")
    setup.validate()
    out_dir = Path(out_dir)
    setup_path = out_dir / "augment.yaml"
    save_config(setup, setup_path)
    cfg = setup.config
    utts = clean.utts()
    pool = [(u, k) for u in utts for k in cfg.kinds]
    rng = np.random.default_rng(cfg.seed)
    chosen = sorted(rng.choice(len(pool), size=min(cfg.num_aug_utts, len(pool)), replace=False))
    utt2spk, wav, vad = {}, {}, {}
    for i in chosen:
        utt, kind = pool[i]
        aug = f"{utt}-{kind}"
        if aug in clean.utt2spk:
            raise UserError(f"augmented id {aug!r} is already an utterance of the clean data")
        utt2spk[aug] = clean.utt2spk[utt]
        wav[aug] = pipe_entry(setup_path, kind, aug, clean.wav[utt])
        if clean.vad is not None:
            vad[aug] = clean.vad[utt]
    return DataDir(utt2spk=utt2spk, wav=wav, vad=vad if clean.vad is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m dropclass_lib.augment")
    parser.add_argument("--setup", required=True, help="augment.yaml written with the augmented data dir")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--utt", required=True, help="augmented utterance id (seeds the draw)")
    parser.add_argument("source", help="the clean utterance's wav.scp value (path or 'command |')")
    args = parser.parse_args(argv)
    setup = load_setup(args.setup)
    x, _ = read_audio(args.source, args.utt, expected_rate=SAMPLE_RATE)
    plan = draw_plan(args.kind, args.utt, len(x), Sources(setup))
    sys.stdout.buffer.write(wav_bytes(render(x, plan, args.utt)))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    run_main(main)
