"""VoxCeleb1/2, SITW, MUSAN and RIR preparation on replica trees with the real layouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import replicas
from dropclass_lib.audio import read_audio
from dropclass_lib.corpora.musan_rir import prepare_musan, prepare_rirs
from dropclass_lib.corpora.voxceleb import (ffmpeg_pipe, prepare_sitw, prepare_voxceleb1, prepare_voxceleb2,
                                            read_vox1_trials, utt_id_from_relpath, voxceleb1_test_dir)
from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import InputFileError, UserError

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "egs" / "voxceleb" / "local"


def run_script(script: Path, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=env)


def validate(data_dir: Path) -> None:
    proc = run_script(ROOT / "utils" / "validate_data_dir.py", data_dir)
    assert proc.returncode == 0, proc.stderr


def test_ffmpeg_pipe_is_the_decoding_command():
    assert ffmpeg_pipe("/c/dev/aac/id00012/21Uxsk56VDQ/00001.m4a") == (
        "ffmpeg -v 8 -i /c/dev/aac/id00012/21Uxsk56VDQ/00001.m4a -f wav -acodec pcm_s16le -ac 1 -ar 16000 - |")
    assert ffmpeg_pipe("/a b/x.m4a").startswith("ffmpeg -v 8 -i '/a b/x.m4a' -f wav")


def test_utt_ids_follow_kaldi():
    assert utt_id_from_relpath("id10270/x6uYqmx31kE/00001.wav") == "id10270-x6uYqmx31kE-00001"
    with pytest.raises(ValueError):
        utt_id_from_relpath("id10270/00001.wav")


def test_voxceleb2_dev_through_ffmpeg_pipe(tmp_path, monkeypatch):
    root = replicas.make_voxceleb2(tmp_path / "vox2")
    data = prepare_voxceleb2(root)
    assert data.speakers() == list(replicas.VOX2_DEV)  # the test part is not mixed in
    assert len(data) == len(replicas.VOX2_DEV) * len(replicas.VIDEOS) * len(replicas.SEGMENTS)
    utt = "id00015-x6uYqmx31kE-00002"
    m4a = (root / "dev/aac/id00015/x6uYqmx31kE/00002.m4a").resolve()
    assert data.utt2spk[utt] == "id00015"
    assert data.wav[utt] == ffmpeg_pipe(m4a)
    monkeypatch.setenv("PATH", replicas.path_with(tmp_path / "bin"))
    replicas.fake_ffmpeg(tmp_path / "bin")
    samples, rate = read_audio(data.wav[utt], utt)
    with open(m4a, "rb") as f:
        expected, _ = soundfile.read(f, dtype="float32")
    assert rate == 16000 and np.array_equal(samples, expected)
    assert prepare_voxceleb2(root, "test").speakers() == list(replicas.VOX2_TEST)


def test_voxceleb2_errors(tmp_path):
    with pytest.raises(UserError, match="dev/aac"):
        prepare_voxceleb2(tmp_path)
    root = replicas.make_voxceleb2(tmp_path / "vox2")
    meta = root / "vox2_meta.csv"
    meta.write_text(meta.read_text().replace("id00015 ,n00015 ,f ,dev", "id00015 ,n00015 ,f ,test"))
    with pytest.raises(UserError, match="not listed as 'dev'.*id00015"):
        prepare_voxceleb2(root)
    meta.write_text(meta.read_text() + "id00099 ,n00099\n")
    with pytest.raises(InputFileError, match=r"vox2_meta.csv:6: .*'id00099 ,n00099'"):
        prepare_voxceleb2(root)


def test_voxceleb1_subsets_and_lists(tmp_path):
    root = replicas.make_voxceleb1(tmp_path / "vox1")
    all_utts = prepare_voxceleb1(root)
    assert all_utts.speakers() == sorted(replicas.VOX1_SPEAKERS) and len(all_utts) == 16
    assert prepare_voxceleb1(root, "test").speakers() == ["id10270", "id10271"]
    assert all_utts.wav["id10001-21Uxsk56VDQ-00002"] == str((root / "wav/id10001/21Uxsk56VDQ/00002.wav").resolve())
    test = voxceleb1_test_dir(all_utts, root / "veri_test2.txt")
    lines = (root / "veri_test2.txt").read_text().splitlines()
    assert len(test.trials) == len(lines)
    for (label, e, t), enrol, tst, target in zip((l.split() for l in lines), test.trials.enrol, test.trials.test,
                                                 test.trials.target):
        assert (enrol, tst, target) == (utt_id_from_relpath(e), utt_id_from_relpath(t), label == "1")
        assert target == (test.utt2spk[enrol] == test.utt2spk[tst])
    assert test.enrol == sorted({utt_id_from_relpath(l.split()[1]) for l in lines})
    assert set(test.utts()) == set(test.trials.utts())


def test_voxceleb1_kaldi_split_layout(tmp_path):
    merged = replicas.make_voxceleb1(tmp_path / "merged")
    split = tmp_path / "split"
    for spk, part in replicas.VOX1_SPEAKERS.items():
        (split / part / "wav").mkdir(parents=True, exist_ok=True)
        (merged / "wav" / spk).rename(split / part / "wav" / spk)
    reference = replicas.make_voxceleb1(tmp_path / "reference")
    assert prepare_voxceleb1(split).utts() == prepare_voxceleb1(reference).utts()
    assert prepare_voxceleb1(split, "dev").speakers() == ["id10001", "id10002"]


def test_voxceleb1_list_errors(tmp_path):
    root = replicas.make_voxceleb1(tmp_path / "vox1")
    known = prepare_voxceleb1(root).utt2spk
    bad = tmp_path / "bad.txt"
    bad.write_text("1 id10270/21Uxsk56VDQ/00001.wav id10270/21Uxsk56VDQ/00002.wav\n"
                   "2 id10270/21Uxsk56VDQ/00001.wav id10271/21Uxsk56VDQ/00002.wav\n")
    with pytest.raises(InputFileError, match=r"bad.txt:2: .*label 1 or 0.*'2 id10270"):
        read_vox1_trials(bad, known)
    bad.write_text("0 id10270/21Uxsk56VDQ/00001.wav id10999/abc/00001.wav\n")
    with pytest.raises(InputFileError, match=r"bad.txt:1: utterance id10999/abc/00001.wav is not in"):
        read_vox1_trials(bad, known)
    (root / "vox1_meta.csv").write_text(replicas.VOX1_META_HEADER + "\nid10001\tX\tm\tIreland\n")
    with pytest.raises(InputFileError, match=r"vox1_meta.csv:2: "):
        prepare_voxceleb1(root, "dev")


def test_sitw_core_core(tmp_path):
    root = replicas.make_sitw(tmp_path / "sitw")
    for part, models in replicas.SITW_MODELS.items():
        data = prepare_sitw(root, part)
        enroll = dict(l.split() for l in (root / part / "lists/enroll-core.lst").read_text().splitlines())
        model_utt = {m: f"{m}_{Path(rel).stem}" for m, rel in enroll.items()}
        keys = [l.split() for l in (root / part / "keys/core-core.lst").read_text().splitlines()]
        assert list(data.trials.enrol) == [model_utt[m] for m, _, _ in keys]
        assert list(data.trials.test) == [Path(rel).stem for _, rel, _ in keys]
        assert list(data.trials.target) == [lab == "tgt" for _, _, lab in keys]
        assert data.enrol == sorted(model_utt.values())
        assert {data.utt2spk[u] for u in data.enrol} == set(models)
        assert data.wav[model_utt[models[0]]] == str((root / part / enroll[models[0]]).resolve())
        samples, rate = read_audio(data.wav[data.trials.test[0]])
        assert rate == 16000 and len(samples) == 16000


def test_sitw_errors(tmp_path):
    root = replicas.make_sitw(tmp_path / "sitw")
    keys = root / "dev/keys/core-core.lst"
    good = keys.read_text()
    keys.write_text(good + "10005 audio/td000q.flac maybe\n")
    with pytest.raises(InputFileError, match=r"core-core.lst:\d+: expected .*tgt\|imp.*maybe"):
        prepare_sitw(root, "dev")
    keys.write_text(good + "99999 audio/td000q.flac imp\n")
    with pytest.raises(InputFileError, match=r"model '99999' is not in"):
        prepare_sitw(root, "dev")
    keys.write_text(good + "10005 audio/missing.flac imp\n")
    with pytest.raises(InputFileError, match=r"missing.flac does not exist"):
        prepare_sitw(root, "dev")
    keys.write_text(good)
    enroll = root / "dev/lists/enroll-core.lst"
    enroll.write_text(enroll.read_text() + "10005 audio/td000q.flac\n")
    with pytest.raises(InputFileError, match=r"enroll-core.lst:4: model '10005' has a second"):
        prepare_sitw(root, "dev")


def test_musan_and_rirs(tmp_path):
    musan = replicas.make_musan(tmp_path / "musan")
    noise = prepare_musan(musan, "noise")
    assert noise.utts() == ["noise-free-sound-0000", "noise-free-sound-0001",
                            "noise-sound-bible-0000", "noise-sound-bible-0001"]
    assert noise.utt2dur["noise-free-sound-0001"] == pytest.approx(0.6)
    assert all(u == s for u, s in noise.utt2spk.items())
    assert len(prepare_musan(musan, "speech")) == 8
    rirs = replicas.make_rirs(tmp_path / "rirs" / "RIRS_NOISES")
    small = prepare_rirs(rirs, "smallroom")
    assert len(small) == 6 and small.speakers() == ["smallroom-Room001", "smallroom-Room002"]
    assert small.wav["smallroom-Room002-00003"] == str(
        (rirs / "simulated_rirs/smallroom/Room002/Room002-00003.wav").resolve())
    rir_list = rirs / "simulated_rirs/mediumroom/rir_list"
    rir_list.write_text(rir_list.read_text() + "--rir-id x --room-id y RIRS_NOISES/nowhere.wav\n")
    with pytest.raises(InputFileError, match=r"rir_list:7: impulse response .*nowhere.wav does not exist"):
        prepare_rirs(rirs, "mediumroom")
    soundfile.write(str(musan / "music/fma/music-fma-0009.wav"), np.zeros(800), 8000)
    with pytest.raises(UserError, match=r"music-fma-0009.wav: sample rate 8000 Hz, expected 16000"):
        prepare_musan(musan, "music")


@pytest.mark.slow
def test_local_scripts_write_valid_data_dirs(tmp_path):
    """Every prep script on the replicas, outputs validated by utils/validate_data_dir.py; reruns skip."""
    vox1 = replicas.make_voxceleb1(tmp_path / "vox1")
    vox2 = replicas.make_voxceleb2(tmp_path / "vox2")
    sitw = replicas.make_sitw(tmp_path / "sitw")
    musan = replicas.make_musan(tmp_path / "musan")
    rirs = replicas.make_rirs(tmp_path / "rirs" / "RIRS_NOISES")
    data = tmp_path / "data"
    for script, args in [("make_voxceleb2.py", (vox2, data / "train")), ("make_voxceleb1.py", (vox1, data)),
                         ("make_sitw.py", (sitw, data)), ("make_musan.py", (musan, data)),
                         ("make_rirs.py", (rirs, data))]:
        proc = run_script(LOCAL / script, *args)
        assert proc.returncode == 0, proc.stderr
    names = ["train", "voxceleb1", "vox1_O", "vox1_E", "vox1_H", "sitw_dev", "sitw_eval", "musan_noise",
             "musan_music", "musan_speech", "rirs_smallroom", "rirs_mediumroom"]
    assert sorted(p.name for p in data.iterdir()) == sorted(names)
    for name in names:
        validate(data / name)
    assert DataDir.load(data / "vox1_O").trials is not None
    proc = run_script(LOCAL / "make_voxceleb1.py", vox1, data)
    assert proc.returncode == 0 and proc.stderr.count("already prepared, skipping") == 4
    proc = run_script(LOCAL / "make_voxceleb1.py", "--lists", "O,X", vox1, tmp_path / "other")
    assert proc.returncode == 1 and proc.stderr.startswith("ERROR (make_voxceleb1.py): --lists: unknown list 'X'")
    assert "Traceback" not in proc.stderr
