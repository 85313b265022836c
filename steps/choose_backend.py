#!/usr/bin/env python3
"""Print the back-end with the lowest mean EER over the trial sets of one or more results tables.

    steps/choose_backend.py [--system NAME] RESULTS_JSON [RESULTS_JSON ...]

RESULTS_JSON is what steps/make_results_table.py writes. Only back-ends that the system has on
every trial set of every table compete; the mean is over trial sets (each counts once, however
many trials it has, whichever table holds it). Recipes run it on development results, never on
test results, to choose the back-end a model package reports first; several tables pool their
trial sets, e.g. development lists as recorded and through another microphone.

Example:
  steps/choose_backend.py --system baseline exp/real_loco_dev/RESULTS.json exp/real_loco_dev_xch/RESULTS.json
"""

from __future__ import annotations

import json
import logging

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import UserError

log = logging.getLogger("choose_backend")


def choose(tables: list[dict], system: str) -> tuple[str, dict[str, float]]:
    """``(best back-end, {back-end: mean EER})`` of ``system`` over the trial sets of ``tables`` (the
    contents of results files)."""
    per_set = []
    sets = [item for t in tables for item in t.get("sets", {}).items()]
    names = [name for name, _ in sets]
    if len(set(names)) != len(names):
        raise UserError(f"trial set {next(n for n in names if names.count(n) > 1)!r} is in more than one table")
    for trial_set, table in sets:
        row = next((r for r in table["rows"] if r["system"] == system), None)
        if row is None:
            raise UserError(f"system {system!r} has no results on trial set {trial_set!r}")
        per_set.append({b: cell["eer"]["mean"] for b, cell in row["backends"].items()})
    if not per_set:
        raise UserError("the results tables have no trial sets")
    common = set.intersection(*(set(s) for s in per_set))
    if not common:
        raise UserError(f"no back-end of {system!r} was scored on every trial set")
    means = {b: sum(s[b] for s in per_set) / len(per_set) for b in sorted(common)}
    return min(means, key=lambda b: (means[b], b)), means


def read_results(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None
    except ValueError as err:
        raise UserError(f"{path}: not a results file ({err})") from None


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--system", default="baseline", help="the system whose back-ends compete")
    p.add_argument("results_json", nargs="+")
    args = p.parse_args(argv)
    best, means = choose([read_results(path) for path in args.results_json], args.system)
    log.info("mean EER over %s: %s", ", ".join(args.results_json), ", ".join(f"{b} {v:.2f}" for b, v in means.items()))
    print(best)
    return 0


if __name__ == "__main__":
    run_main(main)
