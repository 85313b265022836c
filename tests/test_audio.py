"""read_audio: files, working and failing pipes, unreadable files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from conftest import write_wav
from dropclass_lib.audio import is_pipe, read_audio
from dropclass_lib.errors import UserError


def test_file_and_pipe_give_the_same_samples(tmp_path):
    wav = write_wav(tmp_path / "a.wav", 0.25)
    direct, rate = read_audio(str(wav), "u1")
    piped, prate = read_audio(f"cat {wav} |", "u1")
    assert rate == prate == 16000 and direct.dtype == np.float32 and direct.shape == (4000,)
    np.testing.assert_array_equal(direct, piped)
    np.testing.assert_allclose(direct, soundfile.read(wav, dtype="float32")[0])


def test_chosen_channel_of_stereo(tmp_path):
    stereo = np.stack([np.full(100, 0.5), np.full(100, -0.25)], axis=1).astype(np.float32)
    soundfile.write(tmp_path / "s.flac", stereo, 8000)
    samples, rate = read_audio(str(tmp_path / "s.flac"), channel=0)
    assert rate == 8000 and samples.shape == (100,)
    np.testing.assert_allclose(samples, 0.5, atol=1e-4)
    np.testing.assert_allclose(read_audio(str(tmp_path / "s.flac"), channel=1)[0], -0.25, atol=1e-4)
    with pytest.raises(UserError, match="2 channels; choose one"):
        read_audio(str(tmp_path / "s.flac"))


def test_unreadable_file(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(UserError, match=r"cannot read utterance 'u2' \(.*bad.wav\)"):
        read_audio(str(tmp_path / "bad.wav"), "u2")
    with pytest.raises(UserError, match="cannot read .*missing.wav"):
        read_audio(str(tmp_path / "missing.wav"))


def test_failing_pipe_names_status_and_stderr(tmp_path):
    with pytest.raises(UserError, match=r"utterance 'u3' \(cat /nonexistent.wav \|\): command exited with status 1: .*No such file"):
        read_audio("cat /nonexistent.wav |", "u3")
    with pytest.raises(UserError, match="cannot read utterance 'u4'"):
        read_audio("echo garbage |", "u4")


def test_expected_rate(tmp_path):
    wav = write_wav(tmp_path / "a.wav", 0.1, rate=8000)
    with pytest.raises(UserError, match="sample rate 8000 Hz, expected 16000 Hz"):
        read_audio(str(wav), "u", expected_rate=16000)


def test_is_pipe():
    assert is_pipe("sox a.flac -t wav - |") and is_pipe("cat x |  ")
    assert not is_pipe("a|b.wav") and not is_pipe("/data/x.wav")
