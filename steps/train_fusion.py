#!/usr/bin/env python3
"""Train the ``fused`` back-end of a model package: a linear fusion, in log-likelihood ratios, of
the scores of its back-ends (by default one embedding back-end with the utterances' cepstral
statistics), on development trial lists.

    steps/train_fusion.py [--components B1,B2] [--target-prior P] --dev EVAL_DIR SET [--dev ...] MODEL

Each ``--dev EVAL_DIR SET`` names the development list SET scored by steps/evaluate_model.py (with
--raw-data) in EVAL_DIR: the fusion reads EVAL_DIR/scores_SET_<component>/ for every component.
The lists may come from other systems than MODEL (e.g. the leave-one-corpus-out systems of other
held-out corpora: then no trial of the corpus MODEL is tested on trains its fusion); each list
weighs the same. The weights go to MODEL/fusion.yaml, read by the ``fused`` back-end of
steps/evaluate_model.py, steps/score_corpus.py and the results tables; a fusion trained again on
other lists replaces it, and the ``fused`` scores made with the old one are then redone.

Example:
  steps/train_fusion.py --components plda_dm,stats --dev exp/loco/no_asc asc_dev \\
      --dev exp/loco/no_dsp dsp_dev exp/loco/no_so
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from dropclass_lib.backends.trial_scoring import read_score_columns
from dropclass_lib.calibration import check_prior, train_fusion
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.evaluation import BACKENDS, parse_fusion_components
from dropclass_lib.package import FUSION_FILE, open_package, write_yaml

log = logging.getLogger("train_fusion")

DEFAULT_COMPONENTS = "cosine_dm,stats"


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", default=DEFAULT_COMPONENTS,
                   help=f"comma-separated back-ends to fuse, among {', '.join(b for b in BACKENDS if b != 'fused')}")
    p.add_argument("--target-prior", type=float, default=0.5, help="prior the training cross-entropy is weighted with")
    p.add_argument("--dev", nargs=2, action="append", required=True, metavar=("EVAL_DIR", "SET"),
                   help="a development list: the evaluation directory and the trial set's name (repeatable)")
    p.add_argument("model", help="model package directory to write fusion.yaml into")
    args = p.parse_args(argv)
    check_prior(args.target_prior)
    components = parse_fusion_components(args.components)
    package = open_package(args.model)
    blocks, labels, groups, names = [], [], [], []
    for i, (eval_dir, set_name) in enumerate(args.dev):
        columns, lab = read_score_columns(Path(eval_dir), set_name, components)
        blocks.append(columns)
        labels.append(lab)
        groups.append(np.full(lab.size, i))
        names.append(f"{eval_dir}:{set_name}")
    fusion = train_fusion(components, np.concatenate(blocks), np.concatenate(labels), np.concatenate(groups),
                          names, args.target_prior)
    if any(w <= 0 for w in fusion.weights):
        log.warning("fusion weights %s: a component whose weight is not positive does not help on these lists",
                    dict(zip(components, fusion.weights)))
    write_yaml(package.root / FUSION_FILE, fusion.record())
    log.info("fusion of %s: weights %s, offset %.4g, trained on %s -> %s", ", ".join(components),
             ", ".join(f"{w:.4g}" for w in fusion.weights), fusion.offset, ", ".join(names),
             package.root / FUSION_FILE)
    return 0


if __name__ == "__main__":
    run_main(main)
