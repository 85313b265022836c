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
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from dropclass_lib.backends.trial_scoring import write_scoring_outputs
from dropclass_lib.calibration import LinearCalibration, check_prior, train_calibration
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import iter_lines
from dropclass_lib.trials import Trials, read_trials

log = logging.getLogger("calibrate_scores")


def read_score_dir(score_dir: Path) -> tuple[Trials, np.ndarray, dict]:
    """``(trials with labels, scores in trial order, metrics.json)`` of a scoring directory."""
    metrics_path, scores_path = score_dir / "metrics.json", score_dir / "scores"
    for path in (metrics_path, scores_path):
        if not path.is_file():
            raise UserError(f"{path} does not exist (score the trials with steps/score_trials.py first)")
    try:
        info = json.loads(metrics_path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InputFileError(metrics_path, None, f"not JSON ({err})") from None
    if not info.get("trials"):
        raise InputFileError(metrics_path, None, "names no trial list (\"trials\"), so the labels are unknown")
    trials_path = Path(info["trials"])
    if not trials_path.is_file():
        raise InputFileError(metrics_path, None, f"its trial list {trials_path} does not exist (relative paths are "
                             "read from the directory the scoring ran in: run this step from there)")
    trials = read_trials(trials_path)
    scores = np.empty(len(trials))
    n = 0
    for lineno, line in iter_lines(scores_path):
        parts = line.split()
        if n >= len(trials):
            raise InputFileError(scores_path, lineno, f"more scores than the {len(trials)} trials of {trials_path}", line)
        if len(parts) != 3 or (parts[0], parts[1]) != (trials.enrol[n], trials.test[n]):
            raise InputFileError(scores_path, lineno, f"expected 'enrol test score' for trial {n + 1} of {trials_path} "
                                 f"({trials.enrol[n]} {trials.test[n]})", line)
        try:
            scores[n] = float(parts[2])
        except ValueError:
            raise InputFileError(scores_path, lineno, f"score {parts[2]!r} is not a number", line) from None
        n += 1
    if n != len(trials):
        raise InputFileError(scores_path, None, f"{n} scores for the {len(trials)} trials of {trials_path}")
    return trials, scores, info


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
