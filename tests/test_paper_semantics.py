"""The options that give the authors' DropClass/DropAdapt semantics (the ``paper`` presets), each
checked directly against what it should compute, and the contradictory combinations refused."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dropclass_lib.config import from_dict, load_config
from dropclass_lib.dropadapt import (DropAdapt, DropAdaptConfig, least_probable_kept, posteriors_mean, random_crops,
                                     remove_classes)
from dropclass_lib.errors import UserError
from dropclass_lib.model_io import load_model
from dropclass_lib.training import distributed
from dropclass_lib.training.checkpoint import list_checkpoints, load_checkpoint
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.data import FeatIndex
from dropclass_lib.training.dropclass import ClassState
from dropclass_lib.training.record import OPTIMIZER_FILE
from dropclass_lib.training.trainer import _Run, train
from test_dropadapt import adapt_cfg, read_round, setup  # noqa: F401  (setup is a fixture)
from test_training import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
ALL = [f"spk{i:03d}" for i in range(12)]


# --------------------------------------------------------------------------- p_avg


def test_p_avg_from_raw_cosine_is_the_softmax_of_cos_theta(setup):
    model_path, train_dir, enrol_dir = setup
    model = load_model(model_path)
    adapt = DropAdapt(adapt_cfg(p_avg_logits="cosine"), str(model_path), str(train_dir), str(enrol_dir), "unused")
    utts = adapt.enrol_utts
    rows = torch.tensor([0, 2, 3, 5, 7, 11])
    got = adapt.mean_posteriors(adapt.enrol_feats(utts), rows, 0)
    embs = torch.stack([model.extractor(torch.from_numpy(m.copy())[None])[0] for _, m in adapt.enrol_feats(utts)])
    w = model.head.weight.detach()[rows]
    cos = F.normalize(embs.detach(), dim=-1) @ F.normalize(w, dim=-1).T
    np.testing.assert_allclose(got, torch.softmax(cos.double(), dim=1).mean(0).numpy(), rtol=1e-4, atol=1e-6)
    scaled = posteriors_mean(model, adapt.enrol_feats(utts), rows, 10000, torch.device("cpu"))
    s = model.head.s
    np.testing.assert_allclose(scaled, torch.softmax(s * cos.double(), dim=1).mean(0).numpy(), rtol=1e-4, atol=1e-6)
    assert np.abs(got - scaled).max() > 1e-3  # the scale matters: the two rankings' inputs differ


def test_random_crops_are_slices_or_zero_padded_and_seeded():
    rng = np.random.default_rng(0)
    feats = [("long", rng.standard_normal((50, 3)).astype(np.float32)), ("short", np.ones((7, 3), np.float32))]
    crops = dict(random_crops(feats, 20, np.random.default_rng(5)))
    assert crops["long"].shape == (20, 3) and crops["short"].shape == (20, 3)
    starts = [i for i in range(31) if np.array_equal(feats[0][1][i:i + 20], crops["long"])]
    assert len(starts) == 1
    assert np.all(crops["short"][:7] == 1) and np.all(crops["short"][7:] == 0)
    again = dict(random_crops(feats, 20, np.random.default_rng(5)))
    assert np.array_equal(again["long"], crops["long"])
    others = {int(np.flatnonzero([np.array_equal(feats[0][1][i:i + 20], c) for i in range(31)])[0])
              for c in (dict(random_crops(feats, 20, np.random.default_rng(s)))["long"] for s in range(10))}
    assert len(others) > 3


def test_p_avg_over_crops_uses_fixed_length_inputs(setup):
    model_path, train_dir, enrol_dir = setup
    cfg = adapt_cfg(p_avg_inputs="crops", p_avg_crop_frames=25)
    adapt = DropAdapt(cfg, str(model_path), str(train_dir), str(enrol_dir), "unused")
    rows = torch.arange(12)
    seen = []
    original = random_crops

    def spy(feats, frames, rng):
        for utt, crop in original(feats, frames, rng):
            seen.append(crop.shape[0])
            yield utt, crop

    import dropclass_lib.dropadapt as module
    module.random_crops, saved = spy, module.random_crops
    try:
        round0 = adapt.mean_posteriors(adapt.enrol_feats(adapt.enrol_utts), rows, 0)
        round1 = adapt.mean_posteriors(adapt.enrol_feats(adapt.enrol_utts), rows, 1)
    finally:
        module.random_crops = saved
    assert seen == [25] * (2 * len(adapt.enrol_utts))
    assert abs(round0.sum() - 1) < 1e-6 and not np.allclose(round0, round1)  # fresh crops each round


# --------------------------------------------------------------------------- continuous optimiser


def momentum_after_one_step(cfg, data_dir, exp, model_path, **kw):
    train(cfg, data_dir, exp, init_model=load_model(model_path), stop_at=1, **kw)
    ckpt = load_checkpoint(list_checkpoints(exp)[-1][1])
    return ckpt["optimizer"]["state"]


def test_optimizer_state_carries_momentum_buffers(tmp_path, setup):
    """SGD's buffer after one step is momentum * (buffer carried in) + gradient: with the same
    weights and batch, the difference to a fresh optimiser is exactly momentum x the carried one."""
    model_path, train_dir, _ = setup
    cfg = tiny_cfg(dropclass={"num_drop": 0}, optim={"lr": 0.05, "momentum": 0.5, "grad_clip": 0.0,
                                                      "warmup_iters": 0, "lr_halve_at": []},
                   train={"num_iters": 3, "checkpoint_every": 3})
    first = train(cfg, train_dir, tmp_path / "a", init_model=load_model(model_path), save_optimizer=True)
    carried = torch.load(first.final.parent / OPTIMIZER_FILE, weights_only=True)
    assert carried["state"] and all("momentum_buffer" in v for v in carried["state"].values())
    fresh = momentum_after_one_step(cfg, train_dir, tmp_path / "b", model_path)
    cont = momentum_after_one_step(cfg, train_dir, tmp_path / "c", model_path, optimizer_state=carried)
    for i, buf in carried["state"].items():
        expected = fresh[i]["momentum_buffer"] + 0.5 * buf["momentum_buffer"]
        torch.testing.assert_close(cont[i]["momentum_buffer"], expected, rtol=1e-5, atol=1e-6)
    assert any((c["momentum_buffer"] != f["momentum_buffer"]).any() for c, f in zip(cont.values(), fresh.values()))


def test_lr_offset_follows_one_absolute_schedule(tmp_path, setup):
    model_path, train_dir, _ = setup
    cfg = tiny_cfg(dropclass={"num_drop": 0}, optim={"lr": 0.08, "warmup_iters": 0, "lr_halve_at": [6]},
                   train={"num_iters": 4, "checkpoint_every": 4, "log_every": 1})

    def lrs(exp, offset):
        train(cfg, train_dir, exp, init_model=load_model(model_path), lr_offset=offset)
        return [float(line.split(" lr ")[1].split()[0]) for line in (exp / "train.log").read_text().splitlines()
                if " lr " in line]

    # train.log shows the rate for the iteration after each logged one: iterations 1..4, then 5..8
    assert lrs(tmp_path / "r0", 0) == [0.08] * 4
    assert lrs(tmp_path / "r1", 4) == [0.08, 0.04, 0.04, 0.04]  # halved from absolute iteration 6 on


def test_optimizer_state_of_another_model_is_refused(tmp_path, setup):
    model_path, train_dir, _ = setup
    cfg = tiny_cfg(dropclass={"num_drop": 0}, train={"num_iters": 2, "checkpoint_every": 2})
    model = load_model(model_path)
    params = list(model.extractor.parameters()) + list(model.head.parameters())
    bad = {"state": {0: {"momentum_buffer": torch.zeros(3, 3)}},
           "param_groups": [{"lr": 0.1, "momentum": 0.5, "dampening": 0, "weight_decay": 0, "nesterov": False,
                             "maximize": False, "foreach": None, "differentiable": False, "fused": None,
                             "params": list(range(len(params)))}]}
    with pytest.raises(UserError, match="optimiser state to continue from has momentum_buffer of shape"):
        train(cfg, train_dir, tmp_path / "x", init_model=model, optimizer_state=bad)


def test_dropadapt_continuous_passes_each_round_the_previous_optimiser(tmp_path, setup, monkeypatch):
    model_path, train_dir, enrol_dir = setup
    import dropclass_lib.dropadapt as module

    calls = []
    real_train = module.train

    def recording_train(*args, **kwargs):
        calls.append({k: kwargs.get(k) for k in ("optimizer_state", "lr_offset", "save_optimizer")})
        return real_train(*args, **kwargs)

    monkeypatch.setattr(module, "train", recording_train)
    exp = tmp_path / "cont"
    DropAdapt(adapt_cfg(optimizer="continuous", train_utts_for_plot=0), str(model_path), str(train_dir),
              str(enrol_dir), str(exp)).run()
    assert [c["lr_offset"] for c in calls] == [0, 4] and all(c["save_optimizer"] for c in calls)
    assert calls[0]["optimizer_state"] is None
    saved = torch.load(exp / "round0" / OPTIMIZER_FILE, weights_only=True)
    passed = calls[1]["optimizer_state"]
    assert passed["state"].keys() == saved["state"].keys()
    assert all(torch.equal(passed["state"][i]["momentum_buffer"], saved["state"][i]["momentum_buffer"])
               for i in saved["state"])
    calls.clear()
    per_round = tmp_path / "per_round"
    DropAdapt(adapt_cfg(train_utts_for_plot=0), str(model_path), str(train_dir), str(enrol_dir), str(per_round)).run()
    assert calls == [{"optimizer_state": None, "lr_offset": None, "save_optimizer": None}] * 2
    assert not (per_round / "round0" / OPTIMIZER_FILE).exists()


# --------------------------------------------------------------------------- combine into a kept class


def test_least_probable_kept_is_the_lowest_remaining_candidate():
    p = np.array([0.5, 0.01, 0.2, 0.02, 0.02, np.inf])
    assert least_probable_kept(p, np.arange(5), np.array([1])) == 3   # 3 and 4 tie: the lower id
    assert least_probable_kept(p, np.arange(5), np.array([1, 3, 4])) == 2


def test_combine_into_a_kept_class_relabels_exactly_the_removed_utterances(tmp_path):
    from test_training_data import make_feats_dir

    index = FeatIndex.from_data_dir(make_feats_dir(tmp_path / "d", num_spk=6, utts_per_spk=3), 1)
    state = ClassState.full(index.classes)
    one = remove_classes(state, np.array([1, 4]), "combine", into=2)
    one.validate()
    assert one.num_rows == 6 and one.row_names == index.classes                  # no extra row
    assert one.data_mask.tolist() == [True, False, True, True, False, True]
    assert one.row_mask.tolist() == [True, False, True, True, False, True]
    assert one.merged_into.tolist() == [0, 2, 2, 3, 2, 5] and one.label_map.tolist() == [0, 2, 2, 3, 2, 5]
    merged = one.sampling_index(index)
    moved = np.isin(index.labels, [1, 4])
    assert np.all(merged.labels[moved] == 2) and np.array_equal(merged.labels[~moved], index.labels[~moved])
    assert merged.class_counts().tolist() == [3, 0, 9, 3, 0, 3]
    for c in range(6):  # the CSR grouping lists each unit's utterances
        group = merged.class_order[merged.class_start[c]:merged.class_start[c + 1]]
        assert sorted(group.tolist()) == np.flatnonzero(merged.labels == c).tolist()
    # the next round removes the kept class itself: the classes merged into it follow it
    two = remove_classes(one, np.array([2]), "combine", into=5)
    two.validate()
    assert two.merged_into.tolist() == [0, 5, 5, 3, 5, 5] and not two.data_mask[[1, 2, 4]].any()
    assert two.sampling_index(index).class_counts().tolist() == [3, 0, 0, 3, 0, 12]
    assert state.sampling_index(index) is index and "merged_into" not in state.state_dict()


def test_dropadapt_combine_least_probable_kept(tmp_path, setup):
    model_path, train_dir, enrol_dir = setup
    exp = tmp_path / "kept"
    cfg = adapt_cfg(variant="combine", combine_into="least_probable_kept", train_utts_for_plot=0)
    DropAdapt(cfg, str(model_path), str(train_dir), str(enrol_dir), str(exp)).run()
    rows0, remaining0 = read_round(exp, 0)
    removed0 = [c for c, _, x in rows0 if x]
    target = next(c for c, _, x in rows0 if not x)  # the least probable class kept
    assert len(removed0) == 3 and target in remaining0 and not set(removed0) & set(remaining0)
    assert load_model(exp / "final.pt").classes == ALL                           # no "<other>" row
    rows1, remaining1 = read_round(exp, 1)
    assert {c for c, _, _ in rows1} == set(remaining0) and len(remaining1) == 6
    assert "merged_into" in load_checkpoint(list_checkpoints(exp / "round0")[-1][1])["dropclass"]["classes"]


# --------------------------------------------------------------------------- only_data ranking


def test_only_data_each_round_keeps_only_the_rounds_own_removals():
    state = ClassState.full(list("abcde"))
    one = remove_classes(state, np.array([0, 1]), "only_data", cumulative=False)
    two = remove_classes(one, np.array([1, 4]), "only_data", cumulative=False)
    assert two.data_mask.tolist() == [True, False, True, True, False] and two.row_mask.all()
    assert remove_classes(one, np.array([1, 4]), "only_data").data_mask.tolist() == [False, False, True, True, False]


def test_dropadapt_only_data_each_round_re_ranks_all_classes(tmp_path, setup):
    model_path, train_dir, enrol_dir = setup
    exp = tmp_path / "each"
    cfg = adapt_cfg(variant="only_data", only_data_ranking="each_round", train_utts_for_plot=0)
    DropAdapt(cfg, str(model_path), str(train_dir), str(enrol_dir), str(exp)).run()
    for rnd in (0, 1):
        rows, remaining = read_round(exp, rnd)
        removed = {c for c, _, x in rows if x}
        assert {c for c, _, _ in rows} == set(ALL) and len(removed) == 3
        assert sorted(remaining) == sorted(set(ALL) - removed)   # 9 with data, not 6: no accumulation
        lowest = {c for c, _, _ in rows[:3]}
        assert removed == lowest                                  # ranked among all 12, data or not


# --------------------------------------------------------------------------- DropClass head reset


@pytest.mark.parametrize("layers,optimizer", [("all", "clear"), ("final", "keep"), ("final", "clear")])
def test_head_reset_scope(tmp_path, layers, optimizer):
    from test_training_data import make_feats_dir

    data = make_feats_dir(tmp_path / "d")
    cfg = tiny_cfg(model={"head": "xvector", "head_opts": {"hidden_dim": 6}},
                   dropclass={"reset_head_layers": layers, "reset_head_optimizer": optimizer})
    run = _Run(cfg, data, tmp_path / "e", distributed.setup("cpu"), None, None)
    head = run.head
    for p in head.parameters():
        run.optimizer.state[p] = {"momentum_buffer": torch.ones_like(p)}
    hidden = {k: v.clone() for k, v in head.hidden.state_dict().items()}
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    with torch.no_grad():
        head.bias += 1.0
    run.reset_head()
    assert not torch.equal(head.weight, weight) and torch.equal(head.bias.detach(), bias)  # bias back to zero
    same_hidden = all(torch.equal(v, head.hidden.state_dict()[k]) for k, v in hidden.items())
    assert same_hidden == (layers == "final")
    kept = [p in run.optimizer.state for p in head.parameters()]
    assert all(kept) if optimizer == "keep" else not any(kept)


# --------------------------------------------------------------------------- presets and contradictions


@pytest.mark.parametrize("recipe", ["synthetic", "voxceleb"])
def test_paper_presets_select_every_authors_behaviour(recipe):
    conf = ROOT / "egs" / recipe / "conf"
    adapt = load_config(conf / "dropadapt_paper.yaml", DropAdaptConfig)
    assert (adapt.adapt.p_avg_logits, adapt.adapt.p_avg_inputs, adapt.adapt.optimizer, adapt.adapt.combine_into,
            adapt.adapt.only_data_ranking) == ("cosine", "crops", "continuous", "least_probable_kept", "each_round")
    default = load_config(conf / "dropadapt.yaml", DropAdaptConfig)
    paper_keys = {"p_avg_logits", "p_avg_inputs", "p_avg_crop_frames", "optimizer", "combine_into",
                  "only_data_ranking"}
    assert {k: v for k, v in vars(adapt.adapt).items() if k not in paper_keys} == \
        {k: v for k, v in vars(default.adapt).items() if k not in paper_keys}
    assert (adapt.data, adapt.optim, adapt.train) == (default.data, default.optim, default.train)
    train_cfg = load_config(conf / "train_dropclass_paper.yaml", TrainConfig)
    assert train_cfg.model.head == "aamsoftmax"
    assert train_cfg.model.head_opts == {"s": 30.0, "m": 0.5, "threshold": False, "easy_margin": False}
    assert (train_cfg.dropclass.reset_head_layers, train_cfg.dropclass.reset_head_optimizer) == ("final", "keep")


@pytest.mark.parametrize("override,message", [
    ({"dropclass": {"drop_per_batch": True, "reset_head_each_drop": True}},
     "dropclass.reset_head_each_drop and dropclass.drop_per_batch contradict"),
    ({"dropclass": {"reset_head_layers": "hidden"}}, "dropclass.reset_head_layers must be one of"),
    ({"dropclass": {"reset_head_optimizer": "zero"}}, "dropclass.reset_head_optimizer must be one of"),
])
def test_contradictory_training_options_are_refused(override, message):
    with pytest.raises(UserError, match=message):
        tiny_cfg(**override)


@pytest.mark.parametrize("key,value", [("p_avg_logits", "raw"), ("p_avg_inputs", "chunks"), ("optimizer", "adam"),
                                       ("combine_into", "other"), ("only_data_ranking", "never"),
                                       ("p_avg_crop_frames", -1)])
def test_bad_adapt_options_are_refused(key, value):
    with pytest.raises(UserError, match=f"adapt.{key}" if key != "p_avg_crop_frames" else "p_avg_crop_frames"):
        from_dict(DropAdaptConfig, {"adapt": {key: value}})


def test_cli_names_the_contradictory_keys_in_one_line(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text((ROOT / "egs/synthetic/conf/train_dropclass.yaml").read_text())
    proc = subprocess.run([sys.executable, str(ROOT / "steps/train_xvector.py"), "--config", str(conf),
                           "--set", "dropclass.drop_per_batch=true", "--set", "dropclass.reset_head_each_drop=true",
                           str(tmp_path / "data"), str(tmp_path / "exp")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "dropclass.reset_head_each_drop" in proc.stderr and "dropclass.drop_per_batch" in proc.stderr
