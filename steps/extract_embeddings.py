#!/usr/bin/env python3
"""Extract speaker embeddings (x-vectors) of every utterance of a data directory.

Features come from DATA_DIR/feats.scp as they are (the feature steps already applied CMN and
removed silence). Utterances longer than --chunk-frames are cut into near-equal chunks whose
embeddings are averaged, weighted by length; only chunks of identical length share a batch,
so nothing is ever padded (see dropclass_lib/embeddings.py).

Writes, in OUT_DIR:
  xvector.ark/.scp       one embedding per utterance (Kaldi float vectors, via kaldiio)
  spk_xvector.ark/.scp   per-speaker means over DATA_DIR/utt2spk
  num_utts.ark           text: speaker number-of-utterances
Skipped when these exist and are newer than MODEL, feats.scp and utt2spk.

Example:
  steps/extract_embeddings.py --device cuda exp/xvector/final.pt data/vox1 exp/xvector/xvectors_vox1
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.embeddings import embed_utterances, speaker_means
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.freshness import up_to_date
from dropclass_lib.model_io import extractor_input_dim, load_model
from dropclass_lib.tables import read_kv, write_table
from dropclass_lib.vector_io import iter_scp, write_vectors

log = logging.getLogger("extract_embeddings")

OUTPUTS = ("xvector.scp", "spk_xvector.scp", "num_utts.ark")


def read_feats(feats_scp: Path, utt2spk: dict[str, str], input_dim: int | None = None, model: str = ""):
    """Yield ``(utt, matrix)`` from feats.scp; errors name the line. ``input_dim``: the feature
    dimension ``model`` takes (features of another kind, e.g. fbank for an MFCC model, are an error)."""
    for lineno, utt, mat, line in iter_scp(feats_scp):
        if utt not in utt2spk:
            raise InputFileError(feats_scp, lineno, f"utterance {utt!r} is not in utt2spk", line)
        if mat.ndim != 2 or mat.shape[0] == 0:
            raise InputFileError(feats_scp, lineno, f"features of {utt!r} have shape {mat.shape}", line)
        if input_dim is not None and mat.shape[1] != input_dim:
            raise InputFileError(feats_scp, lineno, f"features of {utt!r} have {mat.shape[1]} dimensions, the model "
                                 f"{model} takes {input_dim}: compute the features the model was trained on "
                                 "(same kind and options)", line)
        yield utt, mat


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunk-frames", type=int, default=10000, help="longest chunk fed to the extractor (default 10000 = 100 s)")
    p.add_argument("--batch-size", type=int, default=32, help="most equal-length chunks per forward pass (default 32)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 (default cpu)")
    p.add_argument("--min-frames", type=int, default=None,
                   help="pad shorter chunks cyclically to this length (default: the extractor's receptive field)")
    p.add_argument("model", help="trained model (exp/NAME/final.pt)")
    p.add_argument("data_dir", help="data directory with feats.scp and utt2spk")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    if args.chunk_frames < 1 or args.batch_size < 1:
        raise UserError("--chunk-frames and --batch-size must be positive")
    with lock_output_dirs(args.out_dir):
        return extract(args)


def extract(args) -> int:
    """main's work, with the output directory locked."""
    data, out = Path(args.data_dir), Path(args.out_dir)
    inputs = [Path(args.model), data / "feats.scp", data / "utt2spk"]
    for f in inputs:
        if not f.is_file():
            raise UserError(f"{f} does not exist")
    if up_to_date([out / n for n in OUTPUTS], inputs):
        log.info("%s is up to date: skipping", out)
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available on this machine")
    model = load_model(args.model, map_location=args.device)
    utt2spk = read_kv(data / "utt2spk")
    keys, embs = [], []
    start = time.time()
    feats = read_feats(data / "feats.scp", utt2spk, extractor_input_dim(model.extractor), args.model)
    for utt, emb in embed_utterances(model.extractor, feats,
                                     chunk_frames=args.chunk_frames, batch_size=args.batch_size,
                                     device=args.device, min_frames=args.min_frames):
        keys.append(utt)
        embs.append(emb)
        if len(keys) % 1000 == 0:
            log.info("%d utterances (%.1f s)", len(keys), time.time() - start)
    if not keys:
        raise UserError(f"{data / 'feats.scp'}: no utterances")
    matrix = np.stack(embs)
    out.mkdir(parents=True, exist_ok=True)
    for f in OUTPUTS:   # a rerun after a crash must not mistake old files for finished ones
        (out / f).unlink(missing_ok=True)
    write_vectors(out, "xvector", keys, matrix)
    speakers, means, counts = speaker_means(keys, matrix, utt2spk)
    write_vectors(out, "spk_xvector", speakers, means)
    write_table(out / "num_utts.ark", dict(zip(speakers, counts.tolist())))
    log.info("%d embeddings of dimension %d, %d speakers, in %.1f s on %s -> %s",
             len(keys), matrix.shape[1], len(speakers), time.time() - start, args.device, out)
    return 0


if __name__ == "__main__":
    run_main(main)
