#!/usr/bin/env python3
"""Write a trial list for a Kaldi data directory: DATA_DIR/trials and DATA_DIR/enrol.list.

Each speaker gives --enrol-per-speaker enrolment utterances (at most all but one of its
utterances; speakers with a single utterance only serve as impostors), chosen at random or
as its first ones in LC_ALL=C order (--enrol-choice). Each enrolment utterance is paired with
--targets-per-enrol of the speaker's other utterances and --nontargets-per-enrol utterances
of other speakers of the directory, drawn with --seed: the same directory and options always
give the same list. Only utt2spk is read; existing trials and enrol.list are replaced.
Trials are drawn as the corpus preparation scripts in local/ draw them.

Example:
  utils/make_trials.py --enrol-per-speaker 2 --enrol-choice first --targets-per-enrol 10 \\
      --nontargets-per-enrol 30 data/mycorpus/test
"""

from __future__ import annotations

import logging
from pathlib import Path

from dropclass_lib.atomic import atomic_open
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.trial_design import TrialDesign, add_trial_options, design_from_args, design_trials
from dropclass_lib.datadir import read_utt_table
from dropclass_lib.errors import UserError
from dropclass_lib.trials import write_trials


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    add_trial_options(p, TrialDesign())
    p.add_argument("--seed", type=int, default=0, help="seed of the trial draw")
    p.add_argument("data_dir", help="the data directory (its utt2spk is read; trials and enrol.list are written)")
    args = p.parse_args(argv)
    design = design_from_args(args)

    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data directory {data_dir} does not exist")
    utt2spk = read_utt_table(data_dir / "utt2spk", "utt2spk")
    if not utt2spk:
        raise UserError(f"{data_dir}/utt2spk is empty")
    trials = design_trials(utt2spk, design, args.seed)
    write_trials(data_dir / "trials", trials)
    with atomic_open(data_dir / "enrol.list", "w", encoding="utf-8") as f:
        f.writelines(f"{u}\n" for u in trials.enrol_utts())
    logging.info("%s: %d trials (%d target) from %d enrolment utterances", data_dir, len(trials),
                 int(trials.target.sum()), len(trials.enrol_utts()))
    return 0


if __name__ == "__main__":
    run_main(main)
