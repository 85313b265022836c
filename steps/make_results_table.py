#!/usr/bin/env python3
"""Gather the scored systems of an experiment directory into RESULTS.md and RESULTS.json.

Every EXP_DIR/<system>/[seed<k>/]scores*/metrics.json (written by steps/score_trials.py or
steps/score_mfcc_floor.py) is one result; see dropclass_lib/results.py for the convention.
One table per trial set, one row per system (the baseline first, the MFCC floor last), per
back-end: EER, minDCF@0.01, minDCF@0.001 (mean ± std over seeds) and the relative EER change
against the baseline.

Example:
  steps/make_results_table.py --baseline baseline exp     # writes exp/RESULTS.md, exp/RESULTS.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import UserError
from dropclass_lib.results import COLUMNS, DEFAULT_COLUMNS, build_tables, find_results, write_results

log = logging.getLogger("make_results_table")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="baseline", help="system the relative EER change refers to (default baseline)")
    p.add_argument("--order", default="", help="comma-separated systems, in the order of the rows (others follow, sorted)")
    p.add_argument("--columns", default=",".join(DEFAULT_COLUMNS),
                   help=f"comma-separated figures shown per back-end in the markdown, among {', '.join(COLUMNS)} "
                   "(default: all but paired_delta_eer; RESULTS.json has all)")
    p.add_argument("--out-md", help="markdown table (default EXP_DIR/RESULTS.md)")
    p.add_argument("--out-json", help="machine-readable copy (default EXP_DIR/RESULTS.json)")
    p.add_argument("exp_dir")
    args = p.parse_args(argv)
    exp = Path(args.exp_dir)
    results = find_results(exp)
    if not results:
        raise UserError(f"no {exp}/<system>/[seed<k>/]scores*/metrics.json found: score some trials first")
    if not any(r["system"] == args.baseline for r in results):
        raise UserError(f"baseline system {args.baseline!r} has no results under {exp} "
                        f"(systems: {', '.join(sorted({r['system'] for r in results}))})")
    tables = build_tables(results, args.baseline, [s for s in args.order.split(",") if s])
    md, js = Path(args.out_md or exp / "RESULTS.md"), Path(args.out_json or exp / "RESULTS.json")
    write_results(tables, md, js, [c.strip() for c in args.columns.split(",") if c.strip()])
    log.info("%d results of %d systems -> %s, %s", len(results), len({r["system"] for r in results}), md, js)
    return 0


if __name__ == "__main__":
    run_main(main)
