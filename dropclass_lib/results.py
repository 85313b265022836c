"""Results tables: the metrics of every scored system, gathered into ``RESULTS.md`` / ``RESULTS.json``.

Input convention (what ``steps/score_trials.py`` and ``steps/score_mfcc_floor.py`` write):
every ``metrics.json`` under the experiment directory whose parent directory name starts with
``scores`` is one result, at

    EXP_DIR/<system>/[seed<k>/]<scores...>/metrics.json

- ``<system>`` is the path between EXP_DIR and the seed/scores directory (it may have several
  components: ``dropadapt/combine``); the row label;
- an optional ``seed<k>`` directory gives the seed; runs of one system over several seeds are
  reported as mean ± sample standard deviation (ddof = 1);
- the trial set and the back-end come from the file itself (``trial_set``, ``backend``), so
  the scores directory may be named freely (``scores_vox1_o_plda`` by convention);
- a result with ``"floor": true`` (the MFCC floor) is put below the systems;
- a result with ``"peer": NAME`` (a pretrained encoder from outside the project, scored by
  ``bench/score_pretrained_peer.py``) is labelled "(pretrained peer)" and put between the
  systems and the floor. Neither is a variant of the baseline: they get no relative EER change.

Per trial set, one table: a row per system; for each back-end the EER (%), minDCF@0.01,
minDCF@0.001 and the relative EER change against the baseline row,
``100 * (EER - EER_baseline) / EER_baseline`` (negative = better), computed on the means;
then Cllr and minCllr (bits) where the results have them (metrics.json written before they
were measured has not: such a cell is "–", and a back-end none of whose results has them gets
no such columns). With several seeds, the *paired* EER difference (column ``paired_delta_eer``,
not shown by default): per seed the system's EER less the baseline's of the same seed, mean ±
std over the seeds both have. A system that starts from the baseline of its seed (DropAdapt,
back-end adaptation) is measured by it without the baseline's own seed-to-seed spread.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from dropclass_lib.atomic import atomic_open
from dropclass_lib.errors import UserError

log = logging.getLogger(__name__)

METRICS = (("eer", "EER (%)", 2), ("min_dcf_0.01", "minDCF@0.01", 4), ("min_dcf_0.001", "minDCF@0.001", 4))
# Shown when present: a cell summarises them only when every run of it has them.
OPTIONAL_METRICS = (("cllr", "Cllr", 3), ("min_cllr", "minCllr", 3))
BACKEND_ORDER = ("cosine", "plda")
SEED_DIR = re.compile(r"^seed(\d+)$")


def find_results(exp_dir: str | os.PathLike) -> list[dict]:
    """Every result under ``exp_dir`` as ``{system, seed, trial_set, backend, floor, peer, path, metrics}``."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"experiment directory {exp_dir} does not exist")
    found = []
    for path in sorted(exp_dir.rglob("metrics.json")):
        if not path.parent.name.startswith("scores"):
            continue
        parts = path.relative_to(exp_dir).parts[:-2]
        seed = None
        if parts and SEED_DIR.match(parts[-1]):
            seed = int(SEED_DIR.match(parts[-1]).group(1))
            parts = parts[:-1]
        if not parts:
            raise UserError(f"{path}: no system directory between {exp_dir} and the scores directory")
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: cannot read metrics ({err})") from None
        missing = [k for k in ("trial_set", "backend", "num_trials", *(m for m, _, _ in METRICS)) if k not in metrics]
        if missing:
            raise UserError(f"{path}: missing {', '.join(missing)} (not written by steps/score_trials.py?)")
        found.append({"system": "/".join(parts), "seed": seed, "trial_set": metrics["trial_set"],
                      "backend": metrics["backend"], "floor": bool(metrics.get("floor", False)),
                      "peer": metrics.get("peer") or None,
                      "path": str(path), "metrics": metrics})
    return found


def _summary(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def check_one_trial_list(trial_set: str, results: list[dict]) -> None:
    """Refuse results of one trial set scored on different trial lists (a stale result of an
    older list beside new ones): compared by the list's ``trials_sha1`` where recorded, else by
    ``num_trials``. The error names one result of each list."""
    by_count: dict[int, str] = {}
    by_digest: dict[str, str] = {}
    for r in results:
        by_count.setdefault(r["metrics"]["num_trials"], r["path"])
        if r["metrics"].get("trials_sha1"):
            by_digest.setdefault(r["metrics"]["trials_sha1"], r["path"])
    if len(by_count) > 1 or len(by_digest) > 1:
        shown = "; ".join(f"{n} trials: {path}" for n, path in sorted(by_count.items())) if len(by_count) > 1 else \
            "; ".join(f"list {d[:10]}: {path}" for d, path in sorted(by_digest.items()))
        raise UserError(f"trial set {trial_set!r} was scored on different trial lists ({shown}): rescore the "
                        "stale results (re-run their scoring step) or remove them")


def build_tables(results: list[dict], baseline: str | None = "baseline", order: list[str] | None = None) -> dict:
    """Aggregate results into ``{"baseline", "sets": {set: {"backends", "num_trials", "rows"}}}``."""
    seen: dict[tuple, str] = {}
    groups: dict[str, dict[str, dict[str, list[dict]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    floors: dict[str, bool] = {}
    peers: dict[str, str | None] = {}
    for r in results:
        key = (r["system"], r["seed"], r["trial_set"], r["backend"])
        if key in seen:
            raise UserError(f"two results for system {r['system']!r} seed {r['seed']} set {r['trial_set']!r} "
                            f"backend {r['backend']!r}: {seen[key]} and {r['path']}")
        seen[key] = r["path"]
        groups[r["trial_set"]][r["system"]][r["backend"]].append(r)
        floors[r["system"]] = floors.get(r["system"], False) or r["floor"]
        peers[r["system"]] = peers.get(r["system"]) or r.get("peer")
    out = {"baseline": baseline, "sets": {}}
    for trial_set in sorted(groups):
        systems = groups[trial_set]
        backends = sorted({b for s in systems.values() for b in s},
                          key=lambda b: (BACKEND_ORDER.index(b) if b in BACKEND_ORDER else len(BACKEND_ORDER), b))
        names = sorted(systems, key=lambda s: (floors[s], bool(peers[s]), s != baseline,
                                               order.index(s) if order and s in order else len(order or []), s))
        check_one_trial_list(trial_set, [r for s in systems.values() for rs in s.values() for r in rs])
        trial_counts = {r["metrics"]["num_trials"] for s in systems.values() for rs in s.values() for r in rs}
        rows = []
        for name in names:
            row = {"system": name, "floor": floors[name], "peer": peers[name], "backends": {}}
            seeds = set()
            for backend, rs in systems[name].items():
                seeds.update(r["seed"] for r in rs)
                row["backends"][backend] = {m: _summary([r["metrics"][m] for r in rs]) for m, _, _ in METRICS}
                for m, _, _ in OPTIONAL_METRICS:
                    have = all(r["metrics"].get(m) is not None for r in rs)
                    row["backends"][backend][m] = _summary([r["metrics"][m] for r in rs]) if have else None
                row["backends"][backend]["seeds"] = sorted(r["seed"] for r in rs if r["seed"] is not None)
            row["num_runs"] = max(len(v) for v in systems[name].values())
            rows.append(row)
        base = next((r for r in rows if r["system"] == baseline), None)
        for row in rows:
            for backend, cell in row["backends"].items():
                ref = base["backends"].get(backend) if base else None
                # the floor and a peer are reference points, not variants of the baseline: no relative change
                variant = ref is not None and not row["floor"] and not row["peer"] and row["system"] != baseline
                cell["rel_eer_change"] = (100.0 * (cell["eer"]["mean"] - ref["eer"]["mean"]) / ref["eer"]["mean"]
                                          if ref and ref["eer"]["mean"] > 0 and not row["floor"] and not row["peer"] else None)
                cell["paired_delta_eer"] = _paired(systems[row["system"]][backend], systems[baseline][backend]) \
                    if variant else None
        out["sets"][trial_set] = {"backends": backends, "num_trials": sorted(trial_counts), "rows": rows}
    return out


def _paired(runs: list[dict], baseline_runs: list[dict]) -> dict | None:
    """EER of each seed less the baseline's of the same seed, summarised over the common seeds."""
    base = {r["seed"]: r["metrics"]["eer"] for r in baseline_runs if r["seed"] is not None}
    diffs = [r["metrics"]["eer"] - base[r["seed"]] for r in sorted(runs, key=lambda r: r["seed"] or 0)
             if r["seed"] in base]
    return _summary(diffs) if diffs else None


def _fmt(summary: dict | None, digits: int) -> str:
    if summary is None:
        return "–"
    text = f"{summary['mean']:.{digits}f}"
    if summary["std"] is not None:
        text += f" ± {summary['std']:.{digits}f}"
    return text


COLUMNS = ("eer", "min_dcf_0.01", "min_dcf_0.001", "delta_eer", "cllr", "min_cllr", "paired_delta_eer")
DEFAULT_COLUMNS = COLUMNS[:-1]


def render_markdown(tables: dict, columns: tuple[str, ...] | list[str] = DEFAULT_COLUMNS) -> str:
    """The markdown tables; ``columns`` chooses, per back-end, which of ``COLUMNS`` are shown
    (RESULTS.json always holds every figure)."""
    bad = [c for c in columns if c not in COLUMNS]
    if bad or not columns:
        raise UserError(f"unknown results column(s) {', '.join(bad) or '(none given)'}; known: {', '.join(COLUMNS)}")
    metrics = [m for m in METRICS if m[0] in columns]
    delta = "delta_eer" in columns
    paired = "paired_delta_eer" in columns
    baseline = tables["baseline"]
    lines = ["# Results", "",
             "EER in %; minDCF at p_target 0.01 and 0.001 with C_miss = C_fa = 1, normalised as in NIST SRE. "
             "Cllr and minCllr in bits, reading the scores as log-likelihood ratios: minCllr measures "
             "discrimination, Cllr - minCllr the calibration loss (large for raw cosine or PLDA scores; "
             "`+cal` back-ends were calibrated by steps/calibrate_scores.py).",
             "Several seeds: mean ± sample standard deviation. "
             + (f"ΔEER: relative EER change against `{baseline}` (negative is better)." if baseline else "")
             + (f" Paired ΔEER: EER less `{baseline}`'s of the same seed, in points, mean ± std over the seeds."
                if baseline and paired else ""), ""]
    for trial_set, table in tables["sets"].items():
        counts = "/".join(map(str, table["num_trials"]))
        lines += [f"## {trial_set} ({counts} trials)", ""]
        optional = {b: [(m, label, d) for m, label, d in OPTIONAL_METRICS if m in columns
                        and any((row["backends"].get(b) or {}).get(m) is not None for row in table["rows"])]
                    for b in table["backends"]}
        header = ["system", "runs"]
        for b in table["backends"]:
            header += [f"{b} {label}" for _, label, _ in metrics] + ([f"{b} ΔEER (%)"] if delta else [])
            header += [f"{b} paired ΔEER"] if paired else []
            header += [f"{b} {label}" for _, label, _ in optional[b]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in table["rows"]:
            cells = [row["system"] + (" (floor)" if row["floor"] else "") + (" (pretrained peer)" if row["peer"] else ""),
                     str(row["num_runs"])]
            for b in table["backends"]:
                cell = row["backends"].get(b)
                cells += [_fmt(cell[m] if cell else None, d) for m, _, d in metrics]
                rel = cell["rel_eer_change"] if cell else None
                if delta:
                    cells.append("–" if rel is None or row["system"] == baseline else f"{rel:+.1f}")
                if paired:
                    diff = cell.get("paired_delta_eer") if cell else None
                    cells.append("–" if diff is None else f"{diff['mean']:+.2f}"
                                 + ("" if diff["std"] is None else f" ± {diff['std']:.2f}"))
                cells += [_fmt(cell.get(m) if cell else None, d) for m, _, d in optional[b]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_results(tables: dict, md_path: str | os.PathLike, json_path: str | os.PathLike,
                  columns: tuple[str, ...] | list[str] = DEFAULT_COLUMNS) -> None:
    with atomic_open(md_path, "w", encoding="utf-8") as f:
        f.write(render_markdown(tables, columns))
    with atomic_open(json_path, "w", encoding="utf-8") as f:
        json.dump(tables, f, indent=2)
        f.write("\n")
