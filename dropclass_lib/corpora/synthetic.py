"""The embedded synthetic multi-speaker corpus: eSpeak NG voices + random channels.

Everything random is derived from ``(seed, speaker index, utterance index)`` through
``numpy.random.SeedSequence``, so the corpus is identical whatever the number of jobs or the
order in which utterances are made, and a re-run can resume a partial corpus.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile
import yaml
from scipy.signal import resample_poly

from dropclass_lib.atomic import atomic_open, atomic_path
from dropclass_lib.config import to_dict
from dropclass_lib.corpora.channel import ChannelConfig, apply_channel
from dropclass_lib.corpora.espeak import Espeak, bundled_paths, make_overlay
from dropclass_lib.corpora.trial_design import TrialDesign, design_trials
from dropclass_lib.corpora.voices import Jitter, Population, Shift, Voice, jitter, sample_voice, variant_text
from dropclass_lib.corpora.words import WORDS
from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import UserError
from dropclass_lib.parallel import run_jobs, split_contiguous

log = logging.getLogger(__name__)

FORMATS = {"wav": "WAV", "flac": "FLAC"}
RECORD = "corpus.yaml"  # in the audio directory: the resolved config and seed it was made with


@dataclass
class SyntheticCorpusConfig:
    """``conf/synthetic_corpus.yaml``: sizes, voice space, jitter, channel and trials."""

    num_train_speakers: int = 120
    utts_per_train_speaker: int = 8
    num_test_speakers: int = 40
    utts_per_test_speaker: int = 6
    duration_s: tuple[float, float] = (3.0, 6.0)   # target length of the text read, uniform (s)
    sample_rate: int = 16000
    audio_format: str = "wav"                      # wav or flac (16-bit)
    population: Population = field(default_factory=Population)
    test_shift: Shift = field(default_factory=Shift)
    jitter: Jitter = field(default_factory=Jitter)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    trials: TrialDesign = field(default_factory=TrialDesign)

    def validate(self) -> None:
        for name in ("num_train_speakers", "num_test_speakers"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2")
        for name in ("utts_per_train_speaker", "utts_per_test_speaker"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2 (target trials need two utterances)")
        if not 0.5 <= self.duration_s[0] <= self.duration_s[1]:
            raise ValueError("duration_s must be [min, max] with 0.5 <= min <= max")
        if self.audio_format not in FORMATS:
            raise ValueError(f"audio_format must be one of {sorted(FORMATS)}, got {self.audio_format!r}")
        if self.sample_rate not in (8000, 16000):
            raise ValueError("sample_rate must be 8000 or 16000")
        for part in (self.population, self.channel, self.trials):
            part.validate()


@dataclass
class UttJob:
    """Everything needed to make one utterance, independent of every other."""

    utt: str
    path: str
    voice: Voice
    text: str
    seed: int


@dataclass
class Plan:
    """The corpus to make: speakers, their voices, and the utterance jobs per split."""

    voices: dict[str, Voice]
    splits: dict[str, list[UttJob]]   # "train" / "test" -> jobs
    utt2spk: dict[str, str]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def random_text(rng: np.random.Generator, num_words: int) -> str:
    """``num_words`` random words, in sentences of 4-10 words (for natural intonation)."""
    words = rng.choice(WORDS, size=num_words).tolist()
    out, i = [], 0
    while i < len(words):
        n = int(rng.integers(4, 11))
        out.append(" ".join(words[i:i + n]).capitalize() + ".")
        i += n
    return " ".join(out)


def plan_corpus(cfg: SyntheticCorpusConfig, seed: int, audio_dir: str | os.PathLike) -> Plan:
    """Draw every speaker and utterance (cheap: no audio is made here)."""
    audio_dir = Path(audio_dir).resolve()
    ext = cfg.audio_format
    sizes = {"train": (cfg.num_train_speakers, cfg.utts_per_train_speaker, cfg.population),
             "test": (cfg.num_test_speakers, cfg.utts_per_test_speaker, cfg.test_shift.apply(cfg.population))}
    voices: dict[str, Voice] = {}
    splits: dict[str, list[UttJob]] = {}
    utt2spk: dict[str, str] = {}
    k = 0
    for split, (num_spk, num_utt, pop) in sizes.items():
        jobs = splits.setdefault(split, [])
        for _ in range(num_spk):
            k += 1
            spk = f"spk{k:05d}"   # one numbering for both splits: ids never collide
            voices[spk] = voice = sample_voice(_rng(seed, 1, k), pop)
            for u in range(1, num_utt + 1):
                rng = _rng(seed, 2, k, u)
                v = jitter(rng, voice, cfg.jitter)
                words = max(3, round(rng.uniform(*cfg.duration_s) * v.rate_wpm / 60.0))
                utt = f"{spk}-{u:03d}"  # speaker-prefixed: utt2spk and spk2utt sort alike
                jobs.append(UttJob(utt, str(audio_dir / split / spk / f"{utt}.{ext}"), v,
                                   random_text(rng, words), int(rng.integers(2 ** 31))))
                utt2spk[utt] = spk
    return Plan(voices, splits, utt2spk)


def synthesize(job: UttJob, cfg: SyntheticCorpusConfig, overlay_root: str) -> np.ndarray:
    """Make the audio of ``job``: float32 samples at ``cfg.sample_rate``."""
    engine = Espeak.get(overlay_root)
    variant = engine.write_variant(f"dropclass{os.getpid()}", variant_text(job.voice, "dropclass"))
    raw = engine.synth(job.text, f"{job.voice.accent}+{variant}", rate=round(job.voice.rate_wpm),
                       pitch=job.voice.pitch_param, pitch_range=job.voice.range_param, seed=job.seed % 2 ** 31)
    if raw.size == 0:
        raise UserError(f"espeak-ng produced no audio for utterance {job.utt}")
    gcd = np.gcd(cfg.sample_rate, engine.sample_rate)
    x = resample_poly(raw.astype(np.float64) / 32768.0, cfg.sample_rate // gcd, engine.sample_rate // gcd)
    return apply_channel(x, cfg.sample_rate, _rng(job.seed, 3), cfg.channel)


def _write_audio(path: str, samples: np.ndarray, rate: int, fmt: str) -> None:
    with atomic_path(path) as tmp:
        soundfile.write(tmp, samples, rate, format=FORMATS[fmt], subtype="PCM_16")


def _make_jobs(job: int, chunk: tuple[list[UttJob], SyntheticCorpusConfig, str], progress: Callable) -> float:
    """One parallel job: make the chunk's missing utterances; return seconds of audio made."""
    jobs, cfg, overlay_root = chunk
    seconds = 0.0
    for j in jobs:
        if not os.path.exists(j.path):
            samples = synthesize(j, cfg, overlay_root)
            _write_audio(j.path, samples, cfg.sample_rate, cfg.audio_format)
            seconds += len(samples) / cfg.sample_rate
        progress(1)
    return seconds


def _record(cfg: SyntheticCorpusConfig, seed: int) -> str:
    # through JSON so that tuples (defaults) and lists (read from YAML) record the same
    return yaml.safe_dump(json.loads(json.dumps({"seed": seed, "config": to_dict(cfg)})), sort_keys=False)


def _check_or_reset(audio_dir: Path, data_dir: Path, record: str, overwrite: bool) -> None:
    """Refuse to mix corpora: an audio dir made with another config/seed needs ``overwrite``."""
    rec = audio_dir / RECORD
    if not rec.exists() or rec.read_text(encoding="utf-8") == record:
        return
    if not overwrite:
        raise UserError(f"{audio_dir} holds a corpus made with another configuration or seed "
                        f"(see {rec}); pass --overwrite to replace it, or choose another directory")
    log.info("--overwrite: removing the previous corpus in %s and %s", audio_dir, data_dir)
    for path in (audio_dir / "train", audio_dir / "test", data_dir / "train", data_dir / "test"):
        shutil.rmtree(path, ignore_errors=True)
    rec.unlink()


def make_corpus(cfg: SyntheticCorpusConfig, seed: int, audio_dir: str | os.PathLike, data_dir: str | os.PathLike,
                nj: int = 1, overwrite: bool = False) -> dict[str, float]:
    """Make (or complete) the corpus; write ``data_dir/train`` and ``data_dir/test``.

    Returns ``{"utterances", "made", "audio_seconds"}`` for this run (``made`` = newly synthesised).
    """
    audio_dir, data_dir = Path(audio_dir).resolve(), Path(data_dir)
    record = _record(cfg, seed)
    _check_or_reset(audio_dir, data_dir, record, overwrite)
    plan = plan_corpus(cfg, seed, audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(audio_dir / RECORD, "w", encoding="utf-8") as f:
        f.write(record)
    jobs = [j for split in plan.splits.values() for j in split]
    todo = [j for j in jobs if not os.path.exists(j.path)]
    log.info("%d utterances, %d already made, %d to synthesise with %d jobs", len(jobs), len(jobs) - len(todo),
             len(todo), nj)
    seconds = 0.0
    if todo:
        with tempfile.TemporaryDirectory(prefix="espeak-overlay-") as overlay:
            make_overlay(bundled_paths()[1], overlay)
            chunks = [(c, cfg, overlay) for c in split_contiguous(todo, nj)]
            seconds = sum(run_jobs(_make_jobs, chunks, desc="synthesising", total=len(todo)))
    _write_speakers(audio_dir / "speakers.tsv", plan)
    for split, split_jobs in plan.splits.items():
        utt2spk = {j.utt: plan.utt2spk[j.utt] for j in split_jobs}
        d = DataDir(utt2spk=utt2spk, wav={j.utt: j.path for j in split_jobs})
        if split == "test":
            d.trials = design_trials(utt2spk, cfg.trials, seed)
            d.enrol = d.trials.enrol_utts()
        if not _holds(data_dir / split, d):
            d.write(data_dir / split)
    return {"utterances": len(jobs), "made": len(todo), "audio_seconds": seconds}


def _holds(path: Path, d: DataDir) -> bool:
    """Whether the data dir at ``path`` already lists what ``d`` does. It is then left as it is: a
    rewrite would remove the features and VAD that later stages added to it (DataDir.write drops
    the tables it lacks) and make every stage after it redo its work."""
    if not (path / "utt2spk").is_file():
        return False
    old = DataDir.load(path, strict=False)
    same_trials = (old.trials is None) == (d.trials is None) and (d.trials is None or all(
        np.array_equal(a, b) for a, b in ((old.trials.enrol, d.trials.enrol), (old.trials.test, d.trials.test),
                                          (old.trials.target, d.trials.target))))
    return old.utt2spk == d.utt2spk and old.wav == d.wav and same_trials and old.enrol == d.enrol


def _write_speakers(path: Path, plan: Plan) -> None:
    """A table of every speaker's point in the voice space, for inspection and analysis."""
    split_of = {plan.utt2spk[j.utt]: split for split, jobs in plan.splits.items() for j in jobs}
    keys = [f.name for f in dataclasses.fields(Voice) if f.name not in ("pitch_param", "range_param")]
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(["speaker", "split", *keys]) + "\n")
        for spk, voice in sorted(plan.voices.items()):
            vals = [getattr(voice, k) for k in keys]
            cells = [" ".join(f"{x:.1f}" for x in v) if isinstance(v, list) else
                     (f"{v:.2f}" if isinstance(v, float) else str(v)) for v in vals]
            f.write("\t".join([spk, split_of[spk], *cells]) + "\n")
