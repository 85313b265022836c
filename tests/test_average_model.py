"""steps/average_model.py: the averaged model's parameters are the mean of the checkpoints'."""

from __future__ import annotations

import shutil

import pytest
import torch

from conftest import run_cli
from dropclass_lib.config import from_dict
from dropclass_lib.model_io import load_model
from dropclass_lib.training.checkpoint import list_checkpoints, load_checkpoint
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.trainer import train
from test_training_data import make_feats_dir

TINY = {
    "model": {"extractor": "tdnn", "extractor_opts": {"frame_dims": [16, 16, 16, 16, 32], "emb_dim": 12},
              "head": "aamsoftmax", "head_opts": {"s": 10.0, "m": 0.1}},
    "data": {"batch_size": 5, "min_frames": 20, "max_frames": 30, "min_utt_frames": 20, "num_workers": 0},
    "optim": {"lr": 0.1},
    "train": {"num_iters": 12, "checkpoint_every": 4, "keep_checkpoints": 3, "log_every": 4},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("avg")
    train(from_dict(TrainConfig, TINY), make_feats_dir(root / "train"), root / "exp")
    return root / "exp"


def _expected(paths) -> dict[str, torch.Tensor]:
    """The mean of each floating-point tensor over ``paths``, the newest's integer buffers."""
    ckpts = [load_checkpoint(p) for p in paths]
    out = {}
    for part in ("extractor", "head"):
        for key, value in ckpts[0][part].items():
            if value.is_floating_point():
                out[f"{part}.{key}"] = torch.stack([c[part][key].double() for c in ckpts]).mean(dim=0)
            else:
                out[f"{part}.{key}"] = ckpts[-1][part][key]
    return out


def _params(model) -> dict[str, torch.Tensor]:
    return {**{f"extractor.{k}": v for k, v in model.extractor.state_dict().items()},
            **{f"head.{k}": v for k, v in model.head.state_dict().items()}}


def test_last_k_checkpoints_are_averaged(run_dir, tmp_path):
    paths = [p for _, p in list_checkpoints(run_dir)]
    assert [p.name for p in paths] == ["checkpoint_0000004.pt", "checkpoint_0000008.pt", "checkpoint_0000012.pt"]
    code, err = run_cli("steps/average_model.py", "--last", "3", str(run_dir), str(tmp_path / "avg3.pt"))
    assert code == 0, err
    got = _params(load_model(tmp_path / "avg3.pt"))
    expected = _expected(paths)
    assert got.keys() == expected.keys()
    bn = [k for k in got if k.endswith("running_mean")]
    assert bn and any(k.endswith("num_batches_tracked") for k in got)
    for key, value in got.items():
        if key.endswith("num_batches_tracked"):
            assert value.item() == expected[key].item() == 12 * 1  # one batch per iteration, from the newest
        else:
            torch.testing.assert_close(value.double(), expected[key], rtol=0, atol=1e-6, msg=key)
    # The checkpoints really differ, so the mean is not any one of them.
    ckpt4 = load_checkpoint(paths[0])["extractor"]
    assert any(not torch.equal(ckpt4[k.split(".", 1)[1]], got[k]) for k in got if k.startswith("extractor.") and "weight" in k)
    # Classes and configuration come from the run's final.pt.
    final = load_model(run_dir / "final.pt")
    averaged = load_model(tmp_path / "avg3.pt")
    assert averaged.classes == final.classes and averaged.config == final.config


def test_last_one_is_the_final_model_and_explicit_paths(run_dir, tmp_path):
    code, err = run_cli("steps/average_model.py", "--last", "1", str(run_dir), str(tmp_path / "avg1.pt"))
    assert code == 0, err
    final, one = _params(load_model(run_dir / "final.pt")), _params(load_model(tmp_path / "avg1.pt"))
    for key in final:
        torch.testing.assert_close(one[key], final[key], rtol=0, atol=0, msg=key)
    paths = [p for _, p in list_checkpoints(run_dir)][:2]
    code, err = run_cli("steps/average_model.py", *map(str, paths), str(tmp_path / "avg2.pt"))
    assert code == 0, err
    got, expected = _params(load_model(tmp_path / "avg2.pt")), _expected(paths)
    for key, value in got.items():
        torch.testing.assert_close(value.double(), expected[key].double(), rtol=0, atol=1e-6, msg=key)


def test_errors_are_one_line(run_dir, tmp_path):
    code, err = run_cli("steps/average_model.py", "--last", "5", str(run_dir), str(tmp_path / "x.pt"))
    assert code == 1 and "keeps only 3 checkpoint(s)" in err and "keep_checkpoints" in err and "Traceback" not in err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(list_checkpoints(run_dir)[-1][1], unfinished)
    code, err = run_cli("steps/average_model.py", str(unfinished), str(tmp_path / "x.pt"))
    assert code == 1 and "final.pt does not exist" in err and "--template" in err
    code, err = run_cli("steps/average_model.py", str(tmp_path / "empty_dir_missing"), str(tmp_path / "x.pt"))
    assert code == 1 and "does not exist" in err
    code, err = run_cli("steps/average_model.py", str(run_dir), str(run_dir / "final.pt"))
    assert code == 1 and "is one of the inputs" in err
    assert not (tmp_path / "x.pt").exists()
