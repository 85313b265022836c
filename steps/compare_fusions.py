#!/usr/bin/env python3
"""Compare fusions of different back-ends on development lists, each list held out in turn.

    steps/compare_fusions.py --components B1,B2[,...] [--components ...] \\
        --dev GROUP EVAL_DIR SET [--dev ...] [--test GROUP EVAL_DIR SET ...]

Each ``--dev``/``--test`` names a trial set SET scored by steps/evaluate_model.py (with
--raw-data) in EVAL_DIR, and the GROUP it belongs to (a corpus). The fusion that scores a group's
lists is trained, as steps/train_fusion.py trains it, on the development lists of every *other*
group: with one group per corpus this is how the real-speech recipe fuses its
leave-one-corpus-out systems, so no trial of the corpus a fusion is tested on trains it.

Prints one markdown row per component set: the EER (%) of every list, the mean over the
development lists (the figure to choose the components by) and, when test lists are given, the
mean over them (to report, not to choose by). Writes nothing.

Example (the real-speech recipe's seed-1 leave-one-corpus-out systems):
  steps/compare_fusions.py --components cosine_dm,plda_dm,stats --components cosine_dm,plda_dm,ivector \\
      --dev asc exp/real_loco_dev/baseline/seed1 asc_dev --dev dsp exp/real_loco_dev/baseline/seed1 dsp_dev \\
      --dev so exp/real_loco_dev/baseline/seed1 so_dev --test so exp/real_loco/baseline/seed1 so_test
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from dropclass_lib.backends.trial_scoring import read_score_columns
from dropclass_lib.calibration import check_prior, train_fusion
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import UserError
from dropclass_lib.evaluation import BACKENDS, parse_fusion_components
from dropclass_lib.metrics import compute_eer

log = logging.getLogger("compare_fusions")


class TrialList(NamedTuple):
    group: str
    eval_dir: Path
    set_name: str

    @property
    def name(self) -> str:
        return f"{self.eval_dir}:{self.set_name}"


def held_out_eers(components: list[str], devs: list[TrialList], tests: list[TrialList],
                  target_prior: float) -> list[float]:
    """EER (%) of each list of ``devs + tests`` under the fusion trained on the other groups' dev lists."""
    read = {id(t): read_score_columns(t.eval_dir, t.set_name, components) for t in devs + tests}
    eers = []
    for held in devs + tests:
        train = [t for t in devs if t.group != held.group]
        fusion = train_fusion(components, np.concatenate([read[id(t)][0] for t in train]),
                              np.concatenate([read[id(t)][1] for t in train]),
                              np.concatenate([np.full(read[id(t)][1].size, i) for i, t in enumerate(train)]),
                              [t.name for t in train], target_prior)
        columns, labels = read[id(held)]
        eers.append(100.0 * compute_eer(fusion.apply(columns), labels))
    return eers


def markdown_table(rows: list[tuple[str, list[float]]], devs: list[TrialList], tests: list[TrialList]) -> str:
    names = [t.set_name for t in devs + tests]
    if len(set(names)) != len(names):
        names = [f"{t.group}:{t.set_name}" for t in devs + tests]
    header = ["components", *names[:len(devs)], "dev mean", *names[len(devs):]] + (["test mean"] if tests else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for components, eers in rows:
        dev, test = eers[:len(devs)], eers[len(devs):]
        cells = [components, *(f"{e:.2f}" for e in dev), f"**{np.mean(dev):.2f}**", *(f"{e:.2f}" for e in test)]
        if tests:
            cells.append(f"{np.mean(test):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", action="append", required=True,
                   help=f"comma-separated back-ends to fuse (repeatable: one row each), among "
                        f"{', '.join(b for b in BACKENDS if b != 'fused')}")
    p.add_argument("--target-prior", type=float, default=0.5, help="prior the training cross-entropy is weighted with")
    p.add_argument("--dev", nargs=3, action="append", required=True, metavar=("GROUP", "EVAL_DIR", "SET"),
                   help="a development list and its group (repeatable)")
    p.add_argument("--test", nargs=3, action="append", default=[], metavar=("GROUP", "EVAL_DIR", "SET"),
                   help="a test list and its group (repeatable)")
    args = p.parse_args(argv)
    check_prior(args.target_prior)
    component_sets = [parse_fusion_components(c) for c in args.components]
    devs = [TrialList(g, Path(d), s) for g, d, s in args.dev]
    tests = [TrialList(g, Path(d), s) for g, d, s in args.test]
    groups = {t.group for t in devs}
    if len(groups) < 2:
        raise UserError(f"--dev: lists of two or more groups are needed (each is scored by a fusion trained on "
                        f"the others); got {', '.join(sorted(groups))}")
    rows = [(",".join(c), held_out_eers(c, devs, tests, args.target_prior)) for c in component_sets]
    print(markdown_table(rows, devs, tests))
    return 0


if __name__ == "__main__":
    run_main(main)
