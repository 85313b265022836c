#!/usr/bin/env python3
"""Benchmark in-process augmentation rendering: x real time per core, per kind and overall.

Writes --utts synthetic utterances of --seconds (speech-like harmonics with pauses, 16-bit wav,
--speakers speakers) as a clean data dir, plus stand-ins for the corpora (a noise data dir of
2-10 s noises with utt2dur, an RIR data dir of 0.3-0.8 s decaying impulse responses), then makes
one augmented data dir per kind and renders every utterance in this process through one
:class:`dropclass_lib.augment.Renderer` per kind, as a feature job does (each list read once).
Rendering includes decoding the clean wav and the noise/RIR files. The speed is audio seconds
per CPU second of this process (x real time per core: independent of other load on the
machine, as far as caches allow). The overall figure is for reverberation (sim_reverb and file
RIRs) and noise, the kinds of the task it was written for; self_noise and self_babble are
reported too.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dropclass_lib.augment import AugmentConfig, AugmentSetup, Renderer, make_augmented_dir  # noqa: E402
from dropclass_lib.cli import ArgumentParser, run_main  # noqa: E402
from dropclass_lib.datadir import DataDir  # noqa: E402
from dropclass_lib.datadir.utt2aug import parse_aug  # noqa: E402

RATE = 16000
OVERALL = ("sim_reverb", "reverb", "noise")
KINDS = (*OVERALL, "self_noise", "self_babble")


def write_wav(path: Path, x: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(x, -1, 1).astype(np.float32), RATE, subtype="PCM_16")
    return str(path)


def make_sources(root: Path, utts: int, speakers: int, seconds: float, seed: int = 0) -> dict[str, Path]:
    """The clean, noise and RIR data directories."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    clean = DataDir(utt2spk={}, wav={})
    for i in range(utts):
        f0 = rng.uniform(90, 250)
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 6))
        x *= np.sin(2 * np.pi * rng.uniform(1, 3) * t) > -0.3
        utt = f"spk{i % speakers:02d}-u{i:04d}"
        clean.utt2spk[utt] = utt.split("-")[0]
        clean.wav[utt] = write_wav(root / "wav" / f"{utt}.wav", 0.2 * x / 2.3 + 0.003 * rng.standard_normal(n))
    noise = DataDir(utt2spk={}, wav={}, utt2dur={})
    for i in range(12):
        dur = rng.uniform(2, 10)
        utt = f"noise-{i:03d}"
        noise.utt2spk[utt] = utt
        noise.wav[utt] = write_wav(root / "noise" / f"{utt}.wav", 0.1 * rng.standard_normal(int(dur * RATE)))
        noise.utt2dur[utt] = round(int(dur * RATE) / RATE, 4)
    rirs = DataDir(utt2spk={}, wav={})
    for i in range(20):
        m = int(rng.uniform(0.3, 0.8) * RATE)
        h = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)
        h[0] = 1.0
        utt = f"rir-{i:03d}"
        rirs.utt2spk[utt] = "room"
        rirs.wav[utt] = write_wav(root / "rirs" / f"{utt}.wav", h / np.abs(h).max())
    dirs = {"clean": root / "clean", "noise": root / "noise_dir", "rirs": root / "rir_dir"}
    for name, dd in (("clean", clean), ("noise", noise), ("rirs", rirs)):
        dd.write(dirs[name])
    return dirs


def render_kind(root: Path, dirs: dict[str, Path], kind: str) -> tuple[float, float]:
    """(audio seconds, CPU seconds) of rendering every utterance of ``kind`` in one job."""
    setup = AugmentSetup(config=AugmentConfig(kinds=[kind], rir_weights=[1.0]), noise_dir=str(dirs["noise"]),
                         rir_dirs=[str(dirs["rirs"])])
    aug = make_augmented_dir(dirs["clean"], setup, root / f"aug_{kind}")
    records = [(utt, parse_aug(aug.aug[utt])) for utt in aug.utts()]
    renderer = Renderer()
    start, samples = time.process_time(), 0
    for utt, record in records:
        samples += len(renderer.audio(record, utt))
    return samples / RATE, time.process_time() - start


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--utts", type=int, default=40, help="utterances per kind")
    p.add_argument("--speakers", type=int, default=8, help="speakers of the clean data (self_babble)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each utterance")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_augment.") as tmp:
        root = Path(tmp)
        dirs = make_sources(root, args.utts, args.speakers, args.seconds)
        # One-time costs of a job, left out of the rates: scipy.signal's import (about a second,
        # by sim_reverb and self_noise, for the synthetic impulse responses and noise) and the
        # first file read.
        import dropclass_lib.corpora.channel  # noqa: F401
        clean = DataDir.load(dirs["clean"])
        Renderer().audio(clean.wav[clean.utts()[0]], "warm-up")
        results = {kind: render_kind(root, dirs, kind) for kind in KINDS}
    for kind, (audio, cpu) in results.items():
        print(f"figure: augment_x_realtime_per_core[{kind}] {audio / cpu:.0f} x  ({audio:.0f} s of audio, {cpu:.2f} CPU s)")
    audio = sum(results[k][0] for k in OVERALL)
    cpu = sum(results[k][1] for k in OVERALL)
    print(f"figure: augment_x_realtime_per_core {audio / cpu:.0f} x  ({' + '.join(OVERALL)}: {audio:.0f} s of audio, "
          f"{cpu:.2f} CPU s)")
    return 0


if __name__ == "__main__":
    run_main(main)
