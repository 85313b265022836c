#!/usr/bin/env python3
"""Extractor cost on the CPU: parameters, training and inference throughput of each extractor.

For every model: its parameter count; training frames/s of forward + backward + SGD step of the
extractor and an AAM-softmax head on random batches of ``--batch-size`` x ``--frames`` x
``--dim`` features (one untimed warm-up step, then ``--iters`` timed ones); and inference
frames/s in eval mode without gradients, on the same batch and on one ``--utt-frames`` utterance
(the one-chunk batches that embedding extraction mostly runs). Figures are the best of the timed
repetitions, so a busy machine lowers them less; training is also given per CPU-second of this
process, which other jobs on the machine disturb less than wall time. ``--cpu-amp`` runs the
training step's extractor under bfloat16 autocast, as ``train.cpu_amp`` does (inference stays
float32, as embedding extraction on CPU).

  python bench/bench_extractors.py --threads 1 --iters 2
  python bench/bench_extractors.py --models ecapa_256 resnet34
  python bench/bench_extractors.py --models resnet34 --threads 2 --cpu-amp
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropclass_lib.cli import ArgumentParser, run_main  # noqa: E402
from dropclass_lib.errors import UserError  # noqa: E402
from dropclass_lib.heads import build_head  # noqa: E402
from dropclass_lib.models import build_extractor  # noqa: E402
from dropclass_lib.training.trainer import Net  # noqa: E402

MODELS = {  # label: (registry name, options)
    "tdnn": ("tdnn", {"frame_dims": [512, 512, 512, 512, 1500]}),
    "ecapa_512": ("ecapa_tdnn", {"channels": 512}),
    "ecapa_1024": ("ecapa_tdnn", {"channels": 1024}),
    "resnet34": ("resnet34", {"base_channels": 32}),
    "ecapa_256": ("ecapa_tdnn", {"channels": 256}),
    "ecapa_256_mfa768": ("ecapa_tdnn", {"channels": 256, "mfa_channels": 768}),
}


def best_seconds(step, reps: int) -> tuple[float, float]:
    """Shortest wall time and shortest CPU time of this process over ``reps`` calls of ``step``."""
    step()  # warm-up: allocator, kernel selection
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def measure(name: str, opts: dict, args) -> dict:
    torch.manual_seed(0)
    ext = build_extractor(name, input_dim=args.dim, **opts)
    head = build_head("aamsoftmax", ext.emb_dim, args.num_classes)
    net = Net(ext, head, torch.bfloat16 if args.cpu_amp else None)  # the trainer's forward, autocast included
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    x = torch.randn(args.batch_size, args.frames, args.dim)
    y = torch.randint(0, args.num_classes, (args.batch_size,))

    def train_step():
        net.train()
        logits, target = net(x, y, None)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_s, train_cpu_s = best_seconds(train_step, args.iters)
    ext.eval()
    utt = torch.randn(1, args.utt_frames, args.dim)
    with torch.inference_mode():
        batch_s, _ = best_seconds(lambda: ext(x), args.iters)
        utt_s, _ = best_seconds(lambda: ext(utt), args.iters)
    frames = args.batch_size * args.frames
    return {"params": sum(p.numel() for p in ext.parameters()), "train_fps": frames / train_s, "train_s": train_s,
            "train_cpu_fps": frames / train_cpu_s, "batch_fps": frames / batch_s, "utt_fps": args.utt_frames / utt_s}


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=list(MODELS), help=f"labels out of: {' '.join(MODELS)}")
    p.add_argument("--iters", type=int, default=2, help="timed repetitions of each measurement")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--frames", type=int, default=200, help="frames per training crop")
    p.add_argument("--utt-frames", type=int, default=1000, help="length of the single inference utterance")
    p.add_argument("--dim", type=int, default=80, help="feature dimension")
    p.add_argument("--num-classes", type=int, default=1000, help="speakers in the head")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cpu-amp", action="store_true", help="train the extractor under bfloat16 autocast (train.cpu_amp)")
    args = p.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        raise UserError(f"unknown model label(s) {' '.join(unknown)} (known: {' '.join(MODELS)})")
    if min(args.iters, args.batch_size, args.frames, args.utt_frames, args.dim, args.num_classes, args.threads) < 1:
        raise UserError("--iters, --batch-size, --frames, --utt-frames, --dim, --num-classes, --threads must be >= 1")
    torch.set_num_threads(args.threads)
    print(f"CPU, {torch.get_num_threads()} torch thread(s); training batch {args.batch_size} x {args.frames} frames "
          f"x {args.dim} dims{', extractor under bf16 autocast' if args.cpu_amp else ''}, AAM-softmax over "
          f"{args.num_classes} classes, SGD; best of {args.iters} after a warm-up")
    print(f"{'model':<18} {'extractor':<11} {'params':>8} {'train fr/s':>11} {'s/iter':>7} {'train fr/CPU-s':>15} "
          f"{'infer fr/s (batch)':>19} {f'infer fr/s (1x{args.utt_frames})':>20}")
    for label in args.models:
        name, opts = MODELS[label]
        r = measure(name, opts, args)
        print(f"{label:<18} {name:<11} {r['params'] / 1e6:7.2f}M {r['train_fps']:11.0f} {r['train_s']:7.2f} "
              f"{r['train_cpu_fps']:15.0f} {r['batch_fps']:19.0f} {r['utt_fps']:20.0f}", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
