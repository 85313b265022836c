"""Results tables: discovery convention, mean ± std over seeds, relative EER change, floor row."""

import json
import sys
from pathlib import Path

import pytest

from dropclass_lib.errors import UserError
from dropclass_lib.results import build_tables, find_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "steps"))
import make_results_table  # noqa: E402


def put(exp, rel, backend, eer, dcf=0.5, trial_set="vox1_o", **extra):
    path = exp / rel / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"trial_set": trial_set, "backend": backend, "num_trials": 100, "eer": eer,
                                "min_dcf_0.01": dcf, "min_dcf_0.001": dcf + 0.1, **extra}))


@pytest.fixture
def exp(tmp_path):
    exp = tmp_path / "exp"
    for seed, eer in [(1, 4.0), (2, 6.0)]:                 # baseline: mean 5, sample std sqrt(2)
        put(exp, f"baseline/seed{seed}/scores_vox1_o_cosine", "cosine", eer)
        put(exp, f"baseline/seed{seed}/scores_vox1_o_plda", "plda", eer / 2)
    put(exp, "dropclass/seed1/scores_vox1_o_cosine", "cosine", 4.5)
    put(exp, "dropclass/seed1/scores_vox1_o_plda", "plda", 2.0)
    put(exp, "dropadapt/combine/scores_vox1_o_cosine", "cosine", 4.0, dcf=0.4)
    put(exp, "mfcc_floor/scores_vox1_o", "cosine", 30.0, floor=True)
    put(exp, "baseline/seed1/train_log", "cosine", 1.0)              # not under scores*: ignored
    (exp / "baseline" / "seed1" / "metrics.json").write_text("{}")
    return exp


def test_tables_aggregate_seeds_and_compare_with_baseline(exp):
    tables = build_tables(find_results(exp), "baseline")
    table = tables["sets"]["vox1_o"]
    assert table["backends"] == ["cosine", "plda"]
    rows = {r["system"]: r for r in table["rows"]}
    assert [r["system"] for r in table["rows"]] == ["baseline", "dropadapt/combine", "dropclass", "mfcc_floor"]
    base = rows["baseline"]["backends"]["cosine"]
    assert base["eer"]["mean"] == pytest.approx(5.0)
    assert base["eer"]["std"] == pytest.approx(2 ** 0.5)      # (4 - 5)^2 + (6 - 5)^2 over n - 1 = 1
    assert base["seeds"] == [1, 2]
    assert rows["baseline"]["num_runs"] == 2
    # dropclass cosine: 100 * (4.5 - 5) / 5 = -10 %; plda: 100 * (2.0 - 2.5) / 2.5 = -20 %.
    assert rows["dropclass"]["backends"]["cosine"]["rel_eer_change"] == pytest.approx(-10.0)
    assert rows["dropclass"]["backends"]["plda"]["rel_eer_change"] == pytest.approx(-20.0)
    assert rows["dropclass"]["backends"]["cosine"]["eer"]["std"] is None
    assert "plda" not in rows["dropadapt/combine"]["backends"]
    assert rows["mfcc_floor"]["floor"] is True
    assert rows["mfcc_floor"]["backends"]["cosine"]["rel_eer_change"] is None  # a reference point, not a variant


def test_paired_differences_are_per_seed_against_the_baseline_of_that_seed(exp):
    put(exp, "dropclass/seed2/scores_vox1_o_cosine", "cosine", 5.0)
    put(exp, "dropclass/seed3/scores_vox1_o_cosine", "cosine", 1.0)    # no baseline of seed 3: not paired
    rows = {r["system"]: r for r in build_tables(find_results(exp), "baseline")["sets"]["vox1_o"]["rows"]}
    paired = rows["dropclass"]["backends"]["cosine"]["paired_delta_eer"]
    # seed 1: 4.5 - 4.0 = +0.5; seed 2: 5.0 - 6.0 = -1.0
    assert paired["mean"] == pytest.approx(-0.25) and paired["std"] == pytest.approx(1.5 / 2 ** 0.5)
    assert paired["n"] == 2
    assert rows["dropclass"]["backends"]["plda"]["paired_delta_eer"]["std"] is None      # one common seed
    assert rows["dropadapt/combine"]["backends"]["cosine"]["paired_delta_eer"] is None   # no seed
    assert rows["baseline"]["backends"]["cosine"]["paired_delta_eer"] is None
    assert rows["mfcc_floor"]["backends"]["cosine"]["paired_delta_eer"] is None
    assert make_results_table.main(["--columns", "eer,paired_delta_eer", str(exp)]) == 0
    md = (exp / "RESULTS.md").read_text()
    assert "cosine paired ΔEER" in md and "| dropclass | 3 | 3.50 ± 2.18 | -0.25 ± 1.06 |" in md
    assert make_results_table.main([str(exp)]) == 0
    assert "paired" not in (exp / "RESULTS.md").read_text()


def test_command_writes_markdown_and_json(exp):
    assert make_results_table.main([str(exp)]) == 0
    md = (exp / "RESULTS.md").read_text()
    assert "## vox1_o (100 trials)" in md
    assert "| baseline | 2 | 5.00 ± 1.41 | 0.5000 ± 0.0000 | 0.6000 ± 0.0000 | – | 2.50 ± 0.71 |" in md
    assert "| dropclass | 1 | 4.50 | 0.5000 | 0.6000 | -10.0 | 2.00 | 0.5000 | 0.6000 | -20.0 |" in md
    assert "| dropadapt/combine | 1 | 4.00 | 0.4000 | 0.5000 | -20.0 | – | – | – | – |" in md
    assert md.index("mfcc_floor (floor)") > md.index("dropclass")
    data = json.loads((exp / "RESULTS.json").read_text())
    assert data["baseline"] == "baseline"
    assert data["sets"]["vox1_o"]["rows"][0]["system"] == "baseline"


def test_errors(exp, tmp_path):
    with pytest.raises(UserError, match="baseline system 'nope'"):
        make_results_table.main(["--baseline", "nope", str(exp)])
    put(exp, "dropclass/seed1/scores_vox1_o_cosine_again", "cosine", 4.4)
    with pytest.raises(UserError, match="two results for system 'dropclass' seed 1"):
        make_results_table.main([str(exp)])
    put(tmp_path / "bad", "x/scores_a", "cosine", 1.0)
    (tmp_path / "bad" / "x" / "scores_a" / "metrics.json").write_text('{"backend": "cosine"}')
    with pytest.raises(UserError, match="missing trial_set"):
        find_results(tmp_path / "bad")
    with pytest.raises(UserError, match="does not exist"):
        find_results(tmp_path / "none")


def test_cllr_columns_where_the_results_have_them(exp):
    # Results written since Cllr is measured carry it; older ones (the fixture's) do not.
    put(exp, "baseline/seed1/scores_vox1_o_plda_cal", "plda+cal", 2.0, cllr=0.25, min_cllr=0.2)
    put(exp, "baseline/seed2/scores_vox1_o_plda_cal", "plda+cal", 3.0, cllr=0.35, min_cllr=0.3)
    put(exp, "dropclass/seed1/scores_vox1_o_plda_cal", "plda+cal", 2.0)
    tables = build_tables(find_results(exp), "baseline")
    rows = {r["system"]: r for r in tables["sets"]["vox1_o"]["rows"]}
    cell = rows["baseline"]["backends"]["plda+cal"]
    assert cell["cllr"]["mean"] == pytest.approx(0.3) and cell["cllr"]["std"] == pytest.approx(0.1 / 2 ** 0.5)
    assert cell["min_cllr"]["mean"] == pytest.approx(0.25)
    assert rows["dropclass"]["backends"]["plda+cal"]["cllr"] is None
    assert rows["baseline"]["backends"]["cosine"]["cllr"] is None
    assert make_results_table.main([str(exp)]) == 0
    md = (exp / "RESULTS.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| system"))
    assert header.endswith("| plda+cal EER (%) | plda+cal minDCF@0.01 | plda+cal minDCF@0.001 | plda+cal ΔEER (%) "
                           "| plda+cal Cllr | plda+cal minCllr |")
    assert "cosine Cllr" not in header and "| plda ΔEER (%) | plda+cal EER (%) |" in header
    assert md.count("| baseline | 2 | 5.00 ± 1.41 | 0.5000 ± 0.0000 | 0.6000 ± 0.0000 | – | 2.50 ± 0.71 |") == 1
    baseline_row = next(line for line in md.splitlines() if line.startswith("| baseline |"))
    assert baseline_row.endswith("| 2.50 ± 0.71 | 0.5000 ± 0.0000 | 0.6000 ± 0.0000 | – | 0.300 ± 0.071 | 0.250 ± 0.071 |")
    dropclass_row = next(line for line in md.splitlines() if line.startswith("| dropclass |"))
    assert dropclass_row.endswith("| 2.00 | 0.5000 | 0.6000 | -20.0 | – | – |")


def test_one_trial_set_scored_on_two_trial_lists_is_refused(exp):
    """The issue's case: a stale 208-trial floor row was put beside 122-trial rows of the same set."""
    put(exp, "mfcc_floor/scores_vox1_o", "cosine", 30.0, floor=True)
    (exp / "mfcc_floor" / "scores_vox1_o" / "metrics.json").write_text(json.dumps(
        {"trial_set": "vox1_o", "backend": "cosine", "num_trials": 208, "eer": 30.0, "min_dcf_0.01": 1.0,
         "min_dcf_0.001": 1.0, "floor": True}))
    with pytest.raises(UserError, match=r"'vox1_o' was scored on different trial lists \(100 trials: .*; "
                                        r"208 trials: .*mfcc_floor"):
        build_tables(find_results(exp), "baseline")
    with pytest.raises(UserError, match="different trial lists"):
        make_results_table.main([str(exp)])


def test_same_count_but_another_list_is_refused(exp):
    for rel, digest in (("baseline/seed1/scores_vox1_o_cosine", "a" * 40), ("dropclass/seed1/scores_vox1_o_cosine", "b" * 40)):
        data = json.loads((exp / rel / "metrics.json").read_text())
        (exp / rel / "metrics.json").write_text(json.dumps({**data, "trials_sha1": digest}))
    with pytest.raises(UserError, match=r"different trial lists \(list aaaaaaaaaa: .*; list bbbbbbbbbb: "):
        build_tables(find_results(exp), "baseline")


def test_columns_choose_the_figures_of_the_markdown(exp):
    from dropclass_lib.results import render_markdown

    tables = build_tables(find_results(exp), "baseline")
    md = render_markdown(tables, ["eer"])
    header = next(line for line in md.splitlines() if line.startswith("| system"))
    assert header == "| system | runs | cosine EER (%) | plda EER (%) |"
    assert "| baseline | 2 | 5.00 ± 1.41 | 2.50 ± 0.71 |" in md
    assert "ΔEER (%)" in render_markdown(tables, ["eer", "delta_eer"])
    with pytest.raises(UserError, match="unknown results column"):
        render_markdown(tables, ["eer", "auc"])
    assert make_results_table.main(["--columns", "eer,min_dcf_0.01", str(exp)]) == 0
    header = next(line for line in (exp / "RESULTS.md").read_text().splitlines() if line.startswith("| system"))
    assert header.count("minDCF@0.01") == 2 and "minDCF@0.001" not in header
