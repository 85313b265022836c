#!/usr/bin/env python3
"""Benchmark of the scoring path: cosine and PLDA trials/s on three trial lists, EER and minDCF time.

Synthetic embeddings (--dim dims, speaker clusters) are scored with each back-end (the PLDA
back-end is first trained on the --num-utts utterances of the dense list, LDA to --lda-dim) on:

  dense   --num-trials random trials over --num-utts utterances (5M over 10k: 5 % of all pairs)
  vox1-o  a VoxCeleb1-O-sized list: 37,720 random trials over 4,708 utterances
  vox1-e  a VoxCeleb1-E-sized list: 579,818 random trials over --vox1e-utts utterances (145,375)

Trials are drawn uniformly and left in random order (real lists are grouped by enrolment
utterance, which only makes the row-wise path faster). For each list and back-end it prints the
path pair_scores takes (auto), its trials/s, and the trials/s of the row-wise path forced in
trial order (the path before the dense one existed) and in enrolment order, each the best of
--repeats runs; then EER and minDCF@0.01/0.001 time on --num-scores random scores.
Run: OMP_NUM_THREADS=1 python bench/bench_scoring.py
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.backends.scoring import choose_method, pair_scores, sorts_by_enrolment
from dropclass_lib.cli import ArgumentParser
from dropclass_lib.metrics import compute_metrics


def best_time(fn, repeats: int):
    """The result of ``fn`` and its fastest wall time over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times)


def embeddings(rng, num_utts: int, num_spk: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, num_spk, size=num_utts)
    x = (rng.normal(size=(num_spk, dim)) * 2)[labels] + rng.normal(size=(num_utts, dim))
    return x.astype(np.float32), labels


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-spk", type=int, default=500)
    p.add_argument("--num-utts", type=int, default=10000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--lda-dim", type=int, default=200)
    p.add_argument("--num-trials", type=int, default=5_000_000)
    p.add_argument("--vox1e-utts", type=int, default=145_375)
    p.add_argument("--num-scores", type=int, default=10_000_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; best of {args.repeats}")
    rng = np.random.default_rng(0)
    x, labels = embeddings(rng, args.num_utts, args.num_spk, args.dim)
    plda, t_train = best_time(lambda: PldaBackend.train(x, labels, lda_dim=args.lda_dim), 1)
    print(f"PLDA training ({args.num_utts} x {args.dim}, {args.num_spk} speakers, LDA {args.lda_dim}): {t_train:.2f} s")
    lists = [("dense", x, args.num_trials),
             ("vox1-o", embeddings(rng, 4_708, 40, args.dim)[0], 37_720),
             ("vox1-e", embeddings(rng, args.vox1e_utts, 1_251, args.dim)[0], 579_818)]
    for name, emb, num_trials in lists:
        ei = rng.integers(0, emb.shape[0], size=num_trials)
        ti = rng.integers(0, emb.shape[0], size=num_trials)
        covered = num_trials / (np.unique(ei).size * np.unique(ti).size)
        for backend in (CosineBackend(x.mean(axis=0)), plda):
            space = backend.transform(emb)
            dim = space.vec.shape[1]
            path = choose_method(num_trials, np.unique(ei).size, np.unique(ti).size, dim)
            if path == "rowwise":
                path += " in enrolment order" if sorts_by_enrolment(np.unique(ei).size, dim) else " in trial order"
            auto, t_auto = best_time(lambda: pair_scores(space, space, ei, ti), args.repeats)
            rowwise, t_row = best_time(lambda: pair_scores(space, space, ei, ti, method="rowwise", sort=False),
                                       args.repeats)
            np.testing.assert_allclose(auto, rowwise, rtol=1e-5, atol=1e-5 * np.abs(rowwise).max())
            _, t_sorted = best_time(lambda: pair_scores(space, space, ei, ti, method="rowwise", sort=True),
                                    args.repeats)
            print(f"{name:6s} {backend.name:6s} {num_trials} trials over {emb.shape[0]} utts "
                  f"({100 * covered:.3g} % of pairs), {dim} dims: auto = {path} "
                  f"{num_trials / t_auto / 1e6:.2f} M trials/s ({t_auto:.3f} s); "
                  f"row-wise in trial order {num_trials / t_row / 1e6:.2f}, "
                  f"in enrolment order {num_trials / t_sorted / 1e6:.2f} M trials/s")
    target = rng.random(args.num_scores) < 0.01
    scores = (rng.normal(size=args.num_scores) + 3 * target).astype(np.float32)
    m, t_metrics = best_time(lambda: compute_metrics(scores, target), args.repeats)
    print(f"EER + minDCF@0.01 + minDCF@0.001 on {args.num_scores} scores: {t_metrics:.2f} s "
          f"(EER {m['eer']:.2f} %, minDCF@0.01 {m['min_dcf_0.01']:.4f})")


if __name__ == "__main__":
    main()
