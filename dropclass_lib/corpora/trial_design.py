"""Deterministic trial lists for a speaker-labelled evaluation set.

Each speaker contributes ``enrol_per_speaker`` enrolment utterances (one utterance per trial
side, as in VoxCeleb's lists): drawn at random, or the speaker's first ones in ``LC_ALL=C``
order (``enrol_choice: first``, to reproduce a published list design). Each enrolment utterance is paired with the speaker's other
utterances (target trials) and with utterances of *other speakers of the same group*
(nontarget trials); a group is a corpus when several are pooled, so that no trial compares
voices across corpora (such impostors are trivially rejected and would flatter any system).
The same inputs and seed always give the same list, whatever the order of ``utt2spk``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from dropclass_lib.errors import UserError
from dropclass_lib.tables import c_sorted
from dropclass_lib.trials import Trials


#: how a speaker's enrolment utterances are chosen
ENROL_CHOICES = ("random", "first")


@dataclass
class TrialDesign:
    """How trials are drawn (the ``trials`` section of a corpus config, or script options)."""

    enrol_per_speaker: int = 2             # enrolment utterances per speaker
    max_targets_per_enrol: Optional[int] = None  # None: all the speaker's other utterances
    nontargets_per_enrol: Optional[int] = 40     # None: every utterance of every other speaker
    enrol_choice: str = "random"           # "random" (seeded draw) or "first" (first in LC_ALL=C order)

    def validate(self) -> None:
        if self.enrol_per_speaker < 1:
            raise ValueError("trials.enrol_per_speaker must be at least 1")
        if self.enrol_choice not in ENROL_CHOICES:
            raise ValueError(f"trials.enrol_choice must be one of {', '.join(ENROL_CHOICES)}, got {self.enrol_choice!r}")
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
        if design.enrol_choice == "first":
            enrols = utts[:n_enrol]
        else:
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


def _count_or_all(text: str) -> int | None:
    """An option value that is a count >= 1, or ``all`` (no cap)."""
    if text.lower() in ("all", "none", "null"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or 'all', got {text!r}")
    return value


def add_trial_options(parser, design: TrialDesign) -> None:
    """Add the trial-design options of every script that writes trials to ``parser`` (an
    ``ArgumentParser`` or an argument group), with the defaults of ``design``."""
    parser.add_argument("--enrol-per-speaker", type=int, default=design.enrol_per_speaker,
                        help="enrolment utterances per speaker")
    parser.add_argument("--enrol-choice", choices=ENROL_CHOICES, default=design.enrol_choice,
                        help="enrolment utterances: drawn at random (with --seed), or each speaker's "
                             "first ones in LC_ALL=C order")
    parser.add_argument("--targets-per-enrol", "--max-targets-per-enrol", dest="max_targets_per_enrol",
                        type=_count_or_all, default=design.max_targets_per_enrol, metavar="N",
                        help="target trials per enrolment utterance, drawn from the speaker's other "
                             "utterances ('all', shown as None: every one)")
    parser.add_argument("--nontargets-per-enrol", type=_count_or_all, default=design.nontargets_per_enrol,
                        metavar="N", help="impostor trials per enrolment utterance, drawn from the other "
                                          "speakers' utterances of the same set ('all', shown as None: every one)")


def design_from_args(args: argparse.Namespace) -> TrialDesign:
    """The :class:`TrialDesign` of the options of :func:`add_trial_options`; an invalid one is a
    :class:`UserError` naming the option."""
    design = TrialDesign(args.enrol_per_speaker, args.max_targets_per_enrol, args.nontargets_per_enrol,
                         args.enrol_choice)
    try:
        design.validate()
    except ValueError as err:
        raise UserError(str(err).replace("trials.", "--").replace("_", "-")) from None
    return design
