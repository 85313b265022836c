#!/usr/bin/env python3
"""Print the back-end with the lowest mean EER over the trial sets of a results table.

    steps/choose_backend.py [--system NAME] RESULTS_JSON

RESULTS_JSON is what steps/make_results_table.py writes. Only back-ends that the system has on
every trial set of the table compete; the mean is over trial sets (each counts once, however many
trials it has). Recipes run it on development results, never on test results, to choose the
back-end a model package reports first.

Example:
  steps/choose_backend.py --system baseline exp/real_loco_dev/RESULTS.json
"""

from __future__ import annotations

import json
import logging

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import UserError

log = logging.getLogger("choose_backend")


def choose(tables: dict, system: str) -> tuple[str, dict[str, float]]:
    """``(best back-end, {back-end: mean EER})`` of ``system`` over the table's trial sets."""
    per_set = []
    for trial_set, table in tables.get("sets", {}).items():
        row = next((r for r in table["rows"] if r["system"] == system), None)
        if row is None:
            raise UserError(f"system {system!r} has no results on trial set {trial_set!r}")
        per_set.append({b: cell["eer"]["mean"] for b, cell in row["backends"].items()})
    if not per_set:
        raise UserError("the results table has no trial sets")
    common = set.intersection(*(set(s) for s in per_set))
    if not common:
        raise UserError(f"no back-end of {system!r} was scored on every trial set")
    means = {b: sum(s[b] for s in per_set) / len(per_set) for b in sorted(common)}
    return min(means, key=lambda b: (means[b], b)), means


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--system", default="baseline", help="the system whose back-ends compete")
    p.add_argument("results_json")
    args = p.parse_args(argv)
    try:
        with open(args.results_json, encoding="utf-8") as f:
            tables = json.load(f)
    except OSError as err:
        raise UserError(f"cannot read {args.results_json}: {err.strerror}") from None
    except ValueError as err:
        raise UserError(f"{args.results_json}: not a results file ({err})") from None
    best, means = choose(tables, args.system)
    log.info("mean EER over %s: %s", args.results_json, ", ".join(f"{b} {v:.2f}" for b, v in means.items()))
    print(best)
    return 0


if __name__ == "__main__":
    run_main(main)
