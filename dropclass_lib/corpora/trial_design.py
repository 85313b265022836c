"""Deterministic trial lists for a speaker-labelled evaluation set.

Each speaker contributes ``enrol_per_speaker`` enrolment utterances (one utterance per trial
side, as in VoxCeleb's lists). Each enrolment utterance is paired with the speaker's other
utterances (target trials) and with utterances of *other speakers of the same group*
(nontarget trials); a group is a corpus when several are pooled, so that no trial compares
voices across corpora (such impostors are trivially rejected and would flatter any system).
The same inputs and seed always give the same list, whatever the order of ``utt2spk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from dropclass_lib.errors import UserError
from dropclass_lib.tables import c_sorted
from dropclass_lib.trials import Trials


@dataclass
class TrialDesign:
    """How trials are drawn (the ``trials`` section of a corpus config, or script options)."""

    enrol_per_speaker: int = 2             # enrolment utterances per speaker
    max_targets_per_enrol: Optional[int] = None  # None: all the speaker's other utterances
    nontargets_per_enrol: Optional[int] = 40     # None: every utterance of every other speaker

    def validate(self) -> None:
        if self.enrol_per_speaker < 1:
            raise ValueError("trials.enrol_per_speaker must be at least 1")
        for name in ("max_targets_per_enrol", "nontargets_per_enrol"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"trials.{name} must be at least 1 (or null for all)")


def design_trials(utt2spk: Mapping[str, str], design: TrialDesign, seed: int,
                  spk2group: Mapping[str, str] | None = None) -> Trials:
    """Draw the trials of ``utt2spk``; ``spk2group`` (speaker -> corpus) limits nontargets to
    speakers of the same group. Speakers with a single utterance only serve as impostors."""
    spk2utts: dict[str, list[str]] = {}
    for utt in c_sorted(utt2spk):
        spk2utts.setdefault(utt2spk[utt], []).append(utt)
    group = {spk: (spk2group[spk] if spk2group is not None else "") for spk in spk2utts}
    group_utts: dict[str, list[str]] = {}
    for spk in c_sorted(spk2utts):
        group_utts.setdefault(group[spk], []).extend(spk2utts[spk])

    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, bool]] = []
    for spk in c_sorted(spk2utts):
        utts = spk2utts[spk]
        if len(utts) < 2:
            continue
        n_enrol = min(design.enrol_per_speaker, len(utts) - 1)
        enrols = c_sorted(rng.choice(utts, size=n_enrol, replace=False).tolist())
        impostors = [u for u in group_utts[group[spk]] if utt2spk[u] != spk]
        for enrol in enrols:
            targets = [u for u in utts if u != enrol]
            rows += [(enrol, t, True) for t in _pick(rng, targets, design.max_targets_per_enrol)]
            rows += [(enrol, t, False) for t in _pick(rng, impostors, design.nontargets_per_enrol)]
    if not any(r[2] for r in rows):
        raise UserError("cannot make target trials: no speaker has two or more utterances")
    if all(r[2] for r in rows):
        raise UserError("cannot make nontarget trials: a single speaker (per group) in the evaluation set")
    rows.sort(key=lambda r: (r[0].encode(), r[1].encode()))
    return Trials(np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=object),
                  np.array([r[2] for r in rows], dtype=bool))


def _pick(rng: np.random.Generator, pool: list[str], limit: int | None) -> list[str]:
    if limit is None or limit >= len(pool):
        return pool
    return rng.choice(pool, size=limit, replace=False).tolist()
