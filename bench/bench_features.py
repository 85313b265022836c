#!/usr/bin/env python3
"""Benchmark the whole make_features step: x real time per core.

Builds a data dir of HOURS of 16 kHz audio, or uses --data-dir's wav.scp, then runs
steps/make_features.py as a subprocess, --repeat times for each --nj, from a fresh feature dir
each time. The default size is that of a small real corpus (10 hours): the step's fixed cost
(starting Python, importing torch and lhotse: about 2.5 s on a 2-core Xeon) is then amortised as on a real
corpus, and it is measured on its own (the step on a one-utterance data dir) so the rate for
any size can be read off. VoxCeleb1+2 (about 2,700 hours) amortises it completely.

The synthetic audio (chirps, harmonics, pauses and noise in utterances of UTT_SECONDS) is
--distinct-minutes of distinct files, listed in wav.scp as many times as needed under distinct
utterance ids: every utterance is read, dithered (seeded by its id) and analysed in full, and
the files come from the page cache either way, so the step does the work of a corpus of
distinct files while the benchmark does not write gigabytes.

Reported per run, for the whole step (interpreter start, imports and exit included): audio
seconds per wall second divided by the number of jobs (x real time per core; depends on how
busy the shared machine is), audio seconds per CPU second of the step's processes (x real time
per CPU-second; depends on it less, through shared caches), the minor page faults of its
processes (memory touched anew, as buffers freed to the kernel and allocated again are; compare
the one-utterance step's), and the jobs' own speed from their logs (after start-up). Then the
best and median over the repeats, with the load average before and after.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import resource
import shutil
import statistics
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


def synth_wavs(d: Path, minutes: float, utt_seconds: float, seed: int = 0) -> list[Path]:
    """Write ``minutes`` of distinct synthetic utterances (16-bit wav) under ``d``."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    n = int(utt_seconds * 16000)
    t = np.arange(n) / 16000
    paths = []
    for i in range(max(1, round(minutes * 60 / utt_seconds))):
        f0 = rng.uniform(90, 250)
        x = sum(np.sin(2 * np.pi * k * f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t)) * t) / k for k in range(1, 6))
        x += np.sin(2 * np.pi * (300 * t + 400 * t ** 2))  # chirp
        x *= (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > -0.3)  # pauses
        x = 0.2 * x / np.abs(x).max() + 0.003 * rng.standard_normal(n)
        paths.append(d / f"w{i:05d}.wav")
        soundfile.write(paths[-1], x.astype(np.float32), 16000, subtype="PCM_16")
    return paths


def write_data_dir(d: Path, wavs: list[Path], num_utts: int) -> None:
    """wav.scp and utt2spk of ``num_utts`` utterances cycling through ``wavs``."""
    d.mkdir(parents=True)
    ids = [f"utt{i:06d}" for i in range(num_utts)]
    (d / "wav.scp").write_text("".join(f"{u} {wavs[i % len(wavs)]}\n" for i, u in enumerate(ids)))
    (d / "utt2spk").write_text("".join(f"{u} spk{i % 50:02d}\n" for i, u in enumerate(ids)))


def audio_seconds(data_dir: Path) -> float:
    return sum(soundfile.info(rx).duration for rx in read_key_rest(data_dir / "wav.scp").values())


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def become_subreaper() -> None:
    """Have the step's orphans (its fork server, which reaps the jobs and outlives the step by a
    moment) reparented to this process, so that their CPU time and page faults count as the
    step's (Linux; elsewhere they are missed)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def reap_orphans() -> None:
    """Wait for every remaining descendant handed to this subreaper."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def run_step(src: Path, work: Path, tag: str, nj: int, feat_type: str) -> tuple[float, float, int, list[str]]:
    """Run the step on a copy of ``src``: (wall s, CPU s and minor page faults of all its
    processes, job logs)."""
    d = work / f"data_{tag}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(work / f"feats_{tag}", ignore_errors=True)
    shutil.copytree(src, d)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "steps" / "make_features.py"), "--nj", str(nj),
           "--feat-type", feat_type, str(d), str(work / f"feats_{tag}")]
    t0, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, check=True, stderr=subprocess.DEVNULL)
    wall = time.time() - t0
    reap_orphans()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    logs = [(d / "log" / f"make_{feat_type}_{d.name}.{j}.log").read_text() for j in range(1, nj + 1)]
    return wall, cpu, cpu1.ru_minflt - cpu0.ru_minflt, logs


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--hours", type=float, default=10.0, help="hours of audio in the benchmark data dir")
    p.add_argument("--distinct-minutes", type=float, default=30.0,
                   help="minutes of distinct synthetic audio files that the data dir cycles through")
    p.add_argument("--utt-seconds", type=float, default=8.0, help="length of each synthetic utterance")
    p.add_argument("--data-dir", default=None, help="benchmark this data dir's wav.scp (plain files) instead")
    p.add_argument("--feat-type", default="mfcc", choices=["mfcc", "fbank"])
    p.add_argument("--nj", default="1,2", help="comma-separated job counts to time")
    p.add_argument("--repeat", type=int, default=3, help="runs per job count (best and median are reported)")
    args = p.parse_args(argv)
    become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="bench_features."))
    try:
        src = work / "data"
        print(f"before: {load()} on {os.cpu_count()} CPUs")
        if args.data_dir:
            src.mkdir()
            for name in ("wav.scp", "utt2spk"):
                shutil.copy(Path(args.data_dir) / name, src / name)
            seconds = audio_seconds(src)
            print(f"{args.data_dir}: {seconds / 3600:.2f} hours of audio")
        else:
            t0 = time.time()
            wavs = synth_wavs(work / "wav", min(args.distinct_minutes, args.hours * 60), args.utt_seconds)
            num_utts = max(1, round(args.hours * 3600 / args.utt_seconds))
            write_data_dir(src, wavs, num_utts)
            seconds = num_utts * args.utt_seconds
            print(f"{seconds / 3600:.2f} hours of audio: {num_utts} utterances of {args.utt_seconds:g} s cycling "
                  f"through {len(wavs)} distinct files (synthesised in {time.time() - t0:.1f} s)")
        one = work / "one"
        write_data_dir(one, [Path(read_key_rest(src / "wav.scp").popitem()[1])], 1)
        fixed = [run_step(one, work, "one", 1, args.feat_type)[:3] for _ in range(args.repeat)]
        print(f"fixed cost of the step (one-utterance data dir, --nj 1): best {min(w for w, _, _ in fixed):.2f} s, "
              f"median {statistics.median(w for w, _, _ in fixed):.2f} s wall, "
              f"{statistics.median(f for _, _, f in fixed) / 1000:.0f}k page faults")
        for nj in [int(x) for x in args.nj.split(",")]:
            before, per_core, per_cpu = load(), [], []
            for r in range(args.repeat):
                wall, cpu, faults, logs = run_step(src, work, f"nj{nj}", nj, args.feat_type)
                job_secs = [float(re.search(r"in ([\d.]+) s", text).group(1)) for text in logs]
                per_core.append(seconds / wall / nj)
                per_cpu.append(seconds / cpu)
                print(f"  {args.feat_type} --nj {nj} run {r + 1}: whole step {wall:.2f} s wall = "
                      f"{per_core[-1]:.0f}x real time per core; {cpu:.2f} CPU s = {per_cpu[-1]:.0f}x real "
                      f"time per CPU-second; {faults / 1000:.0f}k page faults; "
                      f"inside the jobs {seconds / sum(job_secs):.0f}x per core (wall)")
            print(f"{args.feat_type} --nj {nj}, whole step on {seconds / 3600:.2f} h, {args.repeat} runs: "
                  f"x real time per core best {max(per_core):.0f}, median {statistics.median(per_core):.0f}; "
                  f"per CPU-second best {max(per_cpu):.0f}, median {statistics.median(per_cpu):.0f} "
                  f"({before} before, {load()} after)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
