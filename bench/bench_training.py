#!/usr/bin/env python3
"""Training throughput: the trainer (steps/train_xvector.py's code path, DataLoader workers reading
crops lazily from the ark) against a plain single-process reference loop over the same network,
head, optimiser and batch shapes whose features are preloaded in memory. Prints frames/s of both,
and how long the trainer waited for batches (does data loading starve the model?).

Also measures the memory of the feature index for --index-utts utterances (default 1M): the
peak resident-memory growth while indexing and the index's own size.

  OMP_NUM_THREADS=2 python bench/bench_training.py --iters 30
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kaldiio
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropclass_lib.cli import ArgumentParser, run_main  # noqa: E402
from dropclass_lib.config import from_dict  # noqa: E402
from dropclass_lib.heads import build_head  # noqa: E402
from dropclass_lib.models import build_extractor  # noqa: E402
from dropclass_lib.tables import write_table  # noqa: E402
from dropclass_lib.training.config import TrainConfig  # noqa: E402
from dropclass_lib.training.distributed import pick_device  # noqa: E402
from dropclass_lib.training.trainer import make_optimizer, train  # noqa: E402


def make_data(root: Path, num_spk: int, utts: int, frames: int, dim: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    mats, utt2spk, nframes = {}, {}, {}
    for s in range(num_spk):
        for u in range(utts):
            utt = f"spk{s:04d}-{u:03d}"
            mats[utt] = rng.normal(size=(frames, dim)).astype(np.float32)
            utt2spk[utt], nframes[utt] = f"spk{s:04d}", frames
    root.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{root}/feats.ark,{root}/feats.scp") as w:
        for utt in sorted(mats):
            w(utt, mats[utt])
    write_table(root / "utt2spk", utt2spk)
    write_table(root / "utt2num_frames", nframes)
    return mats


def reference_loop(cfg: TrainConfig, mats: dict[str, np.ndarray], device: torch.device, iters: int) -> float:
    """Frames/s of the simplest loop: in-memory features, random crops, no DataLoader (first step excluded)."""
    torch.manual_seed(cfg.train.seed)
    utts = sorted(mats)
    speakers = sorted({u.split("-")[0] for u in utts})
    label = {s: i for i, s in enumerate(speakers)}
    dim = next(iter(mats.values())).shape[1]
    ext = build_extractor(cfg.model.extractor, input_dim=dim, **cfg.model.extractor_opts).to(device)
    head = build_head(cfg.model.head, ext.emb_dim, len(speakers), **cfg.model.head_opts).to(device)
    opt = make_optimizer(cfg, list(ext.parameters()) + list(head.parameters()))
    rng = np.random.default_rng(0)
    frames, t_start = 0, 0.0
    for it in range(iters):
        if it == 1:
            t_start = time.perf_counter()
        chosen = rng.choice(len(utts), cfg.data.batch_size, replace=False)
        length = int(rng.integers(cfg.data.min_frames, cfg.data.max_frames + 1))
        crops = []
        for i in chosen:
            m = mats[utts[i]]
            s = int(rng.integers(0, m.shape[0] - length + 1))
            crops.append(m[s:s + length])
        x = torch.from_numpy(np.stack(crops)).to(device)
        y = torch.tensor([label[utts[i].split("-")[0]] for i in chosen], device=device)
        logits, target = head(ext(x), y)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it:
            frames += x.shape[0] * x.shape[1]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return frames / (time.perf_counter() - t_start)


INDEX_PROBE = r"""
import resource, sys, time
from dropclass_lib.training.data import FeatIndex
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 1024
rss0 = rss_kib()
t = time.perf_counter()
ix = FeatIndex.from_data_dir(sys.argv[1])
secs = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(ix), ix.nbytes(), rss0, peak, rss_kib(), secs)
"""


def index_memory(root: Path, n: int, dim: int) -> None:
    """Index ``n`` utterances (all pointing into one small real archive) in a fresh process."""
    root.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{root}/one.ark,{root}/one.scp") as w:
        w("x", np.zeros((10, dim), np.float32))
    first = (root / "one.scp").read_text().split()[1]
    ark = first.rsplit(":", 1)[0]
    with open(root / "feats.scp", "w") as f, open(root / "utt2spk", "w") as g, open(root / "utt2num_frames", "w") as h:
        for i in range(n):
            utt = f"id{i // 200:05d}-{i:08d}"
            f.write(f"{utt} {first if i == 0 else f'{ark}:{1000 + 1200 * i}'}\n")
            g.write(f"{utt} id{i // 200:05d}\n")
            h.write(f"{utt} {300 + i % 700}\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", INDEX_PROBE, str(root)], capture_output=True, text=True, env=env, check=True)
    count, nbytes, rss0, peak, now, secs = out.stdout.split()
    print(f"index of {int(count):,} utterances: {int(nbytes) / 2**20:.1f} MiB of arrays; process resident memory "
          f"{int(rss0) / 2**10:.0f} MiB before indexing, {int(now) / 2**10:.0f} MiB after, "
          f"peak {int(peak) / 2**10:.0f} MiB; built in {float(secs):.1f} s")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--frames", type=int, default=200, help="crop length")
    p.add_argument("--widths", type=int, default=128, help="frame-layer width (last layer 3x)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--num-spk", type=int, default=100)
    p.add_argument("--utts-per-spk", type=int, default=4)
    p.add_argument("--utt-frames", type=int, default=400)
    p.add_argument("--dim", type=int, default=30)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--index-utts", type=int, default=1_000_000, help="0 skips the index-memory measurement")
    args = p.parse_args(argv)
    w = args.widths
    cfg = from_dict(TrainConfig, {
        "model": {"extractor": "tdnn", "extractor_opts": {"frame_dims": [w, w, w, w, 3 * w], "emb_dim": w},
                  "head": "aamsoftmax"},
        "data": {"batch_size": args.batch_size, "min_frames": args.frames, "max_frames": args.frames,
                 "num_workers": args.workers},
        "optim": {"lr": 0.05},
        "train": {"num_iters": args.iters, "checkpoint_every": 10**9, "log_every": 10**9, "device": args.device},
    })
    device = pick_device(args.device, 0)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size} x {args.frames} frames, "
          f"TDNN width {w}, {args.iters} iterations, {args.workers} loader worker(s)")
    with tempfile.TemporaryDirectory() as tmp:
        mats = make_data(Path(tmp) / "data", args.num_spk, args.utts_per_spk, args.utt_frames, args.dim)
        # the reference runs before and after the trainer, so drift in machine load shows as their spread
        ref_before = reference_loop(cfg, mats, device, args.iters)
        t = time.perf_counter()
        result = train(cfg, Path(tmp) / "data", Path(tmp) / "exp")
        wall = time.perf_counter() - t
        st = result.stats
        ref_after = reference_loop(cfg, mats, device, args.iters)
        ref = (ref_before + ref_after) / 2
        print(f"trainer:   {st.frames_per_s:10.0f} frames/s  (start-up {st.startup_s:.2f} s, whole call {wall:.1f} s)")
        print(f"reference: {ref:10.0f} frames/s  (in-memory features, single process; "
              f"{ref_before:.0f} before, {ref_after:.0f} after the trainer)")
        print(f"trainer / reference = {st.frames_per_s / ref:.2f}")
        starved = st.wait_fraction > 0.05
        print(f"data wait: {100 * st.wait_fraction:.1f}% of training time, longest {1000 * st.max_wait_s:.1f} ms: "
              f"{'the loader STARVED the model' if starved else 'the loader kept up'}")
        if args.index_utts:
            index_memory(Path(tmp) / "index", args.index_utts, args.dim)
    return 0


if __name__ == "__main__":
    run_main(main)
