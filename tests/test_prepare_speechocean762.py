"""local/prepare_speechocean762.py: on small corpora with the authors' layout built here (Opus
and WAV audio), and on the shared copy in ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import assert_line_error, run_cli
from dropclass_lib.audio import read_audio
from dropclass_lib.datadir import DataDir, validate_data_dir
from dropclass_lib.tables import c_sorted

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "speechocean762"
SCRIPT = "local/prepare_speechocean762.py"


def _audio(path: Path, seed: int) -> None:
    """0.1 s of noise: Ogg Opus for ``.opus``, 16-bit PCM otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = (0.1 * np.random.default_rng(seed).standard_normal(1600)).astype(np.float32)
    if path.suffix == ".opus":
        soundfile.write(path, x, 16000, format="OGG", subtype="OPUS")
    else:
        soundfile.write(path, x, 16000, format="WAV", subtype="PCM_16")


def _utt_id(spk: str, n: int) -> str:
    """The authors' 9-digit ids: 0 + speaker + 4-digit number (no separator)."""
    return f"0{spk}{n:04d}"


def fake_corpus(root: Path, speakers: dict[str, list[str]], utts_per_spk: int = 12,
                ext_of=lambda i: ".opus" if i % 3 else ".WAV") -> Path:
    """The corpus layout: WAVE/SPEAKER<spk>/<utt>.<ext> (``ext_of(i)`` for the speaker's i-th
    utterance, number 2i+1) and the authors' Kaldi lists naming .WAV files, for each half of
    ``speakers``; wav.scp lists the utterances last first, so that its order is not the sorted
    one; plus one file per speaker that no list names."""
    for split, spks in speakers.items():
        lists = root / split
        lists.mkdir(parents=True, exist_ok=True)
        wav, utt2spk, text = [], [], []
        for s, spk in enumerate(spks):
            for i in range(utts_per_spk):
                utt = _utt_id(spk, 2 * i + 1)
                _audio(root / "WAVE" / f"SPEAKER{spk}" / f"{utt}{ext_of(i)}", seed=100 * s + i)
                wav.append(f"{utt}\tWAVE/SPEAKER{spk}/{utt}.WAV")
                utt2spk.append(f"{utt} {spk}")
                text.append(f"{utt}\tREAD SENTENCE {i}")
            _audio(root / "WAVE" / f"SPEAKER{spk}" / f"{_utt_id(spk, 9000)}.opus", seed=9)   # in no list
        (lists / "wav.scp").write_text("".join(f"{line}\n" for line in reversed(wav)))
        (lists / "utt2spk").write_text("".join(f"{line}\n" for line in utt2spk))
        (lists / "text").write_text("".join(f"{line}\n" for line in text))
        (lists / "spk2gender").write_text("".join(f"{spk}\tf\n" for spk in spks))
        (lists / "spk2age").write_text("".join(f"{spk}\t{30 - i}\n" for i, spk in enumerate(reversed(spks))))
    return root


SPEAKERS = {"train": ["0001", "0005", "0006", "0012"], "test": ["0003", "0004", "0010", "0024"]}


def prepare(*argv: str) -> None:
    code, err = run_cli(SCRIPT, *argv)
    assert code == 0, err


def check_half(data: Path, speakers: list[str], utts_per_spk: int) -> DataDir:
    validate_data_dir(data)
    d = DataDir.load(data)
    assert d.speakers() == speakers
    assert len(d) == len(speakers) * utts_per_spk
    assert all(u.startswith(s + "-") and len(u) == len(s) + 10 for u, s in d.utt2spk.items())
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in d.wav.values())
    return d


def test_opus_and_wav_corpus_becomes_two_data_dirs(tmp_path):
    root = fake_corpus(tmp_path / "so", SPEAKERS)
    prepare(str(root), str(tmp_path / "data"))
    train = check_half(tmp_path / "data" / "train", SPEAKERS["train"], 12)
    test = check_half(tmp_path / "data" / "test", SPEAKERS["test"], 12)
    assert not set(train.speakers()) & set(test.speakers())
    utt = "0001-000010001"                                   # i = 0: stored as .WAV
    assert train.wav[utt] == str((root / "WAVE/SPEAKER0001/000010001.WAV").resolve())
    assert train.wav["0001-000010003"].endswith("/000010003.opus")   # i = 1: stored as Opus
    samples, rate = read_audio(train.wav["0001-000010003"])
    assert rate == 16000 and abs(samples.shape[0] - 1600) <= 320
    assert test.text["0024-000240023"] == "READ SENTENCE 11"
    assert "0001-000019000" not in train.utt2spk             # unlisted files are ignored


def test_lossless_copy_wins_and_any_case_of_wav_is_accepted(tmp_path):
    root = fake_corpus(tmp_path / "so", SPEAKERS, ext_of=lambda i: ".opus")
    _audio(root / "WAVE/SPEAKER0003/000030001.WAV", seed=1)  # the same recording twice
    (root / "WAVE/SPEAKER0004/000040001.opus").unlink()
    _audio(root / "WAVE/SPEAKER0004/000040001.wav", seed=2)  # only a lower-case .wav
    prepare(str(root), str(tmp_path / "data"))
    test = DataDir.load(tmp_path / "data" / "test")
    assert test.wav["0003-000030001"].endswith("/SPEAKER0003/000030001.WAV")
    assert test.wav["0004-000040001"].endswith("/SPEAKER0004/000040001.wav")
    assert test.wav["0003-000030003"].endswith("/SPEAKER0003/000030003.opus")


def test_trials_first_two_enrol_ten_targets_thirty_nontargets_within_each_half(tmp_path):
    root = fake_corpus(tmp_path / "so", SPEAKERS)
    prepare(str(root), str(tmp_path / "a"))
    prepare(str(root), str(tmp_path / "b"))
    prepare(str(root), str(tmp_path / "c"), "--seed", "1")
    for split in ("train", "test"):
        d = DataDir.load(tmp_path / "a" / split)
        spk2utt = d.spk2utt()
        assert d.enrol == c_sorted(u for utts in spk2utt.values() for u in c_sorted(utts)[:2])
        for enrol in d.enrol:
            rows = [(t, y) for e, t, y in zip(d.trials.enrol, d.trials.test, d.trials.target) if e == enrol]
            targets = {t for t, y in rows if y}
            nontargets = {t for t, y in rows if not y}
            assert len(targets) == 10 and len(nontargets) == 30 and len(rows) == 40
            assert all(d.utt2spk[t] == d.utt2spk[enrol] and t != enrol for t in targets)
            assert all(d.utt2spk[t] != d.utt2spk[enrol] for t in nontargets)
        assert set(d.trials.utts()) <= set(d.utt2spk)        # no trial leaves its half
        for name in ("trials", "enrol.list"):
            assert (tmp_path / "a" / split / name).read_bytes() == (tmp_path / "b" / split / name).read_bytes()
        assert (tmp_path / "c" / split / "enrol.list").read_bytes() == (tmp_path / "a" / split / "enrol.list").read_bytes()
        assert (tmp_path / "c" / split / "trials").read_bytes() != (tmp_path / "a" / split / "trials").read_bytes()


def test_listed_utterance_without_audio_names_the_list_and_line(tmp_path):
    root = fake_corpus(tmp_path / "so", SPEAKERS)
    (root / "WAVE/SPEAKER0004/000040005.opus").unlink()      # i = 2
    listed = "000040005\tWAVE/SPEAKER0004/000040005.WAV"
    lineno = (root / "test" / "wav.scp").read_text().splitlines().index(listed) + 1
    code, err = run_cli(SCRIPT, str(root), str(tmp_path / "data"))
    assert_line_error(code, err, root.resolve() / "test" / "wav.scp", lineno, listed,
                      "no audio file for WAVE/SPEAKER0004/000040005.WAV")
    assert not (tmp_path / "data").exists()                   # both lists are read before anything is written


def test_inconsistent_lists_are_user_errors(tmp_path):
    root = fake_corpus(tmp_path / "so", SPEAKERS)
    utt2spk = root / "train" / "utt2spk"
    lines = utt2spk.read_text().splitlines()
    utt2spk.write_text("".join(f"{line}\n" for line in lines[1:]))
    code, err = run_cli(SCRIPT, str(root), str(tmp_path / "data"))
    assert_line_error(code, err, root.resolve() / "train" / "wav.scp", 48,   # listed last first
                      "000010001\tWAVE/SPEAKER0001/000010001.WAV", f"is not in {root.resolve() / 'train' / 'utt2spk'}")
    utt2spk.write_text("".join(f"{line}\n" for line in lines))
    with open(root / "train" / "utt2spk", "a") as f:
        f.write("000039999 0003\n")
    code, err = run_cli(SCRIPT, str(root), str(tmp_path / "data"))
    assert code == 1 and err.count("\n") == 1 and "utterance 000039999 is not in" in err, err

    root = fake_corpus(tmp_path / "overlap", {"train": ["0001", "0002", "0003"], "test": ["0003", "0004"]})
    code, err = run_cli(SCRIPT, str(root), str(tmp_path / "data2"))
    assert code == 1 and "speakers in both train/ and test/: 0003" in err, err
    code, err = run_cli(SCRIPT, str(tmp_path / "nowhere"), str(tmp_path / "data3"))
    assert code == 1 and err.count("\n") == 1 and "nowhere the speechocean762 root?" in err, err


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"speechocean762 not found at {SHARED} (absent in a fresh clone)")
def test_shared_speechocean762(tmp_path):
    prepare(str(SHARED), str(tmp_path / "data"))
    halves = {split: DataDir.load(tmp_path / "data" / split) for split in ("train", "test")}
    for split, d in halves.items():
        validate_data_dir(tmp_path / "data" / split)
        assert len(d.speakers()) == 125 and len(d) == 2500, split
        assert all(u.startswith(s + "-") for u, s in d.utt2spk.items())
        assert len(d.enrol) == 250 and len(d.trials) == 250 * 40 and d.trials.target.sum() == 250 * 10
        assert d.text is not None and len(d.text) == 2500
    assert not set(halves["train"].speakers()) & set(halves["test"].speakers())
    assert not set(halves["train"].utt2spk) & set(halves["test"].utt2spk)
