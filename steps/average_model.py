#!/usr/bin/env python3
"""Average the last checkpoints of a training run into one model file (WeSpeaker's average_model).

    steps/average_model.py [--last K] [--template MODEL] EXP_DIR OUT.pt
    steps/average_model.py [--template MODEL] CHECKPOINT... OUT.pt

With EXP_DIR: its newest K checkpoint_<iter>.pt (default: all that the trainer kept; it keeps
train.keep_checkpoints of them). Otherwise the checkpoints (or model files) given, oldest
first. Extractor and head parameters are averaged, BatchNorm running statistics too;
num_batches_tracked is taken from the newest. OUT.pt is a model file like final.pt, read by
every later step (steps/extract_embeddings.py, dropclass_lib.load_model).

The architecture, class names and configuration come from --template, by default the run's
final.pt (EXP_DIR/final.pt, or the final.pt beside the newest checkpoint given).

Example:
  steps/average_model.py --last 3 exp/baseline/seed1 exp/baseline/seed1/avg3.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import UserError
from dropclass_lib.model_averaging import average_model, last_checkpoints


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--last", type=int, default=None, help="average the newest K checkpoints of EXP_DIR (default: all kept)")
    p.add_argument("--template", default=None,
                   help="model file giving the architecture and classes (default: the run's final.pt)")
    p.add_argument("inputs", nargs="+", metavar="EXP_DIR|CHECKPOINT", help="a training directory, or checkpoints")
    p.add_argument("out", metavar="OUT.pt")
    args = p.parse_args(argv)
    inputs = [Path(x) for x in args.inputs]
    if len(inputs) == 1 and inputs[0].is_dir():
        run_dir = inputs[0]
        inputs = last_checkpoints(run_dir, args.last)
    else:
        if args.last is not None:
            raise UserError("--last goes with a training directory, not with checkpoints named one by one")
        for path in inputs:
            if not path.is_file():
                raise UserError(f"{path} does not exist (expected a training directory or checkpoint files)")
        run_dir = inputs[-1].parent
    template = Path(args.template) if args.template else run_dir / "final.pt"
    if not template.is_file():
        raise UserError(f"{template} does not exist: the average needs a model file of the run for its architecture "
                        "and classes (let the training finish, or pass --template MODEL)")
    if Path(args.out).resolve() in {p.resolve() for p in (*inputs, template)}:
        raise UserError(f"{args.out} is one of the inputs: write the average to another file")
    average_model(inputs, template, args.out)
    return 0


if __name__ == "__main__":
    run_main(main)
