"""Run under torchrun by tests/test_ddp.py: train through the real trainer and record, per rank and
iteration, the head rows the trainer put in the softmax and the classes of this rank's slice.

    torchrun --nproc_per_node N tests/ddp_record_active_rows.py CONFIG DATA_DIR EXP_DIR OUT_DIR

Writes OUT_DIR/rank<R>.npz: ``rows_<it>`` (the active rows) and ``slice_<it>`` (the classes
of the utterances this rank trained on at iteration ``it``).
"""

import os
import sys
from pathlib import Path

import numpy as np

from dropclass_lib.config import load_config
from dropclass_lib.training import dropclass, sampler
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.trainer import train


def main(config: str, data_dir: str, exp_dir: str, out_dir: str) -> None:
    rows, slices = {}, {}
    active_rows, rank_spec = dropclass.DropSchedule.active_rows, sampler.BatchSampler._rank_spec

    def recording_active_rows(self, iteration, batch_classes):
        result = active_rows(self, iteration, batch_classes)
        rows[f"rows_{iteration}"] = result.numpy()
        return result

    def recording_rank_spec(self, iteration, utts, starts, length):
        spec = rank_spec(self, iteration, utts, starts, length)
        slices[f"slice_{iteration}"] = self.index.labels[spec.utts]
        return spec

    dropclass.DropSchedule.active_rows = recording_active_rows
    sampler.BatchSampler._rank_spec = recording_rank_spec
    cfg = load_config(config, TrainConfig)
    train(cfg, data_dir, exp_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out_dir) / f"rank{os.environ['RANK']}.npz", **rows, **slices)


if __name__ == "__main__":
    main(*sys.argv[1:])
