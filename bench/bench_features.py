#!/usr/bin/env python3
"""Benchmark the whole make_features step: x real time per core.

Writes MINUTES of synthetic 16 kHz audio (chirps, harmonics and noise in utterances of
UTT_SECONDS) into a temporary data dir, or uses --data-dir's wav.scp, then runs
steps/make_features.py as a subprocess for each --nj, from a fresh feature dir each time.
Reports, for the whole step (interpreter start and imports included): audio seconds per wall
second, that divided by the number of jobs (x real time per core), and audio seconds per CPU
second of the step's processes (x real time per core measured on CPU time, which does not
depend on how busy a shared machine is); plus the jobs' own speed from their logs (audio /
wall time spent reading, extracting and writing, after start-up).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dropclass_lib.cli import ArgumentParser, run_main  # noqa: E402
from dropclass_lib.tables import read_key_rest  # noqa: E402


def synth_data_dir(d: Path, minutes: float, utt_seconds: float, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    (d / "wav").mkdir(parents=True)
    n_utts = max(1, round(minutes * 60 / utt_seconds))
    n = int(utt_seconds * 16000)
    t = np.arange(n) / 16000
    wav, u2s = [], []
    for i in range(n_utts):
        f0 = rng.uniform(90, 250)
        x = sum(np.sin(2 * np.pi * k * f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t)) * t) / k for k in range(1, 6))
        x += np.sin(2 * np.pi * (300 * t + 400 * t ** 2))  # chirp
        x *= (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > -0.3)  # pauses
        x = 0.2 * x / np.abs(x).max() + 0.003 * rng.standard_normal(n)
        path = d / "wav" / f"utt{i:05d}.wav"
        soundfile.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
        wav.append(f"utt{i:05d} {path}\n")
        u2s.append(f"utt{i:05d} spk{i % 10}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2spk").write_text("".join(u2s))
    return n_utts * utt_seconds


def audio_seconds(data_dir: Path) -> float:
    return sum(soundfile.info(rx).duration for rx in read_key_rest(data_dir / "wav.scp").values())


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, default=20.0, help="minutes of synthetic audio")
    p.add_argument("--utt-seconds", type=float, default=8.0, help="length of each synthetic utterance")
    p.add_argument("--data-dir", default=None, help="benchmark this data dir's wav.scp (plain files) instead")
    p.add_argument("--feat-type", default="mfcc", choices=["mfcc", "fbank"])
    p.add_argument("--nj", default="1,2", help="comma-separated job counts to time")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_features."))
    try:
        src = work / "data"
        if args.data_dir:
            src.mkdir()
            for name in ("wav.scp", "utt2spk"):
                shutil.copy(Path(args.data_dir) / name, src / name)
            seconds = audio_seconds(src)
        else:
            t0 = time.time()
            seconds = synth_data_dir(src, args.minutes, args.utt_seconds)
            print(f"synthesised {seconds / 60:.1f} min of audio in {time.time() - t0:.1f} s")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        for nj in [int(x) for x in args.nj.split(",")]:
            d = work / f"data_nj{nj}"
            shutil.copytree(src, d, ignore=shutil.ignore_patterns("wav"))
            cmd = [sys.executable, str(ROOT / "steps" / "make_features.py"), "--nj", str(nj),
                   "--feat-type", args.feat_type, str(d), str(work / f"feats_nj{nj}")]
            t0, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, env=env, check=True, stderr=subprocess.DEVNULL)
            wall, cpu1 = time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            logs = [(d / "log" / f"make_{args.feat_type}_{d.name}.{j}.log").read_text() for j in range(1, nj + 1)]
            job_secs = [float(re.search(r"in ([\d.]+) s", text).group(1)) for text in logs]
            steady = seconds / sum(job_secs)
            print(f"{args.feat_type} --nj {nj}: {seconds:.0f} s of audio, whole step {wall:.2f} s wall = "
                  f"{seconds / wall:.0f}x real time, {seconds / wall / nj:.0f}x real time per core; "
                  f"{cpu:.2f} CPU s = {seconds / cpu:.0f}x real time per CPU-second; "
                  f"inside the jobs {steady:.0f}x real time per core (wall)")
            print("  command:", " ".join(cmd[1:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
