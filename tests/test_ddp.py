"""DDP: the global batch split across ranks, rank-sharded batches, rank 0 writing; CPU processes
under torchrun (gloo), up to the paper's VoxCeleb DropClass shape on 8 processes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dropclass_lib.model_io import load_model
from dropclass_lib.training.checkpoint import list_checkpoints
from dropclass_lib.training.config import DropClassConfig
from dropclass_lib.training.data import FeatIndex
from dropclass_lib.training.dropclass import ClassState, DropSchedule
from dropclass_lib.training.sampler import BatchSampler
from test_training import TINY
from test_training_data import make_feats_dir

ROOT = Path(__file__).resolve().parents[1]
VOXCELEB_DROPCLASS = ROOT / "egs/voxceleb/conf/train_dropclass.yaml"


def torchrun(nproc: int, script: Path, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                           "--master_port", "0", "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0",
                           str(script), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def rank_samplers(ix, world, batch, cfg, kind="balanced", seed=5):
    """One sampler per rank of ``world``, as each rank's trainer builds it."""
    return [BatchSampler(ix, DropSchedule(cfg, ClassState.full(ix.classes), seed), kind, batch, 20, 30, seed,
                         rank, world) for rank in range(world)]


@pytest.mark.parametrize("kind", ["balanced", "random"])
def test_ranks_slices_make_up_the_single_process_batch(tmp_path, kind):
    """batch_size is the global batch: 8 ranks' slices of 30 (3 or 4 each) are the 1-process batch."""
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d", num_spk=40, utts_per_spk=3))
    cfg = DropClassConfig(num_drop=5, its_per_drop=4)
    (single,), ranks = rank_samplers(ix, 1, 30, cfg, kind), rank_samplers(ix, 8, 30, cfg, kind)
    assert [len(range(30)[s.slice]) for s in ranks] == [3, 4, 4, 4, 3, 4, 4, 4]
    assert sum(s.rank_loss_weight for s in ranks) == pytest.approx(8) and single.rank_loss_weight == 1.0
    losses = np.random.default_rng(0).random(30)  # per-utterance losses: DDP's mean of weighted rank means
    assert np.mean([s.rank_loss_weight * losses[s.slice].mean() for s in ranks]) == pytest.approx(losses.mean())
    for specs in zip(iter(single), *map(iter, ranks), range(12)):
        whole, parts = specs[0], specs[1:-1]
        np.testing.assert_array_equal(np.concatenate([p.utts for p in parts]), whole.utts)
        np.testing.assert_array_equal(np.concatenate([p.starts for p in parts]), whole.starts)
        assert {p.length for p in parts} == {whole.length}
        it = whole.iteration
        for s in ranks:
            np.testing.assert_array_equal(s.batch_classes(it), ix.labels[whole.utts])
        if kind == "balanced":
            assert len(set(ix.labels[whole.utts])) == 30  # 30 distinct of the 35 sampleable classes
            assert not set(ix.labels[whole.utts]) & set(single.schedule.dropped(it))


def test_drop_per_batch_rows_are_the_global_batch_union(tmp_path):
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d", num_spk=40, utts_per_spk=3))
    ranks = rank_samplers(ix, 4, 10, DropClassConfig(drop_per_batch=True))
    for specs in zip(*map(iter, ranks), range(6)):
        it = specs[0].iteration
        union = np.unique(np.concatenate([ix.labels[spec.utts] for spec in specs[:-1]]))
        assert len(union) == 10
        for s, spec in zip(ranks, specs):
            rows = s.schedule.active_rows(it, s.batch_classes(it))
            assert rows.tolist() == union.tolist()
            assert len(np.unique(ix.labels[spec.utts])) < len(union)  # more than the rank's own classes


def test_global_batch_errors_name_the_numbers(tmp_path):
    ix = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d"))  # 12 classes
    with pytest.raises(ValueError, match=r"data.batch_size=5 is the global batch, split across the 8 processes: "
                                         r"it must be at least 8"):
        rank_samplers(ix, 8, 5, DropClassConfig())
    with pytest.raises(ValueError, match=r"needs 10 distinct classes .* only 9 can be sampled"):
        rank_samplers(ix, 2, 10, DropClassConfig(num_drop=3))
    assert len(rank_samplers(ix, 2, 9, DropClassConfig(num_drop=3))) == 2  # 9 of 12 - 3: fits


@pytest.mark.slow
def test_two_process_ddp_training(tmp_path):
    data = make_feats_dir(tmp_path / "train")
    conf = tmp_path / "ddp.yaml"
    cfg = {k: dict(v) for k, v in TINY.items()}
    cfg["data"] = {**cfg["data"], "batch_size": 4}
    cfg["train"] = {"num_iters": 6, "checkpoint_every": 3, "log_every": 2}
    conf.write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "exp"
    proc = torchrun(2, ROOT / "steps/train_xvector.py", "--config", conf, "--dir", exp, data, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) on cpu" in (exp / "train.log").read_text()
    assert [n for n, _ in list_checkpoints(exp)] == [3, 6]
    model = load_model(exp / "final.pt")
    assert torch.isfinite(model.head.weight).all()
    log = (exp / "train.log").read_text()
    assert log.count("iter 2/6 ") == 1 and log.count("wrote ") == 1  # only rank 0 logs and writes


@pytest.mark.slow
def test_paper_voxceleb_dropclass_conf_starts_on_8_processes(tmp_path):
    """egs/voxceleb's DropClass conf (batch 500, 2,000 of 5,994 classes dropped) on 8 gloo ranks,
    with a tiny extractor, tiny features and short crops: 500 > 5,994 - 2,000 would not fit if
    each rank needed 500 classes of its own."""
    data = make_feats_dir(tmp_path / "train", num_spk=5994, utts_per_spk=2, dim=4, frames=(30, 40))
    paper = yaml.safe_load(VOXCELEB_DROPCLASS.read_text())
    assert (paper["data"]["batch_size"], paper["dropclass"]["num_drop"]) == (500, 2000)
    sets = ["model.extractor_opts={frame_dims: [8, 8, 8, 8, 16], emb_dim: 8}", "data.min_frames=20",
            "data.max_frames=20", "data.min_utt_frames=20", "data.num_workers=0", "dropclass.its_per_drop=2",
            "train.num_iters=4", "train.checkpoint_every=4", "train.log_every=2", "train.device=cpu"]
    exp = tmp_path / "exp"
    proc = torchrun(8, ROOT / "steps/train_xvector.py", "--config", VOXCELEB_DROPCLASS, "--dir", exp,
                    *[a for s in sets for a in ("--set", s)], data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (exp / "train.log").read_text()
    assert "on 11988 utterances of 5994 speakers" in log and "8 process(es) on cpu" in log
    assert log.count("iter 4/4 ") == 1
    plan = (exp / "drop_schedule.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in plan] == ["0", "2"]
    assert all(len(line.split("\t")[1].split(",")) == 2000 for line in plan)
    model = load_model(exp / "final.pt")
    assert model.head.weight.shape[0] == 5994 and torch.isfinite(model.head.weight).all()


@pytest.mark.slow
def test_drop_per_batch_rows_are_the_same_on_every_rank(tmp_path):
    """Through the trainer on 3 ranks (slices of 3, 3, 4): every rank's softmax rows at every
    iteration are the union of the classes all ranks trained on."""
    data = make_feats_dir(tmp_path / "train", num_spk=30, utts_per_spk=2)
    cfg = {k: dict(v) for k, v in TINY.items()}
    cfg["data"] = {**cfg["data"], "batch_size": 10}
    cfg["dropclass"] = {"drop_per_batch": True}
    cfg["train"] = {"num_iters": 5, "checkpoint_every": 5, "log_every": 5}
    conf = tmp_path / "ddp.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "record"
    proc = torchrun(3, ROOT / "tests/ddp_record_active_rows.py", conf, data, tmp_path / "exp", out, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [np.load(out / f"rank{r}.npz") for r in range(3)]
    for it in range(5):
        slices = [rec[f"slice_{it}"] for rec in records]
        assert [len(s) for s in slices] == [3, 3, 4]
        union = np.unique(np.concatenate(slices))
        assert len(union) == 10
        for rec in records:
            np.testing.assert_array_equal(rec[f"rows_{it}"], union)
