"""Synthetic speakers as points in a continuous voice space, and their eSpeak NG voice variants.

A speaker is drawn once from a :class:`Population` (accent, synthesiser engine, sex, pitch,
vocal-tract scaling, per-formant deviations, speaking rate, breathiness, roughness, flutter);
each of its utterances then *jitters* that point a little (:func:`jitter`), as a real voice
varies between recordings. :func:`variant_text` renders a point as an espeak-ng voice-variant
file (``pitch``, ``formant N freq height width``, ``breath``, ``roughness``, ``flutter``,
``voicing``, ``klatt``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

N_FORMANTS = 6  # formants 0-5 shape the voiced spectrum; 6-8 are weak high-frequency additions


@dataclass
class Population:
    """Distribution of speakers in the voice space (the ``population`` section of the config)."""

    accents: list[str] = field(default_factory=lambda: [
        "en", "en-us", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc"])
    # espeak-ng language voices (English accents: the text is English)
    klatt: list[int] = field(default_factory=lambda: [0, 0, 0, 1, 2, 3, 4])
    # synthesiser engine per speaker, drawn uniformly from this list: 0 = eSpeak's harmonic
    # wave generator, 1-6 = Klatt variants (a list with repeats weights the choice)
    female_fraction: float = 0.5
    pitch_male_hz: tuple[float, float] = (105.0, 18.0)    # mean, sd of the base pitch (Hz)
    pitch_female_hz: tuple[float, float] = (190.0, 28.0)
    pitch_span: tuple[float, float] = (0.2, 0.9)          # range of pitch excursion / base (uniform)
    tract_male: tuple[float, float] = (0.97, 0.05)        # formant-frequency scale (vocal tract length)
    tract_female: tuple[float, float] = (1.12, 0.05)
    formant_sd: float = 0.05           # per-formant extra frequency deviation (fraction)
    formant_height_sd: float = 0.15    # per-formant amplitude deviation (fraction)
    formant_width_sd: float = 0.15     # per-formant bandwidth deviation (fraction)
    rate_wpm: tuple[float, float] = (165.0, 20.0)         # speaking rate, words per minute
    breath_max: int = 12               # breathiness: noise per formant, uniform 0..max
    roughness_max: int = 5             # creak (alternate-cycle amplitude reduction), 0..max
    flutter: tuple[int, int] = (0, 100)  # pitch wavering, uniform in [lo, hi]
    voicing: tuple[float, float] = (100.0, 12.0)          # voiced-sound strength (%), mean, sd

    def validate(self) -> None:
        if not self.accents:
            raise ValueError("population.accents must not be empty")
        if not self.klatt or any(k < 0 or k > 6 for k in self.klatt):
            raise ValueError("population.klatt must be a non-empty list of values 0-6")
        if not 0.0 <= self.female_fraction <= 1.0:
            raise ValueError("population.female_fraction must be within [0, 1]")


@dataclass
class Shift:
    """How test speakers differ from training speakers (the ``test_shift`` section)."""

    accents: list[str] = field(default_factory=list)  # accents of test speakers; empty = as training
    female_fraction: Optional[float] = None            # None = as training
    tract_offset: float = 0.0      # added to the vocal-tract scale of test speakers
    pitch_semitones: float = 0.0   # shifts test speakers' base pitch

    def apply(self, pop: Population) -> Population:
        return dataclasses.replace(
            pop,
            accents=list(self.accents) or pop.accents,
            female_fraction=pop.female_fraction if self.female_fraction is None else self.female_fraction,
            pitch_male_hz=(pop.pitch_male_hz[0] * 2 ** (self.pitch_semitones / 12), pop.pitch_male_hz[1]),
            pitch_female_hz=(pop.pitch_female_hz[0] * 2 ** (self.pitch_semitones / 12), pop.pitch_female_hz[1]),
            tract_male=(pop.tract_male[0] + self.tract_offset, pop.tract_male[1]),
            tract_female=(pop.tract_female[0] + self.tract_offset, pop.tract_female[1]),
        )


@dataclass
class Jitter:
    """Per-utterance variation around the speaker's point (the ``jitter`` section)."""

    pitch_semitones: float = 1.0   # sd of the base-pitch change
    span: float = 0.08             # sd of the relative change of the pitch span
    formant: float = 0.015         # sd of the relative change of every formant frequency
    rate: float = 0.06             # sd of the relative change of the speaking rate
    breath: int = 2                # breath level changes by up to +-this
    intonation: float = 12.0       # sd of espeak's pitch/range parameters around 50 (0-100 scale)


@dataclass
class Voice:
    """One point in the voice space."""

    accent: str
    klatt: int
    female: bool
    pitch_hz: float
    span: float
    formant_freq: list[float]      # percent, formants 0..5
    formant_height: list[float]
    formant_width: list[float]
    rate_wpm: float
    breath: int
    roughness: int
    flutter: int
    voicing: float
    pitch_param: int = 50          # espeak_SetParameter(espeakPITCH / espeakRANGE), 0-100
    range_param: int = 50


def _normal(rng: np.random.Generator, mean_sd: tuple[float, float]) -> float:
    return float(rng.normal(mean_sd[0], mean_sd[1]))


def sample_voice(rng: np.random.Generator, pop: Population) -> Voice:
    """Draw one speaker from ``pop``."""
    female = bool(rng.random() < pop.female_fraction)
    tract = _normal(rng, pop.tract_female if female else pop.tract_male)
    pitch = _normal(rng, pop.pitch_female_hz if female else pop.pitch_male_hz)
    return Voice(
        accent=str(rng.choice(pop.accents)),
        klatt=int(rng.choice(pop.klatt)),
        female=female,
        pitch_hz=float(np.clip(pitch, 60.0, 350.0)),
        span=float(rng.uniform(*pop.pitch_span)),
        formant_freq=list(100.0 * tract * (1.0 + pop.formant_sd * rng.standard_normal(N_FORMANTS))),
        formant_height=list(100.0 * np.clip(1.0 + pop.formant_height_sd * rng.standard_normal(N_FORMANTS), 0.3, 2.0)),
        formant_width=list(100.0 * np.clip(1.0 + pop.formant_width_sd * rng.standard_normal(N_FORMANTS), 0.4, 2.5)),
        rate_wpm=float(np.clip(_normal(rng, pop.rate_wpm), 100.0, 300.0)),
        breath=int(rng.integers(0, pop.breath_max + 1)),
        roughness=int(rng.integers(0, pop.roughness_max + 1)),
        flutter=int(rng.integers(pop.flutter[0], pop.flutter[1] + 1)),
        voicing=float(np.clip(_normal(rng, pop.voicing), 50.0, 150.0)),
    )


def jitter(rng: np.random.Generator, voice: Voice, j: Jitter) -> Voice:
    """The speaker's voice for one utterance: ``voice`` moved a little at random."""
    scale = 1.0 + j.formant * rng.standard_normal()
    return dataclasses.replace(
        voice,
        pitch_hz=float(np.clip(voice.pitch_hz * 2 ** (j.pitch_semitones * rng.standard_normal() / 12), 50.0, 400.0)),
        span=float(max(0.0, voice.span * (1.0 + j.span * rng.standard_normal()))),
        formant_freq=[f * scale for f in voice.formant_freq],
        rate_wpm=float(np.clip(voice.rate_wpm * (1.0 + j.rate * rng.standard_normal()), 80.0, 400.0)),
        breath=int(np.clip(voice.breath + rng.integers(-j.breath, j.breath + 1), 0, 40)),
        pitch_param=int(np.clip(round(50 + j.intonation * rng.standard_normal()), 0, 100)),
        range_param=int(np.clip(round(50 + j.intonation * rng.standard_normal()), 0, 100)),
    )


def variant_text(voice: Voice, name: str) -> str:
    """The espeak-ng voice-variant file for ``voice`` (see espeak-ng's docs/voices.md)."""
    base = int(round(voice.pitch_hz))
    lines = ["language variant", f"name {name}", f"gender {'female' if voice.female else 'male'}",
             f"pitch {base} {int(round(base * (1.0 + voice.span)))}"]
    for n in range(N_FORMANTS):
        lines.append(f"formant {n} {round(voice.formant_freq[n])} {round(voice.formant_height[n])} "
                     f"{round(voice.formant_width[n])}")
    b = voice.breath
    lines += [f"breath 0 {b} {b} {b} {b} {b} {b} {b}" if b else "breath 0",
              f"roughness {voice.roughness}", f"flutter {voice.flutter}",
              f"voicing {round(voice.voicing)}"]
    if voice.klatt:
        lines.append(f"klatt {voice.klatt}")
    return "\n".join(lines) + "\n"
