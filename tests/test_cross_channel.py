"""steps/make_cross_channel_set.py: a test set whose trials cross a change of microphone."""

from __future__ import annotations

from conftest import ROOT, load_script, run_cli
from dropclass_lib.datadir import DataDir
from dropclass_lib.trials import read_trials
from test_augment import write_clean_dir

augment = load_script("steps/augment_data_dir.py")
make_set = load_script("steps/make_cross_channel_set.py")
CONF = ROOT / "egs" / "realspeech" / "conf" / "cross_channel.yaml"


def test_trials_keep_their_enrolment_and_move_their_test_side_to_the_copy(tmp_path):
    src = write_clean_dir(tmp_path, speakers=3, per_spk=3)
    utts = sorted(DataDir.load(src).utt2spk)
    trials = [f"{e} {t} {'target' if e[:3] == t[:3] else 'nontarget'}" for e in utts[::3] for t in utts if t != e]
    (src / "trials").write_text("\n".join(trials) + "\n")
    (src / "enrol.list").write_text("".join(u + "\n" for u in utts[::3]))
    (src / "feats_config.yaml").write_text("feat_type: fbank\n")
    assert augment.main(["--config", str(CONF), str(src), str(tmp_path / "aug")]) == 0
    aug = DataDir.load(tmp_path / "aug")
    assert sorted(aug.utt2spk) == [f"{u}-sim_channel" for u in utts]

    assert make_set.main([str(src), str(tmp_path / "aug"), str(tmp_path / "xch")]) == 0
    xch = DataDir.load(tmp_path / "xch")
    assert sorted(xch.utt2spk) == sorted(utts + list(aug.utt2spk))
    got = read_trials(tmp_path / "xch" / "trials")
    original = read_trials(src / "trials")
    assert list(got.enrol) == list(original.enrol) and list(got.target) == list(original.target)
    assert list(got.test) == [f"{t}-sim_channel" for t in original.test]
    assert xch.enrol == utts[::3]
    assert (tmp_path / "xch" / "feats_config.yaml").read_text() == "feat_type: fbank\n"

    # a copy missing (no voiced frame, say): its trials go, with a warning
    lost = utts[1]
    (tmp_path / "aug2").mkdir()
    kept = DataDir.load(tmp_path / "aug")
    kept.utt2spk.pop(f"{lost}-sim_channel")
    kept.aug.pop(f"{lost}-sim_channel")
    kept.vad.pop(f"{lost}-sim_channel")
    kept.utt2dur.pop(f"{lost}-sim_channel")
    kept.write(tmp_path / "aug2")
    assert make_set.main([str(src), str(tmp_path / "aug2"), str(tmp_path / "xch2")]) == 0
    got = read_trials(tmp_path / "xch2" / "trials")
    assert len(got.test) == len(original.test) - sum(t == lost for t in original.test)
    assert f"{lost}-sim_channel" not in set(got.test)


def test_a_set_without_trials_is_a_one_line_error(tmp_path):
    src = write_clean_dir(tmp_path, speakers=2, per_spk=2)
    status, err = run_cli("steps/make_cross_channel_set.py", str(src), str(src), str(tmp_path / "x"))
    assert status == 1 and "trials does not exist" in err and err.count("\n") == 1
