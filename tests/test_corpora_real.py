"""Preparation of the two real corpora: on tiny fake trees with their layouts, and on the
shared copies in ../shared/data when present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dropclass_lib.datadir import DataDir, validate_data_dir
from dropclass_lib.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "local" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _audio(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = (0.1 * np.random.default_rng(seed).standard_normal(1600)).astype(np.float32)
    soundfile.write(path, x, 16000, subtype="PCM_16")


def fake_arabic(root: Path, ext: str = "flac") -> Path:
    speakers = [f"{s:08d}" for s in range(1, 6)]
    for i, word in enumerate(["backward", "zoom in"]):
        for j, spk in enumerate(speakers):
            for rep in (1, 2):
                _audio(root / "dataset" / word / f"{spk}_NO_{rep:02d}.{ext}", i * 100 + j * 10 + rep)
    rows = [f"dataset/backward/{spk}_NO_{rep:02d}.wav,backward" for spk in speakers[3:] for rep in range(1, 11)]
    (root / "test.csv").write_text("file,class\n" + "\n".join(rows) + "\n")
    return root


def fake_dsp(root: Path, ext: str = "wav") -> Path:
    for s in range(6):
        spk = f"153071101{s:02d}"
        for word in range(2):
            for rep in (1, 2):
                _audio(root / "speech_data" / spk / f"{spk}-{word:02d}-{rep:02d}.{ext}", s * 10 + word * 2 + rep)
    return root


def check_prepared(data: Path, expect_utts: int) -> tuple[DataDir, DataDir]:
    validate_data_dir(data / "train")
    validate_data_dir(data / "test")
    train, test = DataDir.load(data / "train"), DataDir.load(data / "test")
    assert len(train) + len(test) == expect_utts
    assert not set(train.speakers()) & set(test.speakers())
    for d in (train, test):
        assert all(u.startswith(s + "-") for u, s in d.utt2spk.items())
    t = test.trials
    assert set(t.utts()) <= set(test.utt2spk)           # within-corpus, within-test-set trials
    assert all(y == (test.utt2spk[e] == test.utt2spk[s]) for e, s, y in zip(t.enrol, t.test, t.target))
    assert t.target.any() and (~t.target).any()
    assert test.enrol == t.enrol_utts()
    return train, test


def test_arabic_fake_tree_uses_authors_test_speakers(tmp_path):
    root = fake_arabic(tmp_path / "asc")
    _script("prepare_arabic_speech_commands")([str(root), str(tmp_path / "data"), "--enrol-per-speaker", "1"])
    train, test = check_prepared(tmp_path / "data", 20)
    assert test.speakers() == ["00000004", "00000005"]
    assert "00000001-zoom_in-01" in train.utt2spk
    entry = train.wav["00000001-zoom_in-01"]                 # a path with a space is piped
    assert entry.startswith("cat ") and entry.endswith("|")
    from dropclass_lib.audio import read_audio
    assert read_audio(entry)[0].shape == (1600,)


def test_arabic_random_split_and_wav_files(tmp_path):
    root = fake_arabic(tmp_path / "asc", ext="wav")
    main = _script("prepare_arabic_speech_commands")
    main([str(root), str(tmp_path / "a"), "--random-split", "--num-test-speakers", "3", "--seed", "1"])
    main([str(root), str(tmp_path / "b"), "--random-split", "--num-test-speakers", "3", "--seed", "1"])
    _, test = check_prepared(tmp_path / "a", 20)
    assert len(test.speakers()) == 3
    for name in ("wav.scp", "utt2spk", "trials", "enrol.list"):
        assert (tmp_path / "a" / "test" / name).read_bytes() == (tmp_path / "b" / "test" / name).read_bytes()


def test_dsp_fake_tree_named_speakers(tmp_path):
    root = fake_dsp(tmp_path / "dsp")
    main = _script("prepare_dspspeech20")
    main([str(root), str(tmp_path / "data"), "--test-speakers", "15307110100,15307110103",
          "--nontargets-per-enrol", "3"])
    _, test = check_prepared(tmp_path / "data", 24)
    assert test.speakers() == ["15307110100", "15307110103"]
    assert (~test.trials.target).sum() == 3 * len(test.trials.enrol_utts())


def test_bad_inputs_are_user_errors(tmp_path):
    root = fake_dsp(tmp_path / "dsp")
    main = _script("prepare_dspspeech20")
    with pytest.raises(UserError, match="not in the corpus: 999"):
        main([str(root), str(tmp_path / "d"), "--test-speakers", "999,15307110100"])
    with pytest.raises(UserError, match="--num-test-speakers must be between 2 and 5"):
        main([str(root), str(tmp_path / "d"), "--num-test-speakers", "6"])
    _audio(root / "speech_data" / "15307110100" / "15307110100-00-01.flac", 0)
    with pytest.raises(UserError, match="same recording"):
        main([str(root), str(tmp_path / "d")])
    (root / "speech_data" / "15307110100" / "15307110100-00-01.flac").unlink()
    _audio(root / "speech_data" / "15307110100" / "stray.wav", 0)
    with pytest.raises(UserError, match="stray.wav: file name does not follow"):
        main([str(root), str(tmp_path / "d")])
    with pytest.raises(UserError, match="does not exist"):
        main([str(tmp_path / "nowhere"), str(tmp_path / "d")])


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared corpora not found at {SHARED} (absent in a fresh clone)")
@pytest.mark.parametrize("script,corpus,utts,test_spk", [
    ("prepare_arabic_speech_commands", "arabic_speech_commands", 4800, 6),
    ("prepare_dspspeech20", "dspspeech20", 2720, 8)])
def test_shared_corpora(tmp_path, script, corpus, utts, test_spk):
    _script(script)([str(SHARED / corpus), str(tmp_path / "data")])
    _, test = check_prepared(tmp_path / "data", utts)
    assert len(test.speakers()) == test_spk
