"""Kaldi trial lists: ``enrol-utt test-utt target|nontarget`` per line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Collection

import numpy as np

from dropclass_lib.atomic import atomic_open
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import iter_lines

LABELS = {"target": True, "nontarget": False}


@dataclass
class Trials:
    enrol: np.ndarray   # utterance ids (str objects), one per trial
    test: np.ndarray
    target: np.ndarray  # bool, True for same-speaker trials

    def __len__(self) -> int:
        return len(self.target)

    def enrol_utts(self) -> list[str]:
        """The distinct enrolment (left-hand side) utterances, sorted."""
        return sorted(set(self.enrol.tolist()))

    def utts(self) -> list[str]:
        return sorted(set(self.enrol.tolist()) | set(self.test.tolist()))


def read_trials(path: str | os.PathLike, known_utts: Collection[str] | None = None) -> Trials:
    """Read a trials file; a malformed line, an unknown label or (when ``known_utts`` is given)
    an utterance that is not in the data raises :class:`InputFileError` naming the line."""
    known = set(known_utts) if known_utts is not None else None
    enrol, test, target = [], [], []
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 3:
            raise InputFileError(path, lineno, f"expected 3 fields 'enrol test target|nontarget', got {len(parts)}", line)
        e, t, lab = parts
        if lab not in LABELS:
            raise InputFileError(path, lineno, f"label must be 'target' or 'nontarget', got {lab!r}", line)
        if known is not None:
            for u in (e, t):
                if u not in known:
                    raise InputFileError(path, lineno, f"utterance {u!r} is not in the data", line)
        enrol.append(e)
        test.append(t)
        target.append(LABELS[lab])
    if not target:
        raise UserError(f"{path}: no trials")
    return Trials(np.array(enrol, dtype=object), np.array(test, dtype=object), np.array(target, dtype=bool))


def write_trials(path: str | os.PathLike, trials: Trials) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        for e, t, y in zip(trials.enrol, trials.test, trials.target):
            f.write(f"{e} {t} {'target' if y else 'nontarget'}\n")
