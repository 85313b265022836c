"""steps/choose_backend.py: the back-end with the lowest mean EER over a table's trial sets."""

import json

import pytest

from conftest import load_script, run_cli
from dropclass_lib.errors import UserError
from dropclass_lib.results import build_tables

choose_backend = load_script("steps/choose_backend.py")


def result(system, trial_set, backend, eer, seed=1):
    return {"system": system, "seed": seed, "trial_set": trial_set, "backend": backend, "floor": False,
            "path": f"{system}/{trial_set}/{backend}/{seed}",
            "metrics": {"eer": eer, "min_dcf_0.01": 0.5, "min_dcf_0.001": 0.6, "num_trials": 10}}


def test_mean_over_sets_decides_and_only_common_backends_compete(tmp_path):
    results = [result("baseline", "a", "cosine", 10.0), result("baseline", "b", "cosine", 30.0),
               result("baseline", "a", "plda", 15.0), result("baseline", "b", "plda", 20.0),
               result("baseline", "a", "cosine_dm", 1.0),                      # only on one set
               result("other", "a", "cosine", 1.0), result("other", "b", "cosine", 1.0)]
    tables = build_tables(results, "baseline")
    best, means = choose_backend.choose([tables], "baseline")
    assert best == "plda" and means == {"cosine": 20.0, "plda": 17.5}
    path = tmp_path / "RESULTS.json"
    path.write_text(json.dumps(tables))
    code, err = run_cli("steps/choose_backend.py", "--system", "other", str(path))
    assert code == 0
    with pytest.raises(UserError, match="system 'nobody' has no results on trial set 'a'"):
        choose_backend.choose([tables], "nobody")
    path.write_text("{not json")
    code, err = run_cli("steps/choose_backend.py", str(path))
    assert code == 1 and "not a results file" in err and "Traceback" not in err


def test_several_tables_pool_their_trial_sets(tmp_path, capsys):
    same = build_tables([result("baseline", "a", "cosine", 10.0), result("baseline", "a", "fused", 5.0)], "baseline")
    cross = build_tables([result("baseline", "a_xch", "cosine", 20.0), result("baseline", "a_xch", "fused", 30.0),
                          result("baseline", "b_xch", "cosine", 20.0), result("baseline", "b_xch", "fused", 30.0)],
                         "baseline")
    assert choose_backend.choose([same], "baseline")[0] == "fused"
    best, means = choose_backend.choose([same, cross], "baseline")
    assert best == "cosine" and means == {"cosine": 50.0 / 3, "fused": 65.0 / 3}
    paths = []
    for name, tables in (("same", same), ("cross", cross)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(tables))
    capsys.readouterr()
    code, err = run_cli("steps/choose_backend.py", *map(str, paths))
    assert code == 0 and capsys.readouterr().out == "cosine\n"
    with pytest.raises(UserError, match="trial set 'a' is in more than one table"):
        choose_backend.choose([same, same], "baseline")
