"""The trainer: final.pt, exact resume, skipping finished runs, config errors, divergence."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dropclass_lib.config import from_dict, load_config
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.model_io import load_model
from dropclass_lib.training.checkpoint import list_checkpoints
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.trainer import TrainingDiverged, config_differences, lr_factor, train
from test_training_data import make_feats_dir

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"extractor": "tdnn", "extractor_opts": {"frame_dims": [16, 16, 16, 16, 32], "emb_dim": 12},
              "head": "aamsoftmax", "head_opts": {"s": 10.0, "m": 0.1}},
    "data": {"batch_size": 5, "min_frames": 20, "max_frames": 30, "min_utt_frames": 20, "num_workers": 0},
    "optim": {"lr": 0.1, "lr_halve_at": [6], "warmup_iters": 2, "grad_clip": 5.0},
    "dropclass": {"num_drop": 3, "its_per_drop": 4, "reset_head_each_drop": True},
    "train": {"num_iters": 10, "checkpoint_every": 4, "log_every": 2},
}


def tiny_cfg(**sections) -> TrainConfig:
    data = {k: dict(v) for k, v in TINY.items()}
    for section, values in sections.items():
        data[section].update(values)
    return from_dict(TrainConfig, data)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_feats_dir(tmp_path_factory.mktemp("feats") / "train")


def params(model):
    return {**{f"e.{k}": v for k, v in model.extractor.state_dict().items()},
            **{f"h.{k}": v for k, v in model.head.state_dict().items()}}


def test_training_writes_the_experiment_dir_and_learns(tmp_path, data_dir):
    exp = tmp_path / "exp"
    cfg = tiny_cfg(dropclass={"num_drop": 0}, train={"num_iters": 40, "checkpoint_every": 20})
    result = train(cfg, data_dir, exp)
    assert result.final == exp / "final.pt"
    for name in ("config.yaml", "drop_schedule.tsv", "train.log", "final.pt"):
        assert (exp / name).is_file(), name
    assert list((exp / "tensorboard").iterdir())
    assert [n for n, _ in list_checkpoints(exp)] == [20, 40]
    assert load_config(exp / "config.yaml", TrainConfig) == cfg
    model = load_model(exp / "final.pt")
    assert model.classes == [f"spk{i:03d}" for i in range(12)]
    assert model.config["model"]["head"] == "aamsoftmax" and not model.extractor.training
    log = (exp / "train.log").read_text()
    losses = [float(line.split(" loss ")[1].split()[0]) for line in log.splitlines() if " loss " in line]
    assert len(losses) == 20 and np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    emb = model.extractor(torch.randn(2, 50, 6))
    assert emb.shape == (2, 12)
    assert result.stats.iterations == 39 and result.stats.frames > 0
    # re-running a finished experiment does nothing
    mtime = (exp / "final.pt").stat().st_mtime_ns
    again = train(cfg, data_dir, exp)
    assert again.final == exp / "final.pt" and (exp / "final.pt").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, data_dir, workers):
    cfg = tiny_cfg(data={"num_workers": workers})
    train(cfg, data_dir, tmp_path / "straight")
    part = train(cfg, data_dir, tmp_path / "split", stop_at=6)  # between checkpoints, after a head reset
    assert part.final is None and not (tmp_path / "split" / "final.pt").exists()
    assert [n for n, _ in list_checkpoints(tmp_path / "split")] == [4, 6]
    with pytest.raises(UserError, match="--resume"):
        train(cfg, data_dir, tmp_path / "split")
    train(cfg, data_dir, tmp_path / "split", resume=True)
    a, b = load_model(tmp_path / "straight" / "final.pt"), load_model(tmp_path / "split" / "final.pt")
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    # and a different seed gives a different model
    c = train(tiny_cfg(train={"seed": 1}), data_dir, tmp_path / "seed1")
    assert not torch.equal(params(load_model(c.final))["h.weight"], pa["h.weight"])


def test_resume_refuses_a_changed_config(tmp_path, data_dir):
    train(tiny_cfg(), data_dir, tmp_path / "e", stop_at=4)
    with pytest.raises(UserError, match=r"optim\.lr \(0\.1 -> 0\.05\)"):
        train(tiny_cfg(optim={"lr": 0.05}), data_dir, tmp_path / "e", resume=True)
    assert config_differences({"train": {"num_iters": 5}}, {"train": {"num_iters": 9}}) == []


@pytest.mark.slow
def test_a_finished_training_with_a_changed_setting_refuses_naming_the_key(tmp_path, data_dir):
    """The issue's case: train_xvector.py --set optim.lr=0.05 on a finished dir printed "final.pt
    exists: training already finished, skipping" and exited 0, as did another num_drop, another
    extractor and a data dir that does not exist."""
    exp = tmp_path / "exp"
    conf = tmp_path / "tiny.yaml"
    conf.write_text(yaml.safe_dump(TINY))
    assert run_cli("--config", conf, data_dir, exp).returncode == 0
    final = (exp / "final.pt").stat().st_mtime_ns
    # the re-run and the refusals end before torch is imported (a recipe re-run starts one per training)
    loads_torch = lambda proc: re.search(r"\|\s+torch$", proc.stderr, re.M) is not None
    again = run_cli("--config", conf, data_dir, exp, python_options=["-X", "importtime"])
    assert again.returncode == 0 and "up to date" in again.stderr and not loads_torch(again)
    for override, key in (("optim.lr=0.05", r"optim\.lr \(0\.1 -> 0\.05\)"),
                          ("dropclass.num_drop=2", r"dropclass\.num_drop \(3 -> 2\)"),
                          ("model.extractor=etdnn", r"model\.extractor \('tdnn' -> 'etdnn'\)")):
        proc = run_cli("--config", conf, "--set", override, data_dir, exp, python_options=["-X", "importtime"])
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert re.search(key, proc.stderr) and "--overwrite" in proc.stderr, proc.stderr
        assert not loads_torch(proc)
    proc = run_cli("--config", conf, tmp_path / "no_such_data", exp)
    assert proc.returncode == 1 and "no_such_data" in proc.stderr and "Traceback" not in proc.stderr
    assert (exp / "final.pt").stat().st_mtime_ns == final
    # --overwrite redoes it under the new settings (deprecated --dir still accepted)
    proc = run_cli("--config", conf, "--set", "optim.lr=0.05", "--overwrite", "--dir", exp, data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "deprecated" in proc.stderr
    assert load_config(exp / "config.yaml", TrainConfig).optim.lr == 0.05
    assert load_model(exp / "final.pt").config["optim"]["lr"] == 0.05


def test_a_partly_trained_dir_with_other_data_refuses_and_same_settings_resume(tmp_path, data_dir):
    train(tiny_cfg(), data_dir, tmp_path / "e", stop_at=4)
    other = make_feats_dir(tmp_path / "other", seed=5)
    with pytest.raises(UserError, match=r"input changed: .*feats\.scp|new input .*other"):
        train(tiny_cfg(), other, tmp_path / "e", resume=True)
    assert train(tiny_cfg(), data_dir, tmp_path / "e", resume=True).final == tmp_path / "e" / "final.pt"


def test_lr_schedule_warmup_and_halving():
    f = lr_factor(tiny_cfg(optim={"warmup_iters": 4, "lr_halve_at": [6, 8]}))
    assert [f(i) for i in range(10)] == [0.25, 0.5, 0.75, 1, 1, 1, 0.5, 0.5, 0.25, 0.25]


def test_nan_loss_stops_with_iteration_and_last_checkpoint(tmp_path, data_dir):
    cfg = tiny_cfg(optim={"lr": 1e30, "grad_clip": 0.0, "warmup_iters": 0}, dropclass={"num_drop": 0},
                   model={"head": "softmax", "head_opts": {}}, train={"checkpoint_every": 1})
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at iteration (\d+); the last good checkpoint is "
                                               r".*checkpoint_(\d+)\.pt \(iteration \d+\)"):
        train(cfg, data_dir, tmp_path / "nan")
    # a feature containing inf: caught at the first iteration that reads it
    bad = make_feats_dir(tmp_path / "bad", num_spk=5, utts_per_spk=1, frames=(40, 40),
                         inf_utt="spk002-u0")
    cfg = tiny_cfg(dropclass={"num_drop": 0})
    with pytest.raises(TrainingDiverged, match="at iteration 1; no checkpoint was written before it"):
        train(cfg, bad, tmp_path / "inf")
    assert not (tmp_path / "inf" / "final.pt").exists()


def test_unknown_key_and_bad_values_are_named(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  extractor: tdnn\noptim:\n  lr: 0.1\n  momentun: 0.5\n")
    with pytest.raises(InputFileError, match=r"c.yaml:5: unknown config key 'optim.momentun'"):
        load_config(conf, TrainConfig)
    conf.write_text("data:\n  sampler: shuffled\n")
    with pytest.raises(UserError, match="data.sampler must be one of"):
        load_config(conf, TrainConfig)


def run_cli(*args, python_options=()):
    return subprocess.run([sys.executable, *python_options, str(ROOT / "steps/train_xvector.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_cli_trains_overrides_and_reports_errors_without_traceback(tmp_path, data_dir):
    conf = tmp_path / "tiny.yaml"
    conf.write_text(yaml.safe_dump(TINY))
    exp = tmp_path / "exp"
    proc = run_cli("--config", conf, "--dir", exp, "--seed", 3, "--set", "train.num_iters=5",
                   "--set", "model.head_opts.m=0.2", data_dir)
    assert proc.returncode == 0, proc.stderr
    saved = load_config(exp / "config.yaml", TrainConfig)
    assert saved.train.seed == 3 and saved.train.num_iters == 5 and saved.model.head_opts["m"] == 0.2
    assert load_model(exp / "final.pt").head.m == 0.2
    proc = run_cli("--config", conf, "--dir", tmp_path / "x", "--set", "optim.momentun=1", data_dir)
    assert proc.returncode == 1 and "unknown config key 'optim.momentun'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_recipe_configs_load_and_differ_only_in_dropclass():
    from dataclasses import replace

    from dropclass_lib.heads import build_head
    from dropclass_lib.models import build_extractor

    base = load_config(ROOT / "conf/train_baseline.yaml", TrainConfig)
    drop = load_config(ROOT / "conf/train_dropclass.yaml", TrainConfig)
    assert base.dropclass.num_drop == 0 and drop.dropclass.num_drop > 0
    assert replace(drop, dropclass=base.dropclass) == base
    assert 120 - drop.dropclass.num_drop >= drop.data.batch_size
    ext = build_extractor(base.model.extractor, input_dim=30, **base.model.extractor_opts)
    build_head(base.model.head, ext.emb_dim, 120, **base.model.head_opts)


@pytest.mark.parametrize("variant", [
    {"dropclass": {"drop_per_batch": True, "reset_head_each_drop": False}, "data": {"sampler": "random"}},
    {"model": {"extractor": "ftdnn", "head": "xvector", "head_opts": {"hidden_dim": 8},
               "extractor_opts": {"first_dim": 8, "layer_dims": [8, 8], "bottleneck_dim": 4, "strides": [1, 2],
                                  "final_dim": 16, "emb_dim": 8, "orth_every": 1}},
     "optim": {"name": "adam", "lr": 0.01}},
])
def test_variants_train(tmp_path, data_dir, variant):
    cfg = tiny_cfg(train={"num_iters": 4, "checkpoint_every": 4}, **variant)
    model = load_model(train(cfg, data_dir, tmp_path / "e").final)
    assert all(torch.isfinite(p).all() for p in model.extractor.parameters())


def test_cpu_amp_trains_under_bf16_autocast_on_cpu(tmp_path, data_dir):
    runs = {}
    for cpu_amp in (False, True):
        cfg = tiny_cfg(dropclass={"num_drop": 0}, train={"num_iters": 4, "checkpoint_every": 4, "device": "cpu",
                                                         "cpu_amp": cpu_amp})
        exp = tmp_path / f"cpu_amp_{cpu_amp}"
        runs[cpu_amp] = params(load_model(train(cfg, data_dir, exp).final))
        assert ("under bfloat16 autocast" in (exp / "train.log").read_text()) == cpu_amp
    assert all(torch.isfinite(v).all() for v in runs[True].values())
    assert any(not torch.equal(runs[False][k], runs[True][k]) for k in runs[False])
    with pytest.raises(UserError, match="train.cpu_amp needs train.amp"):
        tiny_cfg(train={"amp": False, "cpu_amp": True}).validate()


def test_cli_help_and_bad_set(capsys):
    sys.path.insert(0, str(ROOT / "steps"))
    try:
        import train_xvector
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as exit_info:
        train_xvector.main(["--help"])
    assert exit_info.value.code == 0 and "--resume" in capsys.readouterr().out
    with pytest.raises(UserError, match="--set expects key=value"):
        train_xvector.main(["--config", "x.yaml", "--dir", "e", "--set", "optim.lr", "data"])
    from dropclass_lib.config import parse_overrides

    assert parse_overrides(["optim.lr=1e30", "a.b=[1, 2]", "c=x"]) == {"optim.lr": 1e30, "a.b": [1, 2], "c": "x"}
