#!/usr/bin/env python3
"""Train an i-vector system: a diagonal UBM and a total-variability matrix on every utterance of
the data dirs (no labels), then LDA + PLDA on their i-vectors (utt2spk's speakers).

    steps/train_ivector.py [--config FILE] [--set KEY=VALUE] DATA_DIR [DATA_DIR ...] OUT_DIR

Each DATA_DIR holds the *raw* features of steps/make_features.py (before VAD and CMN: the
i-vector front end applies its own, see --config) and, when the configuration uses the VAD,
vad.scp from steps/compute_vad.py. Writes OUT_DIR/extractor.npz (settings, UBM, matrix) and
OUT_DIR/plda.npz; steps/make_model_package.py --ivector / --ivector-raw puts the system into a
model package, whose `ivector` / `ivector_raw` back-end then scores with it. Kept when made from
the same features and settings (OUT_DIR/.made_from.json), redone otherwise. Options: the
library's IvectorConfig (dropclass_lib/backends/ivector.py); egs/realspeech/conf/ivector.yaml
documents each key.

Example:
  steps/train_ivector.py --config conf/ivector.yaml data/asc_train data/dsp_train exp/ivector/no_so
"""

from __future__ import annotations

import argparse

from dropclass_lib.backends.ivector import IvectorConfig, train_system
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.dirlock import lock_output_dirs


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML i-vector options (default: the library's IvectorConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. --set num_gauss=512 (repeatable)")
    p.add_argument("data_dirs", nargs="+", metavar="DATA_DIR", help="raw-feature data dirs to train on")
    p.add_argument("out_dir", metavar="OUT_DIR")
    args = p.parse_args(argv)
    config = load_config(args.config, IvectorConfig, parse_overrides(args.set))
    with lock_output_dirs(args.out_dir):
        train_system(args.data_dirs, args.out_dir, config)
    return 0


if __name__ == "__main__":
    run_main(main)
