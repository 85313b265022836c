#!/usr/bin/env python3
"""Benchmark of the scoring path: cosine and PLDA trials/s, EER and minDCF time on synthetic scores.

Synthetic embeddings (--num-utts utterances of --dim dims from --num-spk speakers) are scored
on --num-trials random trials with each back-end (the PLDA back-end is first trained on them,
LDA to --lda-dim); then EER and minDCF@0.01/0.001 are computed on --num-scores random scores.
Prints one line per measurement. Run: OMP_NUM_THREADS=1 python bench/bench_scoring.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.backends.scoring import pair_scores
from dropclass_lib.cli import ArgumentParser
from dropclass_lib.metrics import compute_metrics


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-spk", type=int, default=500)
    p.add_argument("--num-utts", type=int, default=10000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--lda-dim", type=int, default=200)
    p.add_argument("--num-trials", type=int, default=5_000_000)
    p.add_argument("--num-scores", type=int, default=10_000_000)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.num_spk, size=args.num_utts)
    x = (rng.normal(size=(args.num_spk, args.dim)) * 2)[labels] + rng.normal(size=(args.num_utts, args.dim))
    x = x.astype(np.float32)
    ei = rng.integers(0, args.num_utts, size=args.num_trials)
    ti = rng.integers(0, args.num_utts, size=args.num_trials)
    plda, t_train = timed(lambda: PldaBackend.train(x, labels, lda_dim=args.lda_dim))
    print(f"PLDA training ({args.num_utts} x {args.dim}, {args.num_spk} speakers, LDA {args.lda_dim}): {t_train:.2f} s")
    for backend in (CosineBackend(x.mean(axis=0)), plda):
        space, t_prep = timed(lambda: backend.transform(x))
        scores, t_score = timed(lambda: pair_scores(space, space, ei, ti))
        print(f"{backend.name}: transform {args.num_utts} embeddings {t_prep:.2f} s; "
              f"{args.num_trials} trials in {t_score:.2f} s = {args.num_trials / t_score / 1e6:.2f} M trials/s")
    target = rng.random(args.num_scores) < 0.01
    scores = (rng.normal(size=args.num_scores) + 3 * target).astype(np.float32)
    m, t_metrics = timed(lambda: compute_metrics(scores, target))
    print(f"EER + minDCF@0.01 + minDCF@0.001 on {args.num_scores} scores: {t_metrics:.2f} s "
          f"(EER {m['eer']:.2f} %, minDCF@0.01 {m['min_dcf_0.01']:.4f})")


if __name__ == "__main__":
    main()
