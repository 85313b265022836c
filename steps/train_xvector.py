#!/usr/bin/env python3
"""Train a speaker-embedding extractor (x-vector TDNN family) on a Kaldi data dir with features,
as a classifier over its speakers, optionally with DropClass.

  steps/train_xvector.py [options] DATA_DIR EXP_DIR
  steps/train_xvector.py --config conf/train_dropclass.yaml data/train exp/dropclass
  torchrun --nproc_per_node 2 steps/train_xvector.py --config ... data/train exp/X   # DDP

DATA_DIR needs feats.scp (Kaldi ark offsets) and utt2spk; utt2num_frames is used if present.
Writes into EXP_DIR: config.yaml (the resolved configuration), drop_schedule.tsv, train.log,
tensorboard/, checkpoint_<iter>.pt, finally final.pt (read by the later stages through
dropclass_lib.model_io.load_model) and .made_from.json (configuration and data it was made
from). A finished EXP_DIR made with the same configuration and data is kept; one finished or
started with another configuration or other data is an error naming the differing keys
(--overwrite trains it again from scratch); an interrupted one continues with --resume.
--set overrides config keys: --set optim.lr=0.1 --set model.head_opts.m=0.3 (values are
YAML). --dir EXP_DIR is the deprecated spelling of the positional EXP_DIR.
"""

from __future__ import annotations

import logging
import os
import sys

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import UserError
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.record import open_training_dir


def check_resume_takes_no_file(argv: list[str]) -> None:
    """``--resume FILE`` (a model or checkpoint given to it) would otherwise read FILE as the
    data directory, or end in argparse's 'unrecognized arguments': say what --resume does."""
    for i, arg in enumerate(argv):
        if arg.startswith("--resume="):
            value = arg.split("=", 1)[1]
        elif arg == "--resume" and i + 1 < len(argv):
            value = argv[i + 1]
        else:
            continue
        if not os.path.isfile(value):
            continue
        from dropclass_lib.training.checkpoint import is_checkpoint_file, is_model_file

        if is_checkpoint_file(value):
            what = "a training checkpoint"
        elif is_model_file(value):
            what = "a trained model (final.pt of a finished training), not a checkpoint: there is nothing to resume"
        else:
            what = "a file"
        raise UserError(f"--resume takes no file: {value} is {what}; --resume continues the training in EXP_DIR "
                        "from its newest checkpoint_<iter>.pt")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    check_resume_takes_no_file(argv)
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="YAML training configuration (conf/train_*.yaml)")
    parser.add_argument("--dir", help="deprecated: the experiment directory, now the last positional argument")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in EXP_DIR")
    parser.add_argument("--overwrite", action="store_true",
                        help="train again from scratch when EXP_DIR was made with another configuration or data")
    parser.add_argument("--seed", type=int, default=None, help="override train.seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--stop-at", type=int, default=None, metavar="ITER",
                        help="stop after iteration ITER with a checkpoint, without final.pt (for time-limited jobs)")
    parser.add_argument("data_dir", help="training data dir with feats.scp and utt2spk")
    parser.add_argument("exp_dir", nargs="?", help="experiment directory, e.g. exp/baseline")
    args = parser.parse_args(argv)
    if args.dir is not None:
        if args.exp_dir is not None:
            raise UserError(f"the experiment directory is given twice (--dir {args.dir} and {args.exp_dir}): "
                            "drop the deprecated --dir")
        logging.warning("--dir is deprecated: give the experiment directory as the last argument")
        args.exp_dir = args.dir
    if args.exp_dir is None:
        raise UserError("no experiment directory: steps/train_xvector.py [options] DATA_DIR EXP_DIR")
    overrides = parse_overrides(args.set)
    if args.seed is not None:
        overrides["train.seed"] = args.seed
    cfg = load_config(args.config, TrainConfig, overrides)
    writer = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 writes --dir
    with lock_output_dirs(args.exp_dir if writer else None):
        # a finished training (or one that refuses the settings) ends here, before torch is loaded
        if open_training_dir(cfg, args.data_dir, args.exp_dir, overwrite=args.overwrite, write=False).fresh:
            return 0
        from dropclass_lib.training.trainer import train

        train(cfg, args.data_dir, args.exp_dir, resume=args.resume, stop_at=args.stop_at, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    run_main(main)
