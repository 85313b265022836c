"""The synthetic eSpeak NG corpus: determinism, resumption, data dirs, trials, voice effects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from dropclass_lib.corpora.espeak import Espeak
from dropclass_lib.corpora.voices import Population, Voice, sample_voice, variant_text
from dropclass_lib.datadir import DataDir, validate_data_dir
from dropclass_lib.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "local" / "make_synthetic_corpus.py"

TINY = {"num_train_speakers": 3, "utts_per_train_speaker": 2, "num_test_speakers": 2,
        "utts_per_test_speaker": 3, "duration_s": [1.0, 1.5],
        "trials": {"enrol_per_speaker": 1, "nontargets_per_enrol": None}}


def _load_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_synthetic_corpus", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _make(tmp: Path, name: str, seed: int, conf: dict = TINY, extra=()) -> tuple[Path, Path]:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(conf))
    audio, data = tmp / name / "audio", tmp / name / "data"
    with pytest.raises(SystemExit) as ex:
        from dropclass_lib.cli import run_main
        run_main(_load_script().main, ["--config", str(cfg), "--seed", str(seed), "--nj", "2", *extra,
                                       str(audio), str(data)])
    assert ex.value.code == 0
    return audio, data


def _digest(audio: Path, data: Path) -> dict[str, str]:
    files = {p.relative_to(audio).as_posix(): p for p in audio.rglob("*.wav")}
    files.update({f"data/{p.relative_to(data).as_posix()}": p for p in data.rglob("*") if p.is_file()})
    return {k: hashlib.md5(p.read_bytes().replace(str(audio).encode(), b"")).hexdigest() for k, p in files.items()}


@pytest.mark.slow
def test_corpus_is_valid_deterministic_and_resumable(tmp_path):
    a_audio, a_data = _make(tmp_path, "a", seed=5)
    b_audio, b_data = _make(tmp_path, "b", seed=5)
    c_audio, c_data = _make(tmp_path, "c", seed=6)
    da, db, dc = _digest(a_audio, a_data), _digest(b_audio, b_data), _digest(c_audio, c_data)
    assert len([k for k in da if k.endswith(".wav")]) == 3 * 2 + 2 * 3
    assert da == db                                      # same seed: identical audio and lists
    assert all(da[k] != dc[k] for k in da if k.endswith(".wav"))  # another seed: other audio

    train, test = DataDir.load(a_data / "train"), DataDir.load(a_data / "test")
    validate_data_dir(a_data / "train")
    validate_data_dir(a_data / "test")
    assert not set(train.speakers()) & set(test.speakers())
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in {**train.wav, **test.wav}.values())
    t = test.trials
    assert set(t.utts()) <= set(test.utt2spk)
    assert all(y == (test.utt2spk[e] == test.utt2spk[s]) for e, s, y in zip(t.enrol, t.test, t.target))
    assert t.target.any() and (~t.target).any()
    assert test.enrol == t.enrol_utts()

    victim = sorted(a_audio.rglob("*.wav"))[4]
    victim.unlink()                                      # a lost file is remade identically
    _make(tmp_path, "a", seed=5)
    assert _digest(a_audio, a_data) == da


def test_other_seed_needs_overwrite(tmp_path):
    conf = {**TINY, "num_train_speakers": 2, "num_test_speakers": 2, "utts_per_test_speaker": 2}
    audio, data = _make(tmp_path, "x", seed=1, conf=conf)
    cfg = tmp_path / "x.yaml"
    with pytest.raises(UserError, match="--overwrite"):
        _load_script().main(["--config", str(cfg), "--seed", "2", str(audio), str(data)])
    _make(tmp_path, "x", seed=2, conf=conf, extra=["--overwrite"])
    assert "seed: 2" in (audio / "corpus.yaml").read_text()


def test_unknown_config_key_names_file_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("num_train_speakers: 3\nchannel:\n  snr: [1, 2]\n")
    with pytest.raises(UserError, match=r"bad.yaml:3: unknown config key 'channel.snr'"):
        _load_script().main(["--config", str(cfg), str(tmp_path / "a"), str(tmp_path / "d")])


def _espeak(tmp_path) -> Espeak:
    return Espeak.get(tmp_path / "overlay")


def _spectral_centroid(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    return float((spec * freqs).sum() / spec.sum())


def _f0(x: np.ndarray, rate: int) -> float:
    """Median autocorrelation pitch over voiced 40 ms frames."""
    x = x.astype(np.float64)
    n, hop, est = int(0.04 * rate), int(0.01 * rate), []
    energy_floor = 0.1 * np.max(x ** 2)
    for start in range(0, len(x) - n, hop):
        f = x[start:start + n] - x[start:start + n].mean()
        if np.max(f ** 2) < energy_floor:
            continue
        ac = np.correlate(f, f, "full")[n - 1:]
        lo, hi = rate // 400, rate // 60
        est.append(rate / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(est))


def _voice(**changes) -> Voice:
    base = sample_voice(np.random.default_rng(0), Population(klatt=[0]))
    v = Voice(**{**base.__dict__, "breath": 0, "roughness": 0, "flutter": 0, "span": 0.3,
                 "formant_freq": [100.0] * 6, "pitch_hz": 110.0})
    return Voice(**{**v.__dict__, **changes})


def _say(engine: Espeak, voice: Voice, name: str) -> np.ndarray:
    engine.write_variant(name, variant_text(voice, name))
    return engine.synth("We were away a year ago, all of us.", f"{voice.accent}+{name}", 160, 50, 50, seed=1)


def test_variant_parameters_change_the_audio(tmp_path):
    engine = _espeak(tmp_path)
    rate = engine.sample_rate
    ref = _say(engine, _voice(), "ref")
    assert np.array_equal(ref, _say(engine, _voice(), "ref2"))          # deterministic, stateless
    low, high = _say(engine, _voice(pitch_hz=90.0), "low"), _say(engine, _voice(pitch_hz=180.0), "high")
    assert 1.6 < _f0(high, rate) / _f0(low, rate) < 2.4                 # pitch follows the variant
    short = _say(engine, _voice(formant_freq=[85.0] * 6), "short")
    long_ = _say(engine, _voice(formant_freq=[120.0] * 6), "long")
    assert _spectral_centroid(long_, rate) > 1.15 * _spectral_centroid(short, rate)  # formant scaling
    for name, change in (("breathy", {"breath": 20}), ("rough", {"roughness": 6}), ("klatt", {"klatt": 3}),
                         ("flutter", {"flutter": 80}), ("scot", {"accent": "en-gb-scotland"})):
        other = _say(engine, _voice(**change), name)
        assert len(other) != len(ref) or not np.array_equal(other, ref), name


def test_unknown_voice_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no voice"):
        _espeak(tmp_path).synth("hello", "xx-nowhere", 160, 50, 50)
