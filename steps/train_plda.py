#!/usr/bin/env python3
"""Fit the LDA + PLDA back-end on training-speaker embeddings (Kaldi's VoxCeleb v2 recipe).

Steps: subtract the mean of the training embeddings; LDA (ivector-compute-lda semantics,
--lda-dim, capped at num_speakers - 1 and the embedding dimension); length norm to
sqrt(dim); two-covariance PLDA by EM (ivector-compute-plda semantics, --num-em-iters).
Writes OUT_DIR/plda.npz (arrays: mean, lda, plda_mean, plda_transform, plda_psi), read by
steps/score_trials.py --backend plda --plda-dir OUT_DIR. Embeddings of utterances missing
from UTT2SPK are an error; utt2spk entries without an embedding are skipped (counted in the log).
Kept when made from the same embeddings, utt2spk and options (OUT_DIR/.made_from.json); redone otherwise.

Example:
  steps/train_plda.py --lda-dim 200 exp/xvector/xvectors_train/xvector.scp \\
      data/train/utt2spk exp/xvector/plda
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from dropclass_lib import provenance
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import UserError
from dropclass_lib.tables import read_kv
from dropclass_lib.vector_io import read_vectors

log = logging.getLogger("train_plda")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lda-dim", type=int, default=200, help="LDA output dimension (default 200)")
    p.add_argument("--num-em-iters", type=int, default=10, help="PLDA EM iterations (default 10, as Kaldi)")
    p.add_argument("train_scp", help="training embeddings (xvector.scp)")
    p.add_argument("utt2spk", help="utterance-to-speaker map of the training data")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    if args.lda_dim < 1 or args.num_em_iters < 1:
        raise UserError("--lda-dim and --num-em-iters must be positive")
    with lock_output_dirs(args.out_dir):
        return train_backend(args)


def train_backend(args) -> int:
    """main's work, with the output directory locked."""
    out = Path(args.out_dir)
    settings = {"lda_dim": args.lda_dim, "num_em_iters": args.num_em_iters}
    inputs = [args.train_scp, *provenance.scp_archives(args.train_scp), args.utt2spk]
    with provenance.stage(out, settings, inputs, outputs=("plda.npz",), what=f"PLDA {out}") as st:
        if not st.fresh:
            fit(args, out / "plda.npz")
    return 0


def fit(args, target: Path) -> None:
    utt2spk = read_kv(args.utt2spk)
    keys, x = read_vectors(args.train_scp)
    missing = [k for k in keys if k not in utt2spk]
    if missing:
        raise UserError(f"{args.train_scp}: {len(missing)} embedding(s) of utterances not in {args.utt2spk}, "
                        f"e.g. {missing[0]!r}")
    if len(keys) < len(utt2spk):
        log.warning("%d utterance(s) of %s have no embedding: skipped", len(utt2spk) - len(keys), args.utt2spk)
    labels = np.array([utt2spk[k] for k in keys])
    backend = PldaBackend.train(x, labels, lda_dim=args.lda_dim, num_em_iters=args.num_em_iters)
    target.parent.mkdir(parents=True, exist_ok=True)
    backend.save(target)
    log.info("PLDA back-end from %d embeddings of %d speakers: %d -> %d dims (LDA), psi max %.2f min %.3g; wrote %s",
             len(keys), np.unique(labels).size, x.shape[1], backend.lda.shape[0],
             backend.plda.psi[0], backend.plda.psi[-1], target)


if __name__ == "__main__":
    run_main(main)
