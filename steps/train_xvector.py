#!/usr/bin/env python3
"""Train a speaker-embedding extractor (x-vector TDNN family) on a Kaldi data dir with features,
as a classifier over its speakers, optionally with DropClass.

  steps/train_xvector.py --config conf/train_dropclass.yaml --dir exp/dropclass data/train
  torchrun --nproc_per_node 2 steps/train_xvector.py --config ... --dir ... data/train   # DDP

DATA_DIR needs feats.scp (Kaldi ark offsets) and utt2spk; utt2num_frames is used if present.
Writes into --dir: config.yaml (the resolved configuration), drop_schedule.tsv, train.log,
tensorboard/, checkpoint_<iter>.pt and finally final.pt (read by the later stages through
dropclass_lib.model_io.load_model). A directory with final.pt is skipped; one with
checkpoints only needs --resume. --set overrides config keys: --set optim.lr=0.1
--set model.head_opts.m=0.3 (values are YAML).
"""

from __future__ import annotations

import os
import sys

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import UserError
from dropclass_lib.training.checkpoint import is_checkpoint_file, is_model_file
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.trainer import train


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
        if is_checkpoint_file(value):
            what = "a training checkpoint"
        elif is_model_file(value):
            what = "a trained model (final.pt of a finished training), not a checkpoint: there is nothing to resume"
        else:
            what = "a file"
        raise UserError(f"--resume takes no file: {value} is {what}; --resume continues the training in --dir "
                        "from its newest checkpoint_<iter>.pt")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    check_resume_takes_no_file(argv)
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="YAML training configuration (conf/train_*.yaml)")
    parser.add_argument("--dir", required=True, help="experiment directory, e.g. exp/baseline")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --dir")
    parser.add_argument("--seed", type=int, default=None, help="override train.seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--stop-at", type=int, default=None, metavar="ITER",
                        help="stop after iteration ITER with a checkpoint, without final.pt (for time-limited jobs)")
    parser.add_argument("data_dir", help="training data dir with feats.scp and utt2spk")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    if args.seed is not None:
        overrides["train.seed"] = args.seed
    cfg = load_config(args.config, TrainConfig, overrides)
    writer = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 writes --dir
    with lock_output_dirs(args.dir if writer else None):
        train(cfg, args.data_dir, args.dir, resume=args.resume, stop_at=args.stop_at)
    return 0


if __name__ == "__main__":
    run_main(main)
