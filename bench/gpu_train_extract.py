#!/usr/bin/env python3
"""GPU check of the VoxCeleb recipe's training and extraction (at most 8 minutes on one GPU).

Trains the recipe's model (egs/voxceleb/conf/train_dropclass.yaml: x-vector TDNN, AM-softmax
over --num-spk classes, DropClass, SGD) through the project's trainer on synthetic features
written as a Kaldi archive (--num-spk x --utts-per-spk utterances of --utt-frames frames), with
its DataLoader workers reading the crops, in batches of --batch-size x --frames under the
trainer's bfloat16 autocast (train.amp, on GPU only), for --iters iterations. Then extracts
embeddings of --extract-utts utterances of 8 s (800 frames) with the trained final.pt through
dropclass_lib.embeddings.embed_utterances on the same device. Prints, as ``figure: NAME VALUE
UNIT`` lines: training iterations/s and frames/s (the first iteration, worker start-up,
excluded), peak GPU memory, the fraction of training time spent waiting for batches, and
extraction x real time (seconds of features per wall second).

  python bench/gpu_train_extract.py                       # the defaults: batch 500 x 350, 300 iterations
  python bench/gpu_train_extract.py --device cpu --iters 3 --batch-size 8 --frames 20 --num-spk 10 \\
      --utt-frames 30 --frame-dims 8,8,8,8,16 --emb-dim 8 --extract-utts 2 --workers 0   # a CPU smoke run
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_training  # noqa: E402
from dropclass_lib.cli import ArgumentParser, run_main  # noqa: E402
from dropclass_lib.config import load_config  # noqa: E402
from dropclass_lib.embeddings import embed_utterances  # noqa: E402
from dropclass_lib.errors import UserError  # noqa: E402
from dropclass_lib.model_io import load_model  # noqa: E402
from dropclass_lib.training.config import TrainConfig  # noqa: E402
from dropclass_lib.training.distributed import pick_device  # noqa: E402
from dropclass_lib.training.trainer import train  # noqa: E402

RECIPE_CONF = ROOT / "egs" / "voxceleb" / "conf" / "train_dropclass.yaml"
EXTRACT_FRAMES = 800  # 8 s at 100 frames/s


def figure(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"figure: {name} {value:.4g} {unit}" + (f"  ({note})" if note else ""), flush=True)


def recipe_config(args, device: torch.device) -> TrainConfig:
    overrides = {"data.batch_size": args.batch_size, "data.min_frames": args.frames, "data.max_frames": args.frames,
                 "data.min_utt_frames": args.frames, "data.num_workers": args.workers,
                 "dropclass.num_drop": min(2000, args.num_spk - args.batch_size),
                 "train.num_iters": args.iters, "train.checkpoint_every": 10**9, "train.log_every": max(1, args.iters // 5),
                 "train.device": device.type}
    if args.frame_dims:
        overrides["model.extractor_opts.frame_dims"] = [int(d) for d in args.frame_dims.split(",")]
    if args.emb_dim:
        overrides["model.extractor_opts.emb_dim"] = args.emb_dim
    return load_config(RECIPE_CONF, TrainConfig, overrides)


def measure_extraction(model_path: Path, args, device: torch.device) -> None:
    extractor = load_model(model_path, map_location=device).extractor
    rng = np.random.default_rng(1)
    feats = [(f"x{i}", rng.standard_normal((EXTRACT_FRAMES, args.dim)).astype(np.float32))
             for i in range(args.extract_utts)]
    list(embed_utterances(extractor, feats[:1], device=device))  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = list(embed_utterances(extractor, feats, device=device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    figure(f"extract_x_realtime[{device.type}]", len(out) * EXTRACT_FRAMES / 100 / wall, "x",
           f"{len(out)} utterances of {EXTRACT_FRAMES} frames in {wall:.2f} s, {out[0][1].shape[0]}-dim embeddings")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--iters", type=int, default=300, help="training iterations")
    p.add_argument("--batch-size", type=int, default=500, help="utterances (distinct speakers) per batch")
    p.add_argument("--frames", type=int, default=350, help="crop length")
    p.add_argument("--num-spk", type=int, default=5994, help="speakers (head classes) of the synthetic features")
    p.add_argument("--utts-per-spk", type=int, default=2)
    p.add_argument("--utt-frames", type=int, default=400, help="frames of each synthetic training utterance")
    p.add_argument("--dim", type=int, default=30, help="feature dimension (the recipe's MFCC: 30)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers (the recipe's conf: 4)")
    p.add_argument("--frame-dims", default=None, help="comma-separated TDNN frame-layer widths (default: the recipe's)")
    p.add_argument("--emb-dim", type=int, default=None, help="embedding width (default: the recipe's 512)")
    p.add_argument("--extract-utts", type=int, default=2000, help="8-s utterances to extract")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    if args.utt_frames < args.frames or args.num_spk <= args.batch_size:
        raise UserError("need --utt-frames >= --frames and --num-spk > --batch-size")
    device = pick_device(args.device, 0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}; batch {args.batch_size} x {args.frames} frames, "
          f"{args.num_spk} classes, {args.iters} iterations, {args.workers} loader worker(s)", flush=True)
    cfg = recipe_config(args, device)
    with tempfile.TemporaryDirectory(prefix="gpu_train_extract.") as tmp:
        t = time.perf_counter()
        bench_training.make_data(Path(tmp) / "data", args.num_spk, args.utts_per_spk, args.utt_frames, args.dim)
        print(f"synthetic features written in {time.perf_counter() - t:.1f} s", flush=True)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = train(cfg, Path(tmp) / "data", Path(tmp) / "exp")
        st = result.stats
        amp = "bf16 autocast" if device.type == "cuda" and cfg.train.amp else "float32"
        figure(f"train_it_per_s[{device.type}]", st.iterations / st.seconds, "it/s",
               f"{st.iterations} iterations after the first (start-up {st.startup_s:.1f} s), {amp}")
        figure(f"train_frames_per_s[{device.type}]", st.frames_per_s, "frames/s")
        figure(f"train_data_wait_fraction[{device.type}]", st.wait_fraction, "of the time",
               f"longest wait {st.max_wait_s * 1000:.0f} ms")
        if device.type == "cuda":
            figure("train_peak_gpu_memory_gib", torch.cuda.max_memory_allocated(device) / 2**30, "GiB")
        measure_extraction(result.final, args, device)
    return 0


if __name__ == "__main__":
    run_main(main)
