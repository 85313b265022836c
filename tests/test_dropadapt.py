"""DropAdapt: ranking, permanent removal across rounds, the variants, and bad input."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dropclass_lib.config import from_dict
from dropclass_lib.datadir import read_utt_list
from dropclass_lib.dropadapt import (OTHER_CLASS, DropAdapt, DropAdaptConfig, balanced_subset, choose_removals,
                                     grow_head, remove_classes)
from dropclass_lib.errors import UserError
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import TrainedModel, load_model
from dropclass_lib.training.dropclass import ClassState
from dropclass_lib.training.trainer import train
from test_training import tiny_cfg
from test_training_data import make_feats_dir

ROOT = Path(__file__).resolve().parents[1]

ADAPT = {
    "adapt": {"num_rounds": 2, "num_drop": 3, "its_per_drop": 4, "min_remaining": 2, "train_utts_for_plot": 8},
    "data": {"batch_size": 4, "min_frames": 20, "max_frames": 30, "min_utt_frames": 20, "num_workers": 0},
    "optim": {"lr": 0.05},
    "train": {"checkpoint_every": 4, "log_every": 2},
}


def adapt_cfg(**adapt) -> DropAdaptConfig:
    data = {k: dict(v) for k, v in ADAPT.items()}
    data["adapt"].update(adapt)
    return from_dict(DropAdaptConfig, data)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A model trained on 12 speakers, and an enrolment set made of the first 4 speakers' data."""
    root = tmp_path_factory.mktemp("dropadapt")
    train_dir = make_feats_dir(root / "train")
    enrol_dir = make_feats_dir(root / "enrol", num_spk=4)  # same seed: spk000..spk003 of the training data
    utts = sorted((enrol_dir / "utt2spk").read_text().split()[0::2])
    (enrol_dir / "enrol.list").write_text("".join(f"{u}\n" for u in utts))
    cfg = tiny_cfg(dropclass={"num_drop": 0}, train={"num_iters": 40, "checkpoint_every": 40})
    model = train(cfg, train_dir, root / "model").final
    return model, train_dir, enrol_dir


def test_choose_removals_takes_the_least_probable_candidates():
    p = np.array([0.5, 0.01, 0.2, 0.01, 0.03, np.inf])
    candidates = np.array([0, 1, 2, 3, 4])
    rng = np.random.default_rng(0)
    # 1 and 3 tie at 0.01: both go before 4 (0.03); class 5 is not a candidate
    assert choose_removals(p, candidates, 3, "standard", rng).tolist() == [1, 3, 4]
    assert choose_removals(p, candidates, 2, "standard", rng).tolist() == [1, 3]
    picks = {tuple(choose_removals(p, candidates, 2, "random", np.random.default_rng(s))) for s in range(20)}
    assert len(picks) > 3 and all(set(x) <= set(candidates.tolist()) for x in picks)


def test_remove_classes_per_variant():
    state = ClassState.full(["a", "b", "c", "d"])
    removed = np.array([1, 3])
    std = remove_classes(state, removed, "standard")
    assert std.data_mask.tolist() == [True, False, True, False]
    assert std.row_mask.tolist() == [True, False, True, False] and std.row_names == ["a", "b", "c", "d"]
    only = remove_classes(state, removed, "only_data")
    assert only.data_mask.tolist() == [True, False, True, False] and only.row_mask.all()
    comb = remove_classes(state, removed, "combine")
    assert comb.row_names == ["a", "b", "c", "d", OTHER_CLASS]
    assert comb.data_mask.all() and comb.label_map.tolist() == [0, 4, 2, 4]
    assert comb.row_mask.tolist() == [True, False, True, False, True]
    # a second round merges into the same "other" row
    comb2 = remove_classes(comb, np.array([0]), "combine")
    assert comb2.num_rows == 5 and comb2.label_map.tolist() == [4, 4, 2, 4]
    assert comb2.row_mask.tolist() == [False, False, True, False, True]
    comb2.validate()


def test_balanced_subset_has_equal_counts_per_speaker():
    utt2spk = {f"{s}-{i}": s for s, n in (("x", 5), ("y", 2), ("z", 3)) for i in range(n)}
    sub = balanced_subset(sorted(utt2spk), utt2spk, 0, seed=1)
    counts = {s: sum(utt2spk[u] == s for u in sub) for s in "xyz"}
    assert counts == {"x": 2, "y": 2, "z": 2}
    assert balanced_subset(sorted(utt2spk), utt2spk, 0, seed=1) == sub
    with pytest.raises(UserError, match="fewer than 3"):
        balanced_subset(sorted(utt2spk), utt2spk, 3, seed=1)


@pytest.mark.parametrize("name", ["softmax", "xvector", "aamsoftmax"])
def test_grow_head_adds_the_mean_row_and_keeps_the_others(name):
    head = build_head(name, 8, 5)
    model = TrainedModel(torch.nn.Identity(), head, list("abcde"))
    grow_head(model, np.array([1, 3]))
    assert model.head.num_classes == 6
    assert torch.equal(model.head.weight[:5], head.weight)
    assert torch.allclose(model.head.weight[5], head.weight[[1, 3]].mean(0))
    emb = torch.randn(3, 8)
    model.head.eval(), head.eval()
    active = torch.tensor([0, 2, 4])
    assert torch.allclose(model.head.posteriors(emb, active), head.posteriors(emb, active))


def read_round(exp, r):
    lines = (exp / f"round{r}" / "p_avg.tsv").read_text().splitlines()[1:]
    rows = [(c, float(p), int(x)) for c, p, x in (line.split("\t") for line in lines)]
    remaining = (exp / f"round{r}" / "remaining.txt").read_text().split()
    return rows, remaining


def test_standard_ranks_removes_permanently_and_keeps_the_enrolment_classes(tmp_path, setup):
    model, train_dir, enrol_dir = setup
    exp = tmp_path / "exp"
    final = DropAdapt(adapt_cfg(), str(model), str(train_dir), str(enrol_dir), str(exp)).run()
    assert final == exp / "final.pt" and (exp / "p_avg.png").stat().st_size > 0
    all_classes = [f"spk{i:03d}" for i in range(12)]
    rows0, remaining0 = read_round(exp, 0)
    assert [p for _, p, _ in rows0] == sorted(p for _, p, _ in rows0)
    assert abs(sum(p for _, p, _ in rows0) - 1) < 1e-4
    removed0 = [c for c, _, x in rows0 if x]
    assert removed0 == [c for c, _, _ in rows0[:3]]            # the three least probable
    assert sorted(remaining0) == sorted(set(all_classes) - set(removed0))
    rows1, remaining1 = read_round(exp, 1)
    assert {c for c, _, _ in rows1} == set(remaining0)          # removed classes are out of the softmax
    removed1 = [c for c, _, x in rows1 if x]
    assert len(removed1) == 3 and not set(removed1) & set(removed0)
    assert sorted(remaining1) == sorted(set(remaining0) - set(removed1))
    # the trained model puts the enrolment speakers' own classes first: none is removed in round 0
    assert not {"spk000", "spk001", "spk002", "spk003"} & set(removed0)
    adapted = load_model(final)
    assert adapted.classes == all_classes
    assert (exp / "round1" / "config.yaml").is_file() and (exp / "round1" / "train.log").is_file()
    assert read_utt_list(exp / "adapt_utts.txt") == read_utt_list(enrol_dir / "enrol.list")
    mtime = final.stat().st_mtime_ns
    DropAdapt(adapt_cfg(), str(model), str(train_dir), str(enrol_dir), str(exp)).run()
    assert final.stat().st_mtime_ns == mtime


def test_another_num_drop_refuses_and_overwrite_never_reuses_old_rounds(tmp_path, setup):
    """The issue's case: a re-run with another num_drop reused the rounds trained under the old
    one and rewrote p_avg.tsv/config.yaml to describe the new settings."""
    model, train_dir, enrol_dir = setup
    exp = tmp_path / "exp"
    DropAdapt(adapt_cfg(), str(model), str(train_dir), str(enrol_dir), str(exp)).run()
    p_avg = (exp / "round0" / "p_avg.tsv").read_text()
    config = (exp / "config.yaml").read_text()
    with pytest.raises(UserError, match=r"adapt\.num_drop \(3 -> 2\).*--overwrite"):
        DropAdapt(adapt_cfg(num_drop=2), str(model), str(train_dir), str(enrol_dir), str(exp)).run()
    assert (exp / "round0" / "p_avg.tsv").read_text() == p_avg and (exp / "config.yaml").read_text() == config
    round1 = (exp / "round1" / "final.pt").stat().st_mtime_ns
    DropAdapt(adapt_cfg(num_drop=2), str(model), str(train_dir), str(enrol_dir), str(exp), overwrite=True).run()
    for rnd in (0, 1):
        rows, _ = read_round(exp, rnd)
        assert sum(x for _, _, x in rows) == 2
    assert (exp / "round1" / "final.pt").stat().st_mtime_ns != round1
    assert "num_drop: 2" in (exp / "config.yaml").read_text()
    # each round is recorded with the class state it starts from: a round of other settings is refused
    with pytest.raises(UserError, match=r"training .*round0 was made with other inputs, settings or code"):
        train(tiny_cfg(dropclass={"num_drop": 0}), train_dir, exp / "round0")


def test_an_interrupted_dropadapt_keeps_its_finished_rounds(tmp_path, setup):
    model, train_dir, enrol_dir = setup
    exp = tmp_path / "exp"
    DropAdapt(adapt_cfg(), str(model), str(train_dir), str(enrol_dir), str(exp)).run()
    round0 = (exp / "round0" / "final.pt").stat().st_mtime_ns
    (exp / "final.pt").unlink()
    (exp / "round1" / "final.pt").unlink()  # "killed" during round 1
    DropAdapt(adapt_cfg(), str(model), str(train_dir), str(enrol_dir), str(exp)).run()
    assert (exp / "round0" / "final.pt").stat().st_mtime_ns == round0 and (exp / "final.pt").is_file()


@pytest.mark.parametrize("variant", ["combine", "only_data", "random", "uniform_agg"])
def test_variants(tmp_path, setup, variant):
    model, train_dir, enrol_dir = setup
    exp = tmp_path / variant
    cfg = adapt_cfg(variant=variant, train_utts_for_plot=0, utts_per_enrol_spk=2 if variant == "uniform_agg" else 0)
    DropAdapt(cfg, str(model), str(train_dir), str(enrol_dir), str(exp)).run()
    rows0, remaining0 = read_round(exp, 0)
    rows1, remaining1 = read_round(exp, 1)
    removed0 = {c for c, _, x in rows0 if x}
    assert len(removed0) == 3 and len(remaining1) == 6
    adapted = load_model(exp / "final.pt")
    if variant == "combine":
        assert adapted.classes[-1] == OTHER_CLASS and len(adapted.classes) == 13
        assert OTHER_CLASS in {c for c, _, _ in rows1} and not removed0 & {c for c, _, _ in rows1}
    elif variant == "only_data":
        assert {c for c, _, _ in rows1} == {f"spk{i:03d}" for i in range(12)}  # rows stay in the softmax
        assert not removed0 & set(remaining0)
    elif variant == "uniform_agg":
        used = read_utt_list(exp / "adapt_utts.txt")
        assert len(used) == 8 and all(sum(u.startswith(f"spk00{s}") for u in used) == 2 for s in range(4))
    else:  # random: the same seed gives the same draw
        again = tmp_path / "again"
        DropAdapt(cfg, str(model), str(train_dir), str(enrol_dir), str(again)).run()
        assert read_round(again, 0)[1] == remaining0


def test_bad_inputs_are_named(tmp_path, setup):
    model, train_dir, enrol_dir = setup
    bad = tmp_path / "enrol"
    bad.mkdir()
    for name in ("feats.scp", "utt2spk", "spk2utt"):
        (bad / name).write_text((enrol_dir / name).read_text())
    (bad / "enrol.list").write_text("spk000-u0\nunknown-utt\n")
    with pytest.raises(UserError, match="lacks 1 utterances"):
        DropAdapt(adapt_cfg(), str(model), str(train_dir), str(bad), str(tmp_path / "x")).run()
    other = make_feats_dir(tmp_path / "other", num_spk=5)
    with pytest.raises(UserError, match="not the 5 speakers"):
        DropAdapt(adapt_cfg(), str(model), str(other), str(enrol_dir), str(tmp_path / "y"))
    conf = tmp_path / "a.yaml"
    conf.write_text("adapt:\n  variant: standard\n  num_dropp: 3\n")
    proc = subprocess.run([sys.executable, str(ROOT / "steps/dropadapt.py"), "--config", str(conf), str(model),
                           str(train_dir), str(enrol_dir), str(tmp_path / "z")], capture_output=True, text=True)
    assert proc.returncode == 1 and "num_dropp" in proc.stderr and "a.yaml:3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_done_or_refused_rerun_of_the_step_never_imports_torch(tmp_path, setup):
    """A recipe re-run starts steps/dropadapt.py once per adapted system and seed: one that finds
    its directory done, or refuses a changed setting, ends before torch loads."""
    model, train_dir, enrol_dir = setup
    conf, exp = tmp_path / "adapt.yaml", tmp_path / "exp"
    conf.write_text(yaml.safe_dump(ADAPT))

    def step(*options):
        return subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "steps/dropadapt.py"), "--config",
                               str(conf), *options, str(model), str(train_dir), str(enrol_dir), str(exp)],
                              capture_output=True, text=True)

    def loads_torch(proc):
        return re.search(r"\|\s+torch$", proc.stderr, re.M) is not None

    first = step()
    assert first.returncode == 0 and loads_torch(first), first.stderr[-2000:]
    final = (exp / "final.pt").stat().st_mtime_ns
    again = step()
    assert again.returncode == 0 and "up to date" in again.stderr and not loads_torch(again), again.stderr[-2000:]
    refused = step("--set", "adapt.num_drop=2")
    assert refused.returncode == 1 and "adapt.num_drop (3 -> 2)" in refused.stderr and not loads_torch(refused)
    assert "Traceback" not in refused.stderr and (exp / "final.pt").stat().st_mtime_ns == final
