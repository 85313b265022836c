"""Trial design shared by every corpus: labels, determinism, no cross-group impostors, the
choice of enrolment utterances, and utils/make_trials.py."""

from __future__ import annotations

import random

import pytest

from conftest import assert_line_error, make_data_dir, run_cli
from dropclass_lib.config import from_dict
from dropclass_lib.corpora.trial_design import TrialDesign, design_trials
from dropclass_lib.datadir import validate_data_dir
from dropclass_lib.errors import UserError
from dropclass_lib.tables import c_sorted

MAKE_TRIALS = "utils/make_trials.py"


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


def _by_enrol(trials) -> dict[str, list[tuple[str, bool]]]:
    rows: dict[str, list[tuple[str, bool]]] = {}
    for e, t, y in zip(trials.enrol, trials.test, trials.target):
        rows.setdefault(e, []).append((t, bool(y)))
    return rows


def test_first_enrolment_choice_takes_the_c_sorted_first_utterances():
    # ids whose LC_ALL=C order differs from numeric order: u10 < u11 < ... < u16 < u2 < ... < u9
    utt2spk = {f"s{s}-u{u}": f"s{s}" for s in range(8) for u in range(2, 17)}
    design = TrialDesign(enrol_per_speaker=2, max_targets_per_enrol=10, nontargets_per_enrol=30, enrol_choice="first")
    items = list(utt2spk.items())
    random.Random(1).shuffle(items)
    trials = design_trials(dict(items), design, seed=5)
    expected = [u for s in range(8) for u in c_sorted(u for u in utt2spk if utt2spk[u] == f"s{s}")[:2]]
    assert trials.enrol_utts() == sorted(expected)
    assert expected[:2] == ["s0-u10", "s0-u11"]
    for enrol, rows in _by_enrol(trials).items():
        targets = [t for t, y in rows if y]
        nontargets = [t for t, y in rows if not y]
        assert len(targets) == 10 and len(nontargets) == 30
        assert len(set(targets)) == 10 and len(set(nontargets)) == 30
        assert all(utt2spk[t] == utt2spk[enrol] and t != enrol for t in targets)
        assert all(utt2spk[t] != utt2spk[enrol] for t in nontargets)
    again = design_trials(utt2spk, design, seed=5)
    assert list(zip(trials.enrol, trials.test, trials.target)) == list(zip(again.enrol, again.test, again.target))
    other_seed = design_trials(utt2spk, design, seed=6)
    assert other_seed.enrol_utts() == trials.enrol_utts()          # the enrolment side does not depend on the seed
    assert list(zip(other_seed.enrol, other_seed.test)) != list(zip(trials.enrol, trials.test))


def test_random_enrolment_choice_stays_the_default():
    assert TrialDesign().enrol_choice == "random"
    utt2spk = _utt2spk(10, 8)
    first = design_trials(utt2spk, TrialDesign(enrol_per_speaker=2, enrol_choice="first"), seed=0)
    drawn = design_trials(utt2spk, TrialDesign(enrol_per_speaker=2), seed=0)
    assert len(drawn.enrol_utts()) == 20
    assert drawn.enrol_utts() != first.enrol_utts()


def test_enrol_choice_is_checked_in_a_config():
    assert from_dict(TrialDesign, {"enrol_choice": "first"}).enrol_choice == "first"
    with pytest.raises(UserError, match="enrol_choice must be one of random, first, got 'last'"):
        from_dict(TrialDesign, {"enrol_choice": "last"}, source="corpus.yaml")


def test_make_trials_writes_a_valid_deterministic_list(tmp_path):
    data = make_data_dir(tmp_path, {"spkA": 4, "spkB": 5, "spkC": 3, "spkD": 1})
    (data / "trials").write_text("gone-utt spkA-utt0 target\n")    # a stale list is replaced, not read
    argv = ["--enrol-per-speaker", "2", "--enrol-choice", "first", "--targets-per-enrol", "2",
            "--nontargets-per-enrol", "3", "--seed", "7", str(data)]
    code, err = run_cli(MAKE_TRIALS, *argv)
    assert code == 0, err
    dd = validate_data_dir(data)
    assert dd.enrol == ["spkA-utt0", "spkA-utt1", "spkB-utt0", "spkB-utt1", "spkC-utt0", "spkC-utt1"]
    assert dd.trials.target.sum() == 6 * 2 and (~dd.trials.target).sum() == 6 * 3
    assert all(y == (dd.utt2spk[e] == dd.utt2spk[t]) for e, t, y in zip(dd.trials.enrol, dd.trials.test, dd.trials.target))
    first = (data / "trials").read_bytes()
    assert run_cli(MAKE_TRIALS, *argv)[0] == 0
    assert (data / "trials").read_bytes() == first
    code, err = run_cli(MAKE_TRIALS, "--targets-per-enrol", "all", "--nontargets-per-enrol", "all", str(data))
    assert code == 0, err
    dd = validate_data_dir(data)
    assert len(dd.enrol) == 6 and len(dd.trials) == 6 * 12      # each enrolment against all 12 others


def test_make_trials_errors_are_one_line(tmp_path):
    data = make_data_dir(tmp_path, {"spkA": 3, "spkB": 3})
    code, err = run_cli(MAKE_TRIALS, "--enrol-per-speaker", "0", str(data))
    assert code == 1 and err.count("\n") == 1 and "--enrol-per-speaker must be at least 1" in err, err
    code, err = run_cli(MAKE_TRIALS, str(tmp_path / "nowhere"))
    assert code == 1 and err.count("\n") == 1 and "nowhere does not exist" in err, err
    (data / "utt2spk").write_text("spkB-utt0 spkB\nspkA-utt0 spkA\n")
    code, err = run_cli(MAKE_TRIALS, str(data))
    assert_line_error(code, err, data / "utt2spk", 2, "spkA-utt0 spkA", "not sorted")
    one = make_data_dir(tmp_path / "one", {"spkA": 3})
    code, err = run_cli(MAKE_TRIALS, str(one))
    assert code == 1 and "cannot make nontarget trials" in err and "Traceback" not in err, err
    code, err = run_cli(MAKE_TRIALS, "--targets-per-enrol", "0", str(data))
    assert code == 2 and "expected a count >= 1 or 'all', got '0'" in err, err   # argparse's usage error
