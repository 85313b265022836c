"""Trial design shared by every corpus: labels, determinism, no cross-group impostors."""

from __future__ import annotations

import random

import pytest

from dropclass_lib.corpora.trial_design import TrialDesign, design_trials
from dropclass_lib.errors import UserError


def _utt2spk(num_spk: int, num_utt: int, prefix: str = "s") -> dict[str, str]:
    return {f"{prefix}{s}-u{u}": f"{prefix}{s}" for s in range(num_spk) for u in range(num_utt)}


def test_labels_match_speakers_and_counts():
    utt2spk = _utt2spk(5, 4)
    trials = design_trials(utt2spk, TrialDesign(enrol_per_speaker=2, nontargets_per_enrol=6), seed=1)
    for e, t, y in zip(trials.enrol, trials.test, trials.target):
        assert e != t
        assert y == (utt2spk[e] == utt2spk[t])
    assert len(trials.enrol_utts()) == 10                # 2 per speaker
    assert trials.target.sum() == 10 * 3                 # all other utterances of the speaker
    assert (~trials.target).sum() == 10 * 6
    pairs = list(zip(trials.enrol, trials.test))
    assert len(set(pairs)) == len(pairs)


def test_deterministic_whatever_the_input_order_and_seed_sensitive():
    utt2spk = _utt2spk(6, 5)
    design = TrialDesign(enrol_per_speaker=1, max_targets_per_enrol=2, nontargets_per_enrol=5)
    items = list(utt2spk.items())
    random.Random(0).shuffle(items)
    a = design_trials(utt2spk, design, seed=3)
    b = design_trials(dict(items), design, seed=3)
    c = design_trials(utt2spk, design, seed=4)
    assert list(zip(a.enrol, a.test, a.target)) == list(zip(b.enrol, b.test, b.target))
    assert list(zip(a.enrol, a.test)) != list(zip(c.enrol, c.test))


def test_no_cross_group_trials():
    utt2spk = {**_utt2spk(3, 3, "a"), **_utt2spk(3, 3, "b")}
    spk2group = {s: s[0] for s in utt2spk.values()}
    trials = design_trials(utt2spk, TrialDesign(enrol_per_speaker=2, nontargets_per_enrol=None), 0, spk2group)
    assert all(e[0] == t[0] for e, t in zip(trials.enrol, trials.test))
    # without nontarget cap, every same-group impostor utterance is paired with each enrolment
    assert (~trials.target).sum() == 12 * 6


def test_single_speaker_group_is_an_error():
    with pytest.raises(UserError, match="nontarget"):
        design_trials(_utt2spk(1, 3), TrialDesign(), 0)
    with pytest.raises(UserError, match="target"):
        design_trials(_utt2spk(3, 1), TrialDesign(), 0)
