"""Two CPU processes under torchrun: DDP training with rank-sharded batches, rank 0 writing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dropclass_lib.model_io import load_model
from dropclass_lib.training.checkpoint import list_checkpoints
from test_training import TINY
from test_training_data import make_feats_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_ddp_training(tmp_path):
    data = make_feats_dir(tmp_path / "train")
    conf = tmp_path / "ddp.yaml"
    cfg = {k: dict(v) for k, v in TINY.items()}
    cfg["data"] = {**cfg["data"], "batch_size": 4}
    cfg["train"] = {"num_iters": 6, "checkpoint_every": 3, "log_every": 2}
    conf.write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "exp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "0", "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0",
                           str(ROOT / "steps/train_xvector.py"), "--config", str(conf), "--dir", str(exp), str(data)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) on cpu" in (exp / "train.log").read_text()
    assert [n for n, _ in list_checkpoints(exp)] == [3, 6]
    model = load_model(exp / "final.pt")
    assert torch.isfinite(model.head.weight).all()
    log = (exp / "train.log").read_text()
    assert log.count("iter 2/6 ") == 1 and log.count("wrote ") == 1  # only rank 0 logs and writes
