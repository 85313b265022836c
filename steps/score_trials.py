#!/usr/bin/env python3
"""Score a trial list with embeddings: cosine or LDA+PLDA, optionally S-norm / AS-norm.

Writes OUT_DIR/scores ("enrol test score" per trial, in trial order), OUT_DIR/metrics.json
(EER in %, minDCF at p_target 0.01 and 0.001, counts, what was scored), a one-line
OUT_DIR/RESULTS, the DET curve OUT_DIR/det.png and the score histogram OUT_DIR/hist.png.
A trial naming an utterance without an embedding is an error naming the trials file and line.
OUT_DIR/.made_from.json records the options and the identity of every input file: a re-run
with the same ones keeps the outputs, any change rescores.

Example:
  steps/score_trials.py --backend plda --plda-dir exp/xvector/plda \\
      data/vox1_o/trials exp/xvector/xvectors_vox1/xvector.scp \\
      exp/xvector/xvectors_vox1/xvector.scp exp/xvector/scores_vox1_o_plda
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from dropclass_lib import provenance
from dropclass_lib.atomic import regenerating
from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.backends.trial_scoring import OUTPUT_FILES, score_trial_list, write_scoring_outputs
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import UserError
from dropclass_lib.trials import read_trials
from dropclass_lib.vector_io import read_vectors

log = logging.getLogger("score_trials")

PLDA_FILE = "plda.npz"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["cosine", "plda"], default="cosine", help="scoring back-end (default cosine)")
    p.add_argument("--plda-dir", help=f"directory with {PLDA_FILE} from steps/train_plda.py (--backend plda)")
    p.add_argument("--mean-scp", help="cosine only: subtract the mean of these embeddings (e.g. the training set's) first")
    p.add_argument("--snorm-cohort", help="scp of cohort embeddings: apply symmetric score normalisation")
    p.add_argument("--asnorm-top-n", type=int, default=0,
                   help="with --snorm-cohort: use the N best cohort scores per side (AS-norm); 0 = whole cohort (S-norm)")
    p.add_argument("--set-name", help="trial-set name recorded in metrics.json (default: the trials file's directory name)")
    p.add_argument("--title", default="", help="title of the plots")
    p.add_argument("trials", help="trials file: enrol-utt test-utt target|nontarget")
    p.add_argument("enrol_scp", help="embeddings of the enrolment side (xvector.scp)")
    p.add_argument("test_scp", help="embeddings of the test side (may be the same scp)")
    p.add_argument("out_dir")
    return p


def make_backend(args):
    if args.backend == "plda":
        if not args.plda_dir:
            raise UserError("--backend plda needs --plda-dir")
        if args.mean_scp:
            raise UserError("--mean-scp is for --backend cosine (the PLDA back-end subtracts its own training mean)")
        return PldaBackend.load(Path(args.plda_dir) / PLDA_FILE)
    mean = read_vectors(args.mean_scp)[1].mean(axis=0) if args.mean_scp else None
    return CosineBackend(mean)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.asnorm_top_n < 0:
        raise UserError(f"--asnorm-top-n must be >= 0, got {args.asnorm_top_n}")
    if args.asnorm_top_n and not args.snorm_cohort:
        raise UserError("--asnorm-top-n needs --snorm-cohort")
    with lock_output_dirs(args.out_dir):
        return score(args)


def score(args) -> int:
    """main's work, with the output directory locked."""
    if args.backend == "plda":
        make_backend(args)  # a missing or unreadable PLDA is named (and how to make it) before any check
    label = args.backend
    if args.snorm_cohort:
        label += f"+asnorm{args.asnorm_top_n}" if args.asnorm_top_n else "+snorm"
    info = {
        "backend": label,
        "trial_set": args.set_name or Path(os.path.abspath(args.trials)).parent.name,
        "trials": args.trials, "enrol_scp": args.enrol_scp, "test_scp": args.test_scp,
        "mean_scp": args.mean_scp, "plda_dir": args.plda_dir, "snorm_cohort": args.snorm_cohort,
    }
    scps = [p for p in (args.enrol_scp, args.test_scp, args.mean_scp, args.snorm_cohort) if p]
    inputs = [args.trials, *scps, *[a for scp in scps for a in provenance.scp_archives(scp)],
              *([Path(args.plda_dir) / PLDA_FILE] if args.plda_dir else [])]
    out = Path(args.out_dir)
    settings = {**info, "asnorm_top_n": args.asnorm_top_n, "title": args.title}
    with provenance.stage(out, settings, inputs, outputs=OUTPUT_FILES, what=f"scores {out}") as st:
        if not st.fresh:
            # A failed run leaves none of the outputs: no scores file that looks like this run's result.
            with regenerating(*(out / n for n in OUTPUT_FILES)):
                run_scoring(args, info, label, out)
    return 0


def run_scoring(args, info: dict, label: str, out: Path) -> None:
    """Score the trials into ``out`` (the work of a stage that is not up to date)."""
    backend = make_backend(args)
    trials = read_trials(args.trials)
    enrol = read_vectors(args.enrol_scp)
    test = enrol if args.test_scp == args.enrol_scp else read_vectors(args.test_scp)
    cohort = read_vectors(args.snorm_cohort)[1] if args.snorm_cohort else None
    scores = score_trial_list(backend, trials, args.trials, enrol, test, args.enrol_scp, args.test_scp,
                              cohort=cohort, top_n=args.asnorm_top_n or None)
    write_scoring_outputs(out, trials, scores, info, title=args.title or f"{info['trial_set']} {label}")


if __name__ == "__main__":
    run_main(main)
