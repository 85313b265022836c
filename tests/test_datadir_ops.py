"""fix / subset / combine / filter / copy of data directories, through the utils/ commands."""

from __future__ import annotations

import logging

import pytest

from conftest import make_data_dir, run_cli
from dropclass_lib.datadir import DataDir, filter_data_dir, validate_data_dir


def lines(path):
    return path.read_text().splitlines()


def put(path, rows):
    path.write_text("".join(f"{r}\n" for r in rows))


def with_trials(data):
    put(data / "trials", ["spkA-utt0 spkA-utt1 target", "spkA-utt0 spkB-utt0 nontarget", "spkB-utt1 spkC-utt0 nontarget"])
    put(data / "enrol.list", ["spkA-utt0", "spkB-utt1"])
    return data


def test_fix_data_dir(data_dir, caplog):
    with_trials(data_dir)
    original = {n: (data_dir / n).read_text() for n in ("utt2spk", "wav.scp", "spk2utt", "trials")}
    put(data_dir / "utt2spk", reversed(lines(data_dir / "utt2spk") + ["spkA-utt1 spkA"]))  # unsorted, repeated line
    put(data_dir / "wav.scp", [r for r in lines(data_dir / "wav.scp") if not r.startswith("spkB-utt1 ")] + ["zzz-extra /x.wav"])
    put(data_dir / "spk2utt", ["junk junk"])
    caplog.set_level(logging.INFO)
    assert run_cli("utils/fix_data_dir.py", str(data_dir))[0] == 0
    dd = validate_data_dir(data_dir)
    assert dd.utts() == ["spkA-utt0", "spkA-utt1", "spkA-utt2", "spkB-utt0", "spkC-utt0"]
    assert lines(data_dir / "spk2utt")[1] == "spkB spkB-utt0"
    assert lines(data_dir / "trials") == ["spkA-utt0 spkA-utt1 target", "spkA-utt0 spkB-utt0 nontarget"]
    assert lines(data_dir / "enrol.list") == ["spkA-utt0"]
    assert "dropped 1 of 6 lines of utt2spk" in caplog.text and "dropped 1 of 6 lines of wav.scp" in caplog.text
    assert "dropped 1 of 3 trials" in caplog.text
    backup = data_dir / ".backup"
    assert (backup / "spk2utt").read_text() == "junk junk\n"
    assert (backup / "trials").read_text() == original["trials"]
    assert "zzz-extra" in (backup / "wav.scp").read_text()


def test_fix_rejects_conflicting_duplicates(data_dir):
    put(data_dir / "utt2spk", lines(data_dir / "utt2spk") + ["spkA-utt0 spkB"])
    code, err = run_cli("utils/fix_data_dir.py", str(data_dir))
    assert code == 1 and f"{data_dir}/utt2spk:7: duplicate key 'spkA-utt0' with a different value: 'spkA-utt0 spkB'" in err


@pytest.mark.parametrize("args, utts", [
    (["--first", "2"], ["spkA-utt0", "spkA-utt1"]),
    (["--per-spk", "1"], ["spkA-utt0", "spkB-utt0", "spkC-utt0"]),
    (["--spk-list", "LIST:spkC\nspkB extra-column\n"], ["spkB-utt0", "spkB-utt1", "spkC-utt0"]),
    (["--utt-list", "LIST:spkC-utt0\nspkA-utt1\nnot-there\n"], ["spkA-utt1", "spkC-utt0"]),
])
def test_subset(data_dir, tmp_path, args, utts):
    with_trials(data_dir)
    if args[1].startswith("LIST:"):
        (tmp_path / "list").write_text(args[1][5:])
        args = [args[0], str(tmp_path / "list")]
    assert run_cli("utils/subset_data_dir.py", *args, str(data_dir), str(tmp_path / "sub"))[0] == 0
    dd = validate_data_dir(tmp_path / "sub")
    assert dd.utts() == utts
    assert set(dd.wav) == set(utts) and set(dd.utt2dur) == set(utts)
    if dd.trials is not None:
        assert set(dd.trials.utts()) <= set(utts)


def test_subset_trials_follow(data_dir, tmp_path):
    with_trials(data_dir)
    assert run_cli("utils/subset_data_dir.py", "--first", "4", str(data_dir), str(tmp_path / "sub"))[0] == 0
    assert lines(tmp_path / "sub" / "trials") == ["spkA-utt0 spkA-utt1 target", "spkA-utt0 spkB-utt0 nontarget"]
    assert lines(tmp_path / "sub" / "enrol.list") == ["spkA-utt0"]
    assert run_cli("utils/subset_data_dir.py", "--spk-list", str(data_dir / "spk2utt"), str(data_dir), str(tmp_path / "all"))[0] == 0
    assert (tmp_path / "all" / "trials").read_text() == (data_dir / "trials").read_text()


def test_subset_random_is_seeded(data_dir, tmp_path):
    picks = []
    for seed in (1, 1, 2, 3, 4):
        out = tmp_path / f"r{len(picks)}"
        assert run_cli("utils/subset_data_dir.py", "--random", "3", "--seed", str(seed), str(data_dir), str(out))[0] == 0
        picks.append(DataDir.load(out).utts())
    assert picks[0] == picks[1] and all(len(p) == 3 for p in picks)
    assert len({tuple(p) for p in picks}) > 1


def test_subset_errors(data_dir, tmp_path):
    code, err = run_cli("utils/subset_data_dir.py", "--first", "7", str(data_dir), str(tmp_path / "x"))
    assert code == 1 and "cannot select 7 utterances from a data directory of 6" in err
    (tmp_path / "list").write_text("nobody\n")
    code, err = run_cli("utils/subset_data_dir.py", "--spk-list", str(tmp_path / "list"), str(data_dir), str(tmp_path / "x"))
    assert code == 1 and "no utterance selected" in err
    assert not (tmp_path / "x").exists()


def test_combine(tmp_path):
    a = make_data_dir(tmp_path / "a", {"s1": 2, "s2": 1})
    b = make_data_dir(tmp_path / "b", {"s2": 1, "s3": 2}, utt_prefix="b-")
    put(b / "trials", ["b-s2-utt0 b-s3-utt1 nontarget"])
    put(b / "enrol.list", ["b-s2-utt0"])
    (a / "utt2dur").unlink()
    out = tmp_path / "all"
    assert run_cli("utils/combine_data.py", str(out), str(a), str(b))[0] == 0
    dd = validate_data_dir(out)
    assert len(dd) == 6 and dd.speakers() == ["s1", "s2", "s3"]
    assert dd.spk2utt()["s2"] == ["b-s2-utt0", "s2-utt0"]
    assert dd.utt2dur is None  # only one input had it
    assert lines(out / "trials") == ["b-s2-utt0 b-s3-utt1 nontarget"]
    code, err = run_cli("utils/combine_data.py", str(tmp_path / "bad"), str(a), str(out))
    assert code == 1 and f"utterance 's1-utt0' is in both {a} and {out}" in err


def test_filter_iterates(tmp_path):
    data = make_data_dir(tmp_path, {"s1": 3, "s2": 3, "s3": 1})
    put(data / "utt2num_frames", ["s1-utt0 300", "s1-utt1 300", "s1-utt2 300",
                                 "s2-utt0 300", "s2-utt1 50", "s2-utt2 50", "s3-utt0 900"])
    out = tmp_path / "filtered"
    assert run_cli("utils/filter_data_dir.py", "--min-frames", "100", "--min-utts-per-spk", "2", str(data), str(out))[0] == 0
    dd = validate_data_dir(out)
    assert dd.utts() == ["s1-utt0", "s1-utt1", "s1-utt2"]  # s2 has 1 long utt left, s3 only 1
    assert filter_data_dir(validate_data_dir(data), min_frames=0, min_utts_per_spk=3).speakers() == ["s1", "s2"]
    (data / "utt2num_frames").unlink()
    code, err = run_cli("utils/filter_data_dir.py", "--min-frames", "100", str(data), str(out))
    assert code == 1 and "needs utt2num_frames" in err


def test_copy_with_prefixes(data_dir, tmp_path):
    with_trials(data_dir)
    out = tmp_path / "copy"
    assert run_cli("utils/copy_data_dir.py", "--utt-prefix", "sp1.1-", "--spk_prefix", "x-", str(data_dir), str(out))[0] == 0
    dd = validate_data_dir(out)
    assert dd.utts()[0] == "sp1.1-spkA-utt0" and dd.utt2spk["sp1.1-spkA-utt0"] == "x-spkA"
    assert lines(out / "trials")[0] == "sp1.1-spkA-utt0 sp1.1-spkA-utt1 target"
    assert lines(out / "enrol.list") == ["sp1.1-spkA-utt0", "sp1.1-spkB-utt1"]
    assert dd.wav["sp1.1-spkA-utt0"] == validate_data_dir(data_dir).wav["spkA-utt0"]
    code, err = run_cli("utils/copy_data_dir.py", "--utt-prefix", "p", str(data_dir), str(data_dir))
    assert code == 1 and "same directory" in err


def test_conversion_commands(data_dir, tmp_path):
    assert run_cli("utils/utt2spk_to_spk2utt.py", str(data_dir / "utt2spk"), str(tmp_path / "s2u"))[0] == 0
    assert (tmp_path / "s2u").read_text() == (data_dir / "spk2utt").read_text()
    assert run_cli("utils/spk2utt_to_utt2spk.py", str(tmp_path / "s2u"), str(tmp_path / "u2s"))[0] == 0
    assert (tmp_path / "u2s").read_text() == (data_dir / "utt2spk").read_text()
    put(tmp_path / "bad", ["a u1 u2", "b u3 u1"])
    code, err = run_cli("utils/spk2utt_to_utt2spk.py", str(tmp_path / "bad"))
    assert code == 1 and f"{tmp_path}/bad:2: utterance 'u1' is listed twice (also under speaker 'a'): 'b u3 u1'" in err
