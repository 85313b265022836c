"""DataDir loading/writing and validate_data_dir: each malformed input is one clear error."""

from __future__ import annotations

import kaldiio
import numpy as np
import pytest

from conftest import assert_line_error, make_data_dir, run_cli
from dropclass_lib.datadir import DataDir, utt2spk_to_spk2utt, spk2utt_to_utt2spk, validate_data_dir
from dropclass_lib.errors import UserError

VALIDATE = "utils/validate_data_dir.py"


def lines(path):
    return path.read_text().splitlines()


def put(path, rows):
    path.write_text("".join(f"{r}\n" for r in rows))


def add_feats(data, name="feats.scp", drop=()):
    """Write real feature matrices (frames = 10 + index) to an ark with ``name`` as its scp."""
    utts = [line.split()[0] for line in lines(data / "utt2spk")]
    with kaldiio.WriteHelper(f"ark,scp:{data}/{name}.ark,{data}/{name}") as w:
        for i, u in enumerate(utts):
            if u not in drop:
                w(u, np.full((10 + i, 3), i, dtype=np.float32))


def test_valid_dir_loads_and_round_trips(data_dir, tmp_path):
    add_feats(data_dir)
    put(data_dir / "utt2num_frames", [f"{u} {10 + i}" for i, u in enumerate(l.split()[0] for l in lines(data_dir / "utt2spk"))])
    put(data_dir / "trials", ["spkA-utt0 spkB-utt0 nontarget", "spkA-utt0 spkA-utt1 target", "spkB-utt1 spkB-utt0 target"])
    put(data_dir / "enrol.list", ["spkA-utt0", "spkB-utt1"])
    dd = validate_data_dir(data_dir)
    assert dd.speakers() == ["spkA", "spkB", "spkC"]
    assert dd.spk2utt()["spkA"] == ["spkA-utt0", "spkA-utt1", "spkA-utt2"]
    assert dd.utt2num_frames["spkB-utt0"] == 13
    assert dd.utt2dur["spkA-utt1"] == pytest.approx(0.21)
    assert len(dd.trials) == 3 and dd.enrol == ["spkA-utt0", "spkB-utt1"]
    out = tmp_path / "copy"
    dd.write(out)
    for name in ("utt2spk", "spk2utt", "wav.scp", "feats.scp", "utt2num_frames", "trials", "enrol.list"):
        assert (out / name).read_text() == (data_dir / name).read_text(), name
    again = validate_data_dir(out)
    assert (again.utt2spk, again.wav, again.feats, again.utt2num_frames, again.utt2dur, again.enrol) == \
        (dd.utt2spk, dd.wav, dd.feats, dd.utt2num_frames, dd.utt2dur, dd.enrol)
    assert list(again.trials.test) == list(dd.trials.test) and list(again.trials.target) == list(dd.trials.target)


def test_write_removes_stale_optional_files(data_dir):
    add_feats(data_dir)
    dd = validate_data_dir(data_dir)
    dd.feats = None
    dd.write(data_dir)
    assert not (data_dir / "feats.scp").exists()
    validate_data_dir(data_dir)


def test_utt2spk_spk2utt_inverse():
    utt2spk = {"b-2": "b", "a-1": "a", "b-1": "b", "A-1": "A"}
    spk2utt = utt2spk_to_spk2utt(utt2spk)
    assert list(spk2utt) == ["A", "a", "b"]  # LC_ALL=C order: upper case first
    assert spk2utt["b"] == ["b-1", "b-2"]
    assert spk2utt_to_utt2spk(spk2utt) == utt2spk
    with pytest.raises(UserError, match="'u1' is listed under speakers 'a' and 'b'"):
        spk2utt_to_utt2spk({"a": ["u1"], "b": ["u1"]})


def test_validate_cli_ok(data_dir, caplog):
    caplog.set_level("INFO")
    code, err = run_cli(VALIDATE, str(data_dir))
    assert code == 0 and err == ""
    assert "OK (6 utterances, 3 speakers)" in caplog.text


def test_required_files(data_dir):
    code, err = run_cli(VALIDATE, "--require-feats", str(data_dir))
    assert code == 1 and f"{data_dir}/feats.scp does not exist" in err
    (data_dir / "wav.scp").unlink()
    code, err = run_cli(VALIDATE, str(data_dir))
    assert code == 1 and "wav.scp does not exist" in err
    assert run_cli(VALIDATE, "--no-wav", str(data_dir))[0] == 0
    code, err = run_cli(VALIDATE, "--no-wav", "--require", "utt2num_frames", str(data_dir))
    assert code == 1 and "utt2num_frames does not exist" in err


def test_missing_dir_and_segments(tmp_path, data_dir):
    code, err = run_cli(VALIDATE, str(tmp_path / "nope"))
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    put(data_dir / "segments", ["spkA-utt0 rec 0 1"])
    code, err = run_cli(VALIDATE, str(data_dir))
    assert code == 1 and "segments are not supported" in err


# Each case: (file to corrupt, function rows -> new rows, file named by the error, line, fragment)
def _swap(rows):
    return [rows[1], rows[0], *rows[2:]]


CORRUPTIONS = {
    "unsorted": ("utt2spk", _swap, "utt2spk", 2, "not sorted"),
    "duplicate key": ("wav.scp", lambda r: [r[0], r[0].split()[0] + " other.wav", *r[1:]], "wav.scp", 2, "duplicate key 'spkA-utt0'"),
    "missing field": ("utt2spk", lambda r: [r[0].split()[0], *r[1:]], "utt2spk", 1, "expected at least 2 fields"),
    "extra field": ("utt2spk", lambda r: [r[0] + " extra", *r[1:]], "utt2spk", 1, "expected at most 2 fields"),
    "spk2utt wrong speaker": ("spk2utt", lambda r: [r[0] + " spkB-utt0", "spkB spkB-utt1", *r[2:]], "spk2utt", 1,
                              "'spkB-utt0' listed under speaker 'spkA' has speaker 'spkB' in utt2spk"),
    "spk2utt unknown utt": ("spk2utt", lambda r: [*r[:-1], r[-1] + " ghost"], "spk2utt", 3, "'ghost' listed under speaker 'spkC' is not in utt2spk"),
    "utt missing from spk2utt": ("spk2utt", lambda r: ["spkA spkA-utt0 spkA-utt2", *r[1:]], "utt2spk", 2, "'spkA-utt1' is missing from spk2utt"),
    "wav path with spaces": ("wav.scp", lambda r: [*r[:2], r[2].split()[0] + " a b.wav", *r[3:]], "wav.scp", 3, "malformed entry"),
    "wav file missing": ("wav.scp", lambda r: [*r[:3], r[3].split()[0] + " /nonexistent/x.wav", *r[4:]], "wav.scp", 4, "audio file /nonexistent/x.wav does not exist"),
    "empty pipe": ("wav.scp", lambda r: [r[0].split()[0] + " |", *r[1:]], "wav.scp", 1, "empty command"),
    "wav key missing": ("wav.scp", lambda r: r[:-1], "utt2spk", 6, "'spkC-utt0' has no entry in wav.scp"),
    "wav key unknown": ("wav.scp", lambda r: [*r, "zzz /x.wav"], "wav.scp", 7, "'zzz' is not in utt2spk"),
    "utt2dur not a number": ("utt2dur", lambda r: [r[0].split()[0] + " long", *r[1:]], "utt2dur", 1, "value must be a duration"),
    "utt2dur negative": ("utt2dur", lambda r: [*r[:1], r[1].split()[0] + " -1", *r[2:]], "utt2dur", 2, "value must be a duration"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_file_is_reported_with_file_line_and_text(data_dir, case):
    name, corrupt, bad_file, lineno, fragment = CORRUPTIONS[case]
    put(data_dir / name, corrupt(lines(data_dir / name)))
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / bad_file, lineno, lines(data_dir / bad_file)[lineno - 1], fragment)


def test_non_utf8_is_reported_with_its_line(data_dir):
    raw = (data_dir / "utt2spk").read_bytes().splitlines(keepends=True)
    raw[4] = b"spkB-utt1 spk\xe9B\n"
    (data_dir / "utt2spk").write_bytes(b"".join(raw))
    code, err = run_cli(VALIDATE, str(data_dir))
    assert code == 1 and "Traceback" not in err
    assert f"{data_dir}/utt2spk:5: not valid UTF-8 text: b'spkB-utt1 spk\\xe9B'" in err


def test_feats_keys_and_archive(data_dir):
    add_feats(data_dir, drop={"spkB-utt0"})
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "utt2spk", 4, "spkB-utt0 spkB", "'spkB-utt0' has no entry in feats.scp")
    add_feats(data_dir)
    assert run_cli(VALIDATE, "--require-feats", str(data_dir))[0] == 0
    (data_dir / "feats.scp.ark").unlink()
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "feats.scp", 1, lines(data_dir / "feats.scp")[0], "feats.scp.ark does not exist")
    assert run_cli(VALIDATE, "--no-file-check", str(data_dir))[0] == 0


def test_vad_and_utt2num_frames_keys(data_dir):
    add_feats(data_dir, name="vad.scp", drop={"spkC-utt0"})
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "utt2spk", 6, "spkC-utt0 spkC", "no entry in vad.scp")
    (data_dir / "vad.scp").unlink()
    put(data_dir / "utt2num_frames", ["spkA-utt0 12", "spkA-utt1 1.5"])
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "utt2num_frames", 2, "spkA-utt1 1.5", "frame count")


@pytest.mark.parametrize("rows, lineno, fragment", [
    (["spkA-utt0 spkB-utt0 target", "spkA-utt0 ghost nontarget"], 2, "utterance 'ghost' is not in the data"),
    (["spkA-utt0 spkB-utt0 maybe"], 1, "label must be 'target' or 'nontarget'"),
    (["spkA-utt0 spkB-utt0"], 1, "expected 3 fields"),
])
def test_bad_trials(data_dir, rows, lineno, fragment):
    put(data_dir / "trials", rows)
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "trials", lineno, rows[lineno - 1], fragment)


def test_enrol_list_must_be_the_enrolment_side(data_dir):
    put(data_dir / "trials", ["spkA-utt0 spkB-utt0 nontarget", "spkB-utt1 spkB-utt0 target"])
    put(data_dir / "enrol.list", ["spkA-utt0"])
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "trials", 2, "spkB-utt1 spkB-utt0 target", "'spkB-utt1' is missing from enrol.list")
    put(data_dir / "enrol.list", ["spkA-utt0", "spkA-utt1", "spkB-utt1"])
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "enrol.list", 2, "spkA-utt1", "not the enrolment side of any trial")
    put(data_dir / "enrol.list", ["spkB-utt1", "spkA-utt0"])
    code, err = run_cli(VALIDATE, str(data_dir))
    assert_line_error(code, err, data_dir / "enrol.list", 2, "spkA-utt0", "not sorted")


def test_pipe_entries_are_valid_without_a_file(tmp_path):
    data = make_data_dir(tmp_path, {"s1": 2})
    rows = lines(data / "wav.scp")
    put(data / "wav.scp", [f"{r.split()[0]} cat {r.split()[1]} |" for r in rows])
    dd = validate_data_dir(data)
    assert dd.wav["s1-utt0"].startswith("cat ") and dd.wav["s1-utt0"].endswith(" |")


def test_load_is_strict_but_not_for_fix(data_dir):
    put(data_dir / "utt2spk", _swap(lines(data_dir / "utt2spk")))
    with pytest.raises(UserError, match="not sorted"):
        DataDir.load(data_dir)
    assert len(DataDir.load(data_dir, strict=False)) == 6
