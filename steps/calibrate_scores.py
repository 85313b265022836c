#!/usr/bin/env python3
"""Calibrate scores into log-likelihood ratios: train a linear calibration on a development
list, apply it to other lists.

    steps/calibrate_scores.py [--target-prior P] --train DEV_SCORE_DIR SCORE_DIR... OUT_DIR
    steps/calibrate_scores.py --calibration CALIBRATION.json SCORE_DIR... OUT_DIR

A SCORE_DIR is what steps/score_trials.py writes: its scores (enrol test score) and
metrics.json, whose "trials" entry names the trial list with the labels. The calibration
(llr = slope * score + offset, prior-weighted logistic regression at --target-prior; see
dropclass_lib/calibration.py) is trained on DEV_SCORE_DIR and written to
OUT_DIR/calibration_<DEV_SCORE_DIR's name>.json. Each SCORE_DIR becomes OUT_DIR/<its name>_cal/:
scores (now LLRs), metrics.json (back-end "<backend>+cal"; EER and minDCF unchanged, Cllr
near min-Cllr), RESULTS, det.png, hist.png. With OUT_DIR the system's (seed) directory, the
calibrated lists are rows of steps/make_results_table.py like the others. Name the dev list
among the SCORE_DIRs to see its own calibrated figures (optimistic: trained on itself).

Example:
  steps/calibrate_scores.py --train exp/X/seed1/scores_dev_plda exp/X/seed1/scores_test_plda exp/X/seed1
  # -> exp/X/seed1/calibration_scores_dev_plda.json, exp/X/seed1/scores_test_plda_cal/
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

from dropclass_lib.backends.trial_scoring import read_score_dir, write_scoring_outputs
from dropclass_lib.calibration import LinearCalibration, check_prior, train_calibration
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import UserError

log = logging.getLogger("calibrate_scores")


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--train", metavar="DEV_SCORE_DIR", help="scoring directory of the development list to train on")
    source.add_argument("--calibration", metavar="FILE", help="apply this calibration_*.json instead of training one")
    p.add_argument("--target-prior", type=float, default=0.5, help="prior the training cross-entropy is weighted with")
    p.add_argument("score_dirs", nargs="+", metavar="SCORE_DIR", help="scoring directories to calibrate")
    p.add_argument("out_dir", metavar="OUT_DIR")
    args = p.parse_args(argv)
    check_prior(args.target_prior)
    out = Path(args.out_dir)
    score_dirs = [Path(d) for d in args.score_dirs]
    names = [d.resolve().name + "_cal" for d in score_dirs]
    if len(set(names)) != len(names):
        raise UserError(f"two score directories have one name ({', '.join(names)}): their outputs would collide in {out}")
    with lock_output_dirs(out):
        if args.train:
            trials, scores, _ = read_score_dir(Path(args.train))
            calibration = train_calibration(scores, trials.target, args.target_prior)
            if calibration.slope <= 0:
                raise UserError(f"{args.train}: the calibration trained there decreases with the score (slope "
                                f"{calibration.slope:.4g}): its target trials do not score higher than its non-targets")
            saved = out / f"calibration_{Path(args.train).resolve().name}.json"
            calibration.save(saved)
            log.info("calibration trained on %s: llr = %.6g * score + %.6g (target prior %g) -> %s", args.train,
                     calibration.slope, calibration.offset, args.target_prior, saved)
        else:
            calibration = LinearCalibration.load(args.calibration)
        for score_dir, name in zip(score_dirs, names):
            trials, scores, info = read_score_dir(score_dir)
            # What was scored stays; the figures are recomputed on the LLRs.
            info.update(backend=f"{info.get('backend', 'scores')}+cal", calibrated_from=str(score_dir),
                        calibration={"slope": calibration.slope, "offset": calibration.offset,
                                     "target_prior": calibration.target_prior,
                                     "trained_on": args.train or args.calibration})
            write_scoring_outputs(out / name, trials, calibration.apply(scores), info,
                                  title=f"{info.get('trial_set', name)} {info['backend']}")
    return 0


if __name__ == "__main__":
    run_main(main)
