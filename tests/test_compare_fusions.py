"""steps/compare_fusions.py: each group's lists are scored by a fusion trained on the other groups'
development lists only, and the table reports those EERs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_script
from dropclass_lib.calibration import train_fusion
from dropclass_lib.errors import UserError
from dropclass_lib.metrics import compute_eer

compare = load_script("steps/compare_fusions.py")
PAIR = ["cosine_dm", "stats"]


def write_scored_list(eval_dir, set_name, labels, columns):
    """A trial list scored by two back-ends, in steps/evaluate_model.py's layout."""
    trials = eval_dir / f"{set_name}.trials"
    utts = [(f"{set_name}e{i}", f"{set_name}t{i}") for i in range(labels.size)]
    trials.write_text("".join(f"{e} {t} {'target' if y else 'nontarget'}\n" for (e, t), y in zip(utts, labels)))
    for name, scores in zip(PAIR, columns.T):
        out = eval_dir / f"scores_{set_name}_{name}"
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"trials": str(trials), "backend": name}))
        (out / "scores").write_text("".join(f"{e} {t} {s:.6f}\n" for (e, t), s in zip(utts, scores)))


def scored_lists(tmp_path):
    """Three groups: in ``x`` and ``y`` the second back-end carries the speaker, in ``z`` it is reversed,
    so a fusion that saw ``z``'s development list weighs ``b`` quite otherwise."""
    rng = np.random.default_rng(0)
    lists = {}
    for group, sign in (("x", 1.0), ("y", 1.0), ("z", -1.0)):
        for kind in ("dev", "test"):
            labels = rng.random(400) < 0.3
            a = labels * 1.0 + rng.normal(0, 1.0, labels.size)
            b = sign * labels * 2.0 + rng.normal(0, 1.0, labels.size)
            columns = np.stack([a, b], axis=1).round(6)
            write_scored_list(tmp_path, f"{group}_{kind}", labels, columns)
            lists[group, kind] = (columns, labels)
    return lists


def held_out_eer(lists, held_group, kind):
    train = [g for g in ("x", "y", "z") if g != held_group]
    fusion = train_fusion(PAIR, np.concatenate([lists[g, "dev"][0] for g in train]),
                          np.concatenate([lists[g, "dev"][1] for g in train]),
                          np.concatenate([np.full(lists[g, "dev"][1].size, i) for i, g in enumerate(train)]), train)
    columns, labels = lists[held_group, kind]
    return 100.0 * compute_eer(fusion.apply(columns), labels)


def test_each_group_is_scored_by_the_fusion_of_the_others(tmp_path, capsys):
    lists = scored_lists(tmp_path)
    devs = [compare.TrialList(g, tmp_path, f"{g}_dev") for g in ("x", "y", "z")]
    tests = [compare.TrialList(g, tmp_path, f"{g}_test") for g in ("x", "z")]
    eers = compare.held_out_eers(PAIR, devs, tests, 0.5)
    expected = [held_out_eer(lists, g, "dev") for g in ("x", "y", "z")] + [held_out_eer(lists, g, "test") for g in ("x", "z")]
    np.testing.assert_allclose(eers, expected, rtol=0, atol=1e-9)
    # the held-out list's own group trains nothing: with it the fusion scores x's test otherwise
    everything = train_fusion(PAIR, np.concatenate([lists[g, "dev"][0] for g in "xyz"]),
                              np.concatenate([lists[g, "dev"][1] for g in "xyz"]),
                              np.repeat(np.arange(3), 400), list("xyz"))
    leaked = 100.0 * compute_eer(everything.apply(lists["x", "test"][0]), lists["x", "test"][1])
    assert abs(leaked - eers[3]) > 1.0

    args = ["--components", ",".join(PAIR)]
    for g in ("x", "y", "z"):
        args += ["--dev", g, str(tmp_path), f"{g}_dev"]
    args += ["--test", "x", str(tmp_path), "x_test", "--test", "z", str(tmp_path), "z_test"]
    assert compare.main(args) == 0
    header, _, row = capsys.readouterr().out.strip().splitlines()
    assert header == "| components | x_dev | y_dev | z_dev | dev mean | x_test | z_test | test mean |"
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == ",".join(PAIR)
    assert cells[1:4] + cells[5:7] == [f"{e:.2f}" for e in expected]
    assert cells[4] == f"**{np.mean(expected[:3]):.2f}**" and cells[7] == f"{np.mean(expected[3:]):.2f}"


def test_one_group_is_refused(tmp_path):
    scored_lists(tmp_path)
    with pytest.raises(UserError, match="two or more groups"):
        compare.main(["--components", "cosine_dm,stats", "--dev", "x", str(tmp_path), "x_dev",
                      "--dev", "x", str(tmp_path), "x_test"])
    with pytest.raises(UserError, match="unknown back-end"):
        compare.main(["--components", "stats,magic", "--dev", "x", str(tmp_path), "x_dev",
                      "--dev", "y", str(tmp_path), "y_dev"])
    with pytest.raises(UserError, match="two or more distinct back-ends"):
        compare.main(["--components", "stats,stats", "--dev", "x", str(tmp_path), "x_dev",
                      "--dev", "y", str(tmp_path), "y_dev"])
