"""Scoring a trial list with a back-end and writing the standard outputs of a scoring directory.

``OUT_DIR/scores`` (``enrol test score`` per trial, in trial order), ``metrics.json``
(:func:`dropclass_lib.metrics.compute_metrics`, the ``cllr`` and ``min_cllr`` of
:func:`dropclass_lib.metrics.calibration_metrics`, plus what was scored and ``trials_sha1``, the
identity of the trial list: results tables refuse to put rows of one trial set scored on
different lists side by side), ``RESULTS`` (one line), ``det.png`` and ``hist.png``. Shared by ``steps/score_trials.py`` and ``steps/score_mfcc_floor.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from dropclass_lib.atomic import atomic_open
from dropclass_lib.backends.score_norm import cohort_stats, s_norm
from dropclass_lib.backends.scoring import pair_scores
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.metrics import calibration_metrics, compute_metrics, error_rates, results_line
from dropclass_lib.plots import plot_det, plot_score_histogram
from dropclass_lib.tables import iter_lines
from dropclass_lib.trials import Trials, read_trials

log = logging.getLogger(__name__)

OUTPUT_FILES = ("scores", "metrics.json", "RESULTS", "det.png", "hist.png")


def trial_indices(utts: np.ndarray, keys: list[str], trials_path: str | os.PathLike, side: str,
                  source: str) -> np.ndarray:
    """Row of each trial's utterance in ``keys``; an utterance without one is an error naming the
    trials file, the line and the utterance."""
    uniq, inverse = np.unique(utts.astype(str), return_inverse=True)
    pos = {k: i for i, k in enumerate(keys)}
    rows = np.array([pos.get(u, -1) for u in uniq], dtype=np.int64)
    if (rows < 0).any():
        missing = set(uniq[rows < 0].tolist())
        first = int(np.flatnonzero(rows[inverse] < 0)[0])
        for k, (lineno, line) in enumerate(iter_lines(trials_path)):
            if k == first:
                utt = line.split()[0 if side == "enrol" else 1]
                raise InputFileError(trials_path, lineno,
                                     f"{side} utterance {utt!r} is not in {source} "
                                     f"({len(missing)} {side} utterance(s) missing in all)", line)
    return rows[inverse]


def score_trial_list(backend, trials: Trials, trials_path, enrol: tuple[list[str], np.ndarray],
                     test: tuple[list[str], np.ndarray], enrol_source: str, test_source: str,
                     cohort: np.ndarray | None = None, top_n: int | None = None) -> np.ndarray:
    """Scores of all trials; with ``cohort`` (embeddings), S-norm (AS-norm if ``top_n``) applied."""
    ei = trial_indices(trials.enrol, enrol[0], trials_path, "enrol", enrol_source)
    ti = trial_indices(trials.test, test[0], trials_path, "test", test_source)
    # Only the embeddings that some trial uses are transformed and normalised.
    e_used, ei = np.unique(ei, return_inverse=True)
    t_used, ti = np.unique(ti, return_inverse=True)
    e_space = backend.transform(enrol[1][e_used])
    t_space = backend.transform(test[1][t_used])
    scores = pair_scores(e_space, t_space, ei, ti)
    if cohort is not None:
        c_space = backend.transform(cohort)
        scores = s_norm(scores, cohort_stats(e_space, c_space, top_n), cohort_stats(t_space, c_space, top_n), ei, ti)
    return scores


def trials_digest(trials: Trials) -> str:
    """SHA-1 of the trial list (enrol, test, target per trial, in order): what it was scored on."""
    digest = hashlib.sha1()
    for e, t, y in zip(trials.enrol.tolist(), trials.test.tolist(), trials.target.tolist()):
        digest.update(f"{e} {t} {int(y)}\n".encode("utf-8"))
    return digest.hexdigest()


def write_scoring_outputs(out_dir: str | os.PathLike, trials: Trials, scores: np.ndarray, info: dict,
                          title: str = "") -> dict:
    """Write the scoring directory; return the metrics (``info`` is merged into metrics.json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_dir / "scores", "w", encoding="utf-8") as f:
        f.writelines(f"{e} {t} {s:.6f}\n" for e, t, s in zip(trials.enrol, trials.test, scores.tolist()))
    metrics = {**info, "trials_sha1": trials_digest(trials), **compute_metrics(scores, trials.target),
               **calibration_metrics(scores, trials.target)}
    rates = error_rates(scores, trials.target)
    label = info.get("backend", "scores")
    plot_det({label: rates}, out_dir / "det.png", title=title, eers={label: metrics["eer"] / 100})
    plot_score_histogram(scores, trials.target, out_dir / "hist.png", title=title)
    with atomic_open(out_dir / "metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")
    line = results_line(metrics)
    with atomic_open(out_dir / "RESULTS", "w", encoding="utf-8") as f:
        f.write(line + "\n")
    log.info("%s: %s", out_dir, line)
    return metrics


def read_score_dir(score_dir: Path) -> tuple[Trials, np.ndarray, dict]:
    """``(trials with labels, scores in trial order, metrics.json)`` of a scoring directory."""
    metrics_path, scores_path = score_dir / "metrics.json", score_dir / "scores"
    for path in (metrics_path, scores_path):
        if not path.is_file():
            raise UserError(f"{path} does not exist (score the trials with steps/score_trials.py first)")
    try:
        info = json.loads(metrics_path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InputFileError(metrics_path, None, f"not JSON ({err})") from None
    if not info.get("trials"):
        raise InputFileError(metrics_path, None, "names no trial list (\"trials\"), so the labels are unknown")
    trials_path = Path(info["trials"])
    if not trials_path.is_file():
        raise InputFileError(metrics_path, None, f"its trial list {trials_path} does not exist (relative paths are "
                             "read from the directory the scoring ran in: run this step from there)")
    trials = read_trials(trials_path)
    scores = np.empty(len(trials))
    n = 0
    for lineno, line in iter_lines(scores_path):
        parts = line.split()
        if n >= len(trials):
            raise InputFileError(scores_path, lineno, f"more scores than the {len(trials)} trials of {trials_path}", line)
        if len(parts) != 3 or (parts[0], parts[1]) != (trials.enrol[n], trials.test[n]):
            raise InputFileError(scores_path, lineno, f"expected 'enrol test score' for trial {n + 1} of {trials_path} "
                                 f"({trials.enrol[n]} {trials.test[n]})", line)
        try:
            scores[n] = float(parts[2])
        except ValueError:
            raise InputFileError(scores_path, lineno, f"score {parts[2]!r} is not a number", line) from None
        n += 1
    if n != len(trials):
        raise InputFileError(scores_path, None, f"{n} scores for the {len(trials)} trials of {trials_path}")
    return trials, scores, info


def read_score_columns(eval_dir: Path, set_name: str, backends: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(scores: trials x backends, target labels)`` of trial set ``set_name`` scored in
    ``eval_dir`` (``EVAL_DIR/scores_<set>_<backend>/``) by each of ``backends``, which must have
    scored the same trials."""
    columns, labels, first = [], None, None
    for name in backends:
        score_dir = Path(eval_dir) / f"scores_{set_name}_{name}"
        trials, scores, _ = read_score_dir(score_dir)
        if first is None:
            first, labels = score_dir, trials.target
        elif len(trials) != len(labels) or not np.array_equal(trials.target, labels):
            raise UserError(f"{score_dir} scored other trials than {first}")
        columns.append(scores)
    return np.stack(columns, axis=1), np.asarray(labels, dtype=bool)
