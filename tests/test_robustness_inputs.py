"""Results that stay true on bad input: damaged or multi-channel audio, too-short utterances,
tables with a byte-order mark, unreadable archives, model files mixed up with checkpoints or
features, DataLoader-worker errors, paths with spaces and failed scoring runs end in one line
naming the file and line (or utterance), never a traceback or a silently wrong result."""

from __future__ import annotations

import struct
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import yaml

from conftest import ROOT, make_data_dir, run_cli, write_wav
from dropclass_lib.audio import read_audio
from dropclass_lib.datadir.validate import validate_data_dir
from dropclass_lib.errors import UserError
from dropclass_lib.features import MfccFeatConfig, config_record
from dropclass_lib.model_io import load_model
from dropclass_lib.tables import read_key_rest, read_kv, write_table
from dropclass_lib.training.checkpoint import list_checkpoints
from dropclass_lib.training.trainer import train
from test_robustness_files import one_error_line, tiny_config, tiny_model
from test_training import tiny_cfg
from test_training_data import make_feats_dir


def set_wav(data: Path, utt: str, entry: str) -> int:
    """Point ``utt`` of ``data/wav.scp`` at ``entry``; return its line number."""
    wav = read_key_rest(data / "wav.scp")
    wav[utt] = entry
    write_table(data / "wav.scp", wav)
    return sorted(wav).index(utt) + 1


# ---------------------------------------------------------------------------------- audio
@pytest.fixture
def wav_file(tmp_path):
    return write_wav(tmp_path / "x.wav", 2.61)


def test_wav_cut_to_half_its_bytes_is_an_error(tmp_path, wav_file):
    half = tmp_path / "half.wav"
    data = wav_file.read_bytes()
    half.write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match=r"utterance 'u1' \(.*half.wav\): truncated WAV: its header gives the audio "
                                        r"83520 bytes, only 41738 are there"):
        read_audio(str(half), "u1")


def test_pipe_that_ends_early_is_an_error(wav_file):
    with pytest.raises(UserError, match=r"utterance 'u2' \(head -c 40000 .*x.wav \|\): truncated WAV"):
        read_audio(f"head -c 40000 {wav_file} |", "u2")


def test_streamed_wav_of_unknown_length_is_read_whole(tmp_path, wav_file):
    """Writers to a pipe cannot seek back to fill in the sizes: 0xffffffff (ffmpeg) or 0x7ffff000 (sox)."""
    whole = read_audio(str(wav_file))[0]
    for size in (0xFFFFFFFF, 0x7FFFF000):
        data = bytearray(wav_file.read_bytes())
        pos = data.index(b"data")
        data[pos + 4:pos + 8] = struct.pack("<I", size)
        data[4:8] = struct.pack("<I", size)
        streamed = tmp_path / f"s{size}.wav"
        streamed.write_bytes(bytes(data))
        np.testing.assert_array_equal(read_audio(f"cat {streamed} |")[0], whole)


def test_make_features_names_the_truncated_utterance_and_line(tmp_path):
    data = make_data_dir(tmp_path, {"spkA": 3})
    lineno = set_wav(data, "spkA-utt1", f"head -c 3000 {tmp_path / 'wav' / 'spkA-utt1.wav'} |")
    line = one_error_line(*run_cli("steps/make_features.py", "--nj", "1", str(data), str(tmp_path / "mfcc")))
    assert f"{data / 'wav.scp'}:{lineno}:" in line and "utterance 'spkA-utt1'" in line and "truncated WAV" in line


def _stereo_data_dir(tmp_path):
    data = make_data_dir(tmp_path, {"spkA": 2})
    rng = np.random.default_rng(1)
    stereo = (0.1 * rng.standard_normal((4000, 2))).astype(np.float32)
    soundfile.write(tmp_path / "stereo.wav", stereo, 16000, subtype="PCM_16")
    soundfile.write(tmp_path / "right.wav", stereo[:, 1], 16000, subtype="PCM_16")
    return data, set_wav(data, "spkA-utt1", str(tmp_path / "stereo.wav"))


def test_multichannel_audio_needs_a_channel(tmp_path):
    data, lineno = _stereo_data_dir(tmp_path)
    line = one_error_line(*run_cli("steps/make_features.py", "--nj", "1", str(data), str(tmp_path / "mfcc")))
    assert f"{data / 'wav.scp'}:{lineno}:" in line and "utterance 'spkA-utt1'" in line and "2 channels" in line
    # channel: 1 takes the right channel, exactly as the mono file of that channel
    conf = tmp_path / "mfcc.yaml"
    text = (ROOT / "conf" / "mfcc.yaml").read_text()
    assert "\nchannel: null " in text
    conf.write_text(text.replace("\nchannel: null ", "\nchannel: 1 "))
    code, err = run_cli("steps/make_features.py", "--nj", "1", "--config", str(conf), str(data), str(tmp_path / "mfcc1"))
    assert code == 0, err
    feats = dict(kaldiio.load_scp(str(data / "feats.scp")))
    set_wav(data, "spkA-utt1", str(tmp_path / "right.wav"))
    code, err = run_cli("steps/make_features.py", "--nj", "1", "--config", str(conf), str(data), str(tmp_path / "mono"))
    assert code == 0, err
    np.testing.assert_array_equal(feats["spkA-utt1"], kaldiio.load_scp(str(data / "feats.scp"))["spkA-utt1"])
    conf.write_text(text.replace("\nchannel: null ", "\nchannel: 2 "))
    set_wav(data, "spkA-utt1", str(tmp_path / "stereo.wav"))
    line = one_error_line(*run_cli("steps/make_features.py", "--nj", "1", "--config", str(conf),
                                   str(data), str(tmp_path / "mfcc3")))
    assert "utterance 'spkA-utt1'" in line and "has 2 channels, channel 2 was asked for" in line


def test_negative_channel_is_a_config_error(tmp_path):
    conf = tmp_path / "mfcc.yaml"
    conf.write_text((ROOT / "conf" / "mfcc.yaml").read_text().replace("\nchannel: null ", "\nchannel: -1 "))
    line = one_error_line(*run_cli("steps/make_features.py", "--config", str(conf), str(tmp_path), str(tmp_path / "f")))
    assert str(conf) in line and "channel" in line


@pytest.mark.parametrize("num_samples", [80, 100, 130, 139])
def test_too_short_utterance_is_one_line(tmp_path, num_samples):
    data = make_data_dir(tmp_path, {"spkA": 2})
    short = tmp_path / "short.wav"
    soundfile.write(short, np.full(num_samples, 0.01, np.float32), 16000, subtype="PCM_16")
    lineno = set_wav(data, "spkA-utt0", str(short))
    line = one_error_line(*run_cli("steps/make_features.py", "--nj", "1", str(data), str(tmp_path / "mfcc")))
    assert f"{data / 'wav.scp'}:{lineno}:" in line
    assert f"utterance 'spkA-utt0' is too short for one frame ({num_samples} samples)" in line


def test_wav_path_with_a_space_is_refused_by_validation_and_features_alike(tmp_path):
    data = make_data_dir(tmp_path, {"spkA": 2})
    spaced = write_wav(tmp_path / "my audio" / "a.wav", 0.3)
    lineno = set_wav(data, "spkA-utt0", str(spaced))
    with pytest.raises(UserError, match="a file path cannot contain spaces") as validation:
        validate_data_dir(data)
    assert f"wav.scp:{lineno}:" in str(validation.value)
    line = one_error_line(*run_cli("steps/make_features.py", "--nj", "1", str(data), str(tmp_path / "mfcc")))
    assert f"{data / 'wav.scp'}:{lineno}:" in line and "a file path cannot contain spaces" in line


def test_feat_dir_with_a_space_is_refused_before_any_work(tmp_path):
    data = make_data_dir(tmp_path, {"spkA": 2})
    line = one_error_line(*run_cli("steps/make_features.py", "--nj", "1", str(data), str(tmp_path / "my feats")))
    assert "FEAT_DIR" in line and "my feats" in line and "whitespace" in line
    assert not (tmp_path / "my feats").exists() and not (data / "feats.scp").exists()


# ----------------------------------------------------------------------------------- tables
def test_byte_order_mark_at_the_start_of_a_table_is_not_part_of_the_key(tmp_path):
    path = tmp_path / "utt2spk"
    path.write_bytes("\ufeffa-1 a\nb-1 b\nc-1 c\n".encode("utf-8"))
    assert read_kv(path, check_sorted=True) == {"a-1": "a", "b-1": "b", "c-1": "c"}
    path.write_bytes("a-1 a\n\ufeffb-1 b\n".encode("utf-8"))  # elsewhere it is text
    assert read_kv(path) == {"a-1": "a", "\ufeffb-1": "b"}


# ------------------------------------------------------------------------------------- VAD
def _vad_data(tmp_path):
    data = make_feats_dir(tmp_path / "d", num_spk=2, utts_per_spk=2)
    with open(data / "feats_config.yaml", "w") as f:
        yaml.safe_dump(config_record(MfccFeatConfig()), f)
    return data


def test_compute_vad_on_a_missing_archive(tmp_path):
    data = _vad_data(tmp_path)
    (data / "feats.ark").unlink()
    line = one_error_line(*run_cli("steps/compute_vad.py", "--nj", "1", str(data), str(tmp_path / "vad")))
    assert f"{data / 'feats.scp'}:1:" in line and "cannot read the features of 'spk000-u0'" in line


def test_compute_vad_on_a_truncated_archive(tmp_path):
    data = _vad_data(tmp_path)
    offsets = [int(v.rsplit(":", 1)[1]) for v in read_kv(data / "feats.scp").values()]
    for cut, lineno in ((offsets[1] + 40, 2), (offsets[2] + 8, 3)):  # inside the data; inside the header
        ark = (data / "feats.ark").read_bytes()
        (data / "feats.ark").write_bytes(ark[:cut])
        line = one_error_line(*run_cli("steps/compute_vad.py", "--nj", "1", str(data), str(tmp_path / "vad")))
        assert f"{data / 'feats.scp'}:{lineno}:" in line and "archive missing or truncated" in line
        assert not (data / "vad.scp").exists()
        make_feats_dir(data, num_spk=2, utts_per_spk=2)


# ---------------------------------------------------------------------- models, checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny training: ``(data dir, exp dir)`` with checkpoint_0000004.pt and final.pt."""
    root = tmp_path_factory.mktemp("trained")
    data = make_feats_dir(root / "train")
    exp = root / "exp"
    train(tiny_cfg(train={"num_iters": 4, "checkpoint_every": 4, "keep_checkpoints": 1}), data, exp)
    return data, exp


def test_fbank_features_for_an_mfcc_model(tmp_path):
    model = tiny_model(tmp_path / "final.pt", input_dim=6)
    data = make_feats_dir(tmp_path / "fbank", num_spk=2, utts_per_spk=2, dim=8)
    line = one_error_line(*run_cli("steps/extract_embeddings.py", str(model), str(data), str(tmp_path / "xv")))
    assert f"{data / 'feats.scp'}:1:" in line and "have 8 dimensions, the model" in line and "takes 6" in line


def test_checkpoint_where_a_model_is_expected(tmp_path, trained):
    data, exp = trained
    ckpt = list_checkpoints(exp)[-1][1]
    with pytest.raises(UserError, match=f"{ckpt} is a training checkpoint .*not a model file: give {exp / 'final.pt'}"):
        load_model(ckpt)
    line = one_error_line(*run_cli("steps/extract_embeddings.py", str(ckpt), str(data), str(tmp_path / "xv")))
    assert "is a training checkpoint" in line and "weights_only" not in line


def test_final_model_given_to_resume(tmp_path, trained):
    data, exp = trained
    conf = tiny_config(tmp_path / "c.yaml")
    for args in (["--resume", str(exp / "final.pt"), str(data)], ["--resume", str(exp / "final.pt")],
                 [f"--resume={exp / 'final.pt'}", str(data)]):
        line = one_error_line(*run_cli("steps/train_xvector.py", "--config", str(conf), "--dir", str(tmp_path / "e"),
                                       *args))
        assert f"--resume takes no file: {exp / 'final.pt'} is a trained model" in line, args
    ckpt = list_checkpoints(exp)[-1][1]
    line = one_error_line(*run_cli("steps/train_xvector.py", "--config", str(conf), "--dir", str(exp),
                                   "--resume", str(ckpt), str(data)))
    assert f"--resume takes no file: {ckpt} is a training checkpoint" in line


def test_model_file_in_place_of_a_checkpoint(tmp_path, trained):
    data, exp = trained
    e = tmp_path / "e"
    e.mkdir()
    (e / "checkpoint_0000004.pt").write_bytes((exp / "final.pt").read_bytes())
    with pytest.raises(UserError, match="is a trained model file .*not a training checkpoint"):
        train(tiny_cfg(train={"num_iters": 8, "checkpoint_every": 4}), data, e, resume=True)


def test_state_dict_mismatch_when_loading(tmp_path, trained):
    data, exp = trained
    payload = torch.load(exp / "final.pt", weights_only=True)
    first = next(iter(payload["extractor"]["state"]))
    payload["extractor"]["state"][first] = payload["extractor"]["state"][first][:1]
    torch.save(payload, tmp_path / "final.pt")
    line = one_error_line(*run_cli("steps/extract_embeddings.py", str(tmp_path / "final.pt"), str(data),
                                   str(tmp_path / "xv")))
    assert f"{tmp_path / 'final.pt'}: the stored extractor weights do not fit" in line and first in line
    # the same in a checkpoint, on --resume
    e = tmp_path / "e"
    e.mkdir()
    ckpt = torch.load(list_checkpoints(exp)[-1][1], weights_only=False)
    del ckpt["head"][next(iter(ckpt["head"]))]
    torch.save(ckpt, e / "checkpoint_0000004.pt")
    with pytest.raises(UserError, match="checkpoint_0000004.pt: the stored head weights do not fit"):
        train(tiny_cfg(train={"num_iters": 8, "checkpoint_every": 4, "keep_checkpoints": 1}), data, e, resume=True)


def test_user_error_in_a_dataloader_worker_is_one_line(tmp_path):
    data = make_feats_dir(tmp_path / "train")
    offsets = sorted(int(v.rsplit(":", 1)[1]) for v in read_kv(data / "feats.scp").values())
    ark = (data / "feats.ark").read_bytes()
    (data / "feats.ark").write_bytes(ark[:offsets[1]])  # only the first matrix is left
    line = one_error_line(*run_cli("steps/train_xvector.py", "--config", str(tiny_config(tmp_path / "c.yaml", num_workers=1)),
                                   "--dir", str(tmp_path / "exp"), str(data)))
    assert str(data / "feats.ark") in line and "Caught" not in line


# ---------------------------------------------------------------------------------- scoring
def test_failed_scoring_leaves_no_scores_file(tmp_path):
    rng = np.random.default_rng(0)
    keys = [f"u{i}" for i in range(4)]
    kaldiio.save_ark(str(tmp_path / "xv.ark"), {k: rng.normal(size=5).astype(np.float32) for k in keys},
                     scp=str(tmp_path / "xv.scp"))
    trials = tmp_path / "trials"
    trials.write_text("u0 u1 target\nu0 u2 nontarget\nu1 u3 nontarget\n")
    out = tmp_path / "scores_test"
    code, err = run_cli("steps/score_trials.py", str(trials), str(tmp_path / "xv.scp"), str(tmp_path / "xv.scp"), str(out))
    assert code == 0 and (out / "scores").is_file(), err
    trials.write_text("u0 u1 target\nu0 u2 target\n")  # fails after the scores are computed
    line = one_error_line(*run_cli("steps/score_trials.py", str(trials), str(tmp_path / "xv.scp"),
                                   str(tmp_path / "xv.scp"), str(out)))
    assert "need both target and non-target trials" in line
    assert not (out / "scores").exists() and not (out / "metrics.json").exists()
    assert sorted(p.name for p in out.iterdir()) == []
