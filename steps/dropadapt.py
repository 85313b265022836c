#!/usr/bin/env python3
"""DropAdapt: adapt a trained extractor to the enrolment speakers of a test set, without labels.

Each round averages the model's softmax outputs over the enrolment utterances (ENROL_DIR/enrol.list,
features from ENROL_DIR/feats.scp), permanently removes the training classes the enrolment data
finds least probable, and fine-tunes on the rest. Writes into EXP_DIR:
final.pt (the adapted model), round<r>/p_avg.tsv and round<r>/remaining.txt per round, p_avg.png
(sorted p_avg over training classes, enrolment vs training data), config.yaml and .made_from.json.
A re-run with the same settings, model and data does nothing (an interrupted one resumes); with
any of them changed it is an error naming the differences, unless --overwrite.

Variants, the options and the `paper` preset (conf/dropadapt_paper.yaml: the authors' p_avg,
optimiser, combine and only_data semantics) are described in docs/METHOD.md.

Example:
  steps/dropadapt.py --config conf/dropadapt.yaml exp/xvector_baseline/final.pt \\
      data/train_no_sil data/test_no_sil exp/dropadapt_baseline
"""

from __future__ import annotations

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.devices import DEFAULT_DEVICE, DEVICE_HELP, resolve_device
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.dropadapt_config import DropAdaptConfig, open_adapt_dir


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=None,
                        help="DropAdapt configuration (YAML; default: the defaults of DropAdaptConfig)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set adapt.variant=combine (repeatable)")
    parser.add_argument("--device", default=DEFAULT_DEVICE,
                        help=f"{DEVICE_HELP}; for p_avg (fine-tuning uses train.device, also auto by default)")
    parser.add_argument("--overwrite", action="store_true",
                        help="adapt again from scratch when EXP_DIR was made with other settings, model or data")
    parser.add_argument("model", help="trained model file (exp/NAME/final.pt)")
    parser.add_argument("train_dir", help="the training data dir the model was trained on (feats.scp, utt2spk)")
    parser.add_argument("enrol_dir", help="test data dir with enrol.list, feats.scp and utt2spk")
    parser.add_argument("exp_dir", help="output directory")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, DropAdaptConfig, parse_overrides(args.set))
    with lock_output_dirs(args.exp_dir):
        # done (or refused) before torch loads: a recipe re-run starts this step once per system and seed
        if open_adapt_dir(cfg, args.model, args.train_dir, args.enrol_dir, args.exp_dir, overwrite=args.overwrite,
                          write=False).fresh:
            return
        from dropclass_lib.dropadapt import DropAdapt
        DropAdapt(cfg, args.model, args.train_dir, args.enrol_dir, args.exp_dir, resolve_device(args.device),
                  overwrite=args.overwrite).run()


if __name__ == "__main__":
    run_main(main)
