#!/usr/bin/env python3
"""The crude floor: score DATA_DIR/trials with per-utterance MFCC statistics instead of embeddings.

Each utterance is represented by the mean and standard deviation over frames of its raw
features (DATA_DIR/feats.scp), only over the voiced frames of DATA_DIR/vad.scp when --use-vad
says so; these vectors are scored by cosine similarity, by default after subtracting their
mean over the trial utterances (unsupervised: no labels are used). Any system that learns
something about speakers must beat this row. Writes the same outputs as steps/score_trials.py
(scores, metrics.json marked "floor": true, RESULTS, det.png, hist.png) in OUT_DIR.

Example:
  steps/score_mfcc_floor.py data/vox1_o exp/mfcc_floor/scores_vox1_o
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from dropclass_lib import provenance
from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.trial_scoring import score_trial_list, write_scoring_outputs
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.trials import read_trials
from dropclass_lib.vector_io import iter_scp

log = logging.getLogger("score_mfcc_floor")


def read_vad(vad_scp: Path, keys: set[str]) -> dict[str, np.ndarray]:
    return {k: v.astype(bool) for _, k, v, _ in iter_scp(vad_scp, keys)}


def utterance_stats(feats_scp: Path, keys: set[str], vad: dict[str, np.ndarray] | None
                    ) -> tuple[list[str], np.ndarray]:
    """Mean and std of each utterance's (voiced) frames, concatenated."""
    names, rows = [], []
    for lineno, utt, feats, line in iter_scp(feats_scp, keys):
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise InputFileError(feats_scp, lineno, f"features of {utt!r} have shape {feats.shape}", line)
        if vad is not None:
            if utt not in vad:
                raise InputFileError(feats_scp, lineno, f"{utt!r} has no entry in vad.scp", line)
            if vad[utt].shape != (feats.shape[0],):
                raise InputFileError(feats_scp, lineno, f"{utt!r}: {feats.shape[0]} frames but "
                                     f"{vad[utt].size} VAD decisions", line)
            if vad[utt].any():     # an utterance with no voiced frame keeps all its frames
                feats = feats[vad[utt]]
        names.append(utt)
        rows.append(np.concatenate([feats.mean(axis=0), feats.std(axis=0)]))
    return names, np.asarray(rows, dtype=np.float64)


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--use-vad", choices=["auto", "true", "false"], default="auto",
                   help="statistics over vad.scp-voiced frames only; auto = when DATA_DIR/vad.scp exists (default auto)")
    p.add_argument("--subtract-mean", choices=["true", "false"], default="true",
                   help="subtract the mean statistics vector of the trial utterances before cosine (default true)")
    p.add_argument("--set-name", help="trial-set name in metrics.json (default: DATA_DIR's name)")
    p.add_argument("data_dir", help="data directory with feats.scp and trials")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    data, out = Path(args.data_dir), Path(args.out_dir)
    feats_scp, trials_path, vad_scp = data / "feats.scp", data / "trials", data / "vad.scp"
    use_vad = vad_scp.is_file() if args.use_vad == "auto" else args.use_vad == "true"
    if use_vad and not vad_scp.is_file():
        raise UserError(f"--use-vad true but {vad_scp} does not exist")
    for f in (feats_scp, trials_path):
        if not f.is_file():
            raise UserError(f"{f} does not exist")
    inputs = [feats_scp, trials_path] + ([vad_scp] if use_vad else [])
    subtract = args.subtract_mean == "true"
    # subtracting the trial utterances' own mean is what evaluation.py calls the domain mean
    info = {"backend": "cosine_dm" if subtract else "cosine", "trial_set": args.set_name or data.resolve().name,
            "floor": True, "representation": "feature mean+std" + (" over voiced frames" if use_vad else ""),
            "subtract_mean": subtract, "trials": str(trials_path)}
    with provenance.stage(out, info, inputs, outputs=("metrics.json", "scores"), what=f"floor {out}") as st:
        if st.fresh:
            return 0
        trials = read_trials(trials_path)
        wanted = set(trials.utts())
        keys, stats = utterance_stats(feats_scp, wanted, read_vad(vad_scp, wanted) if use_vad else None)
        if not keys:
            raise UserError(f"{feats_scp}: none of the trial utterances has features")
        backend = CosineBackend(stats.mean(axis=0) if subtract else None)
        scores = score_trial_list(backend, trials, trials_path, (keys, stats), (keys, stats), str(feats_scp),
                                  str(feats_scp))
        write_scoring_outputs(out, trials, scores, info, title=f"{info['trial_set']} floor: {info['representation']}")
    return 0


if __name__ == "__main__":
    run_main(main)
