"""Random recording channels: room reverberation, band-limiting and EQ, additive noise.

Every function takes an explicit ``numpy.random.Generator`` so that a channel is reproducible
from its seed. Signals are float arrays at ``rate`` Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass
class ChannelConfig:
    """The ``channel`` section of the synthetic-corpus config."""

    reverb_prob: float = 0.7                  # probability that an utterance is reverberated
    rt60_s: tuple[float, float] = (0.15, 0.7)  # reverberation time, uniform (s)
    direct_ratio_db: tuple[float, float] = (-3.0, 12.0)  # direct-to-reverberant energy, uniform (dB)
    low_cut_hz: tuple[float, float] = (60.0, 350.0)      # high-pass corner, log-uniform
    high_cut_hz: tuple[float, float] = (3000.0, 7800.0)  # low-pass corner, log-uniform
    eq_bands: int = 3                         # random peaking-EQ bands
    eq_gain_db: float = 8.0                   # each band's gain is uniform in +-this
    snr_db: tuple[float, float] = (5.0, 30.0)  # additive-noise SNR, uniform (dB)
    noise_tilt: tuple[float, float] = (0.0, 2.0)  # noise spectrum ~ 1/f^tilt, uniform

    def validate(self) -> None:
        if not 0.0 <= self.reverb_prob <= 1.0:
            raise ValueError("channel.reverb_prob must be within [0, 1]")
        if self.high_cut_hz[1] >= 8000.0:
            raise ValueError("channel.high_cut_hz must stay below 8000 Hz (16 kHz audio)")


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))


def room_impulse_response(rng: np.random.Generator, rate: int, rt60: float, direct_ratio_db: float) -> np.ndarray:
    """A synthetic RIR: a unit direct path followed by exponentially decaying noise whose energy
    falls by 60 dB in ``rt60`` seconds, scaled to the given direct-to-reverberant ratio."""
    n = max(2, int(rt60 * rate))
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-3.0 * np.log(10.0) * t / rt60)  # amplitude -60 dB at rt60
    tail[0] = 0.0
    tail *= np.sqrt(10.0 ** (-direct_ratio_db / 10.0) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def peaking_eq(rate: int, freq: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order peaking filter ``(b, a)`` (the audio-EQ-cookbook biquad)."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq / rate
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1.0 + alpha * amp, -2.0 * np.cos(w0), 1.0 - alpha * amp])
    a = np.array([1.0 + alpha / amp, -2.0 * np.cos(w0), 1.0 - alpha / amp])
    return b / a[0], a / a[0]


@dataclass
class MicrophoneResponse:
    """A recording chain's frequency response: a 4th-order Butterworth band-pass, then peaking-EQ
    biquads (``(b, a)`` each)."""

    band_pass: np.ndarray
    eq: list[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def draw(cls, rng: np.random.Generator, rate: int, low_cut_hz, high_cut_hz, eq_bands: int,
             eq_gain_db: float) -> "MicrophoneResponse":
        """Corners log-uniform within ``low_cut_hz`` and ``high_cut_hz``; ``eq_bands`` bands at
        log-uniform centres in 150 Hz-0.45 rate, gains uniform in +-``eq_gain_db``, Q in 0.7-2.5."""
        low, high = _log_uniform(rng, low_cut_hz), _log_uniform(rng, high_cut_hz)
        band_pass = signal.butter(4, [low, high], btype="bandpass", fs=rate, output="sos")
        eq = [peaking_eq(rate, _log_uniform(rng, (150.0, 0.45 * rate)), rng.uniform(-eq_gain_db, eq_gain_db),
                         rng.uniform(0.7, 2.5)) for _ in range(eq_bands)]
        return cls(band_pass, eq)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = signal.sosfilt(self.band_pass, np.asarray(x, dtype=np.float64))
        for b, a in self.eq:
            y = signal.lfilter(b, a, y)
        return y


def coloured_noise(rng: np.random.Generator, n: int, tilt: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^tilt (0 white, 1 pink, 2 brown), unit variance."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    noise = np.fft.irfft(spec / f ** (tilt / 2.0), n)
    return noise / (np.std(noise) + 1e-12)


def apply_channel(x: np.ndarray, rate: int, rng: np.random.Generator, cfg: ChannelConfig) -> np.ndarray:
    """Pass ``x`` through a random room, microphone/line response and noise; peak-normalised."""
    y = np.asarray(x, dtype=np.float64)
    if rng.random() < cfg.reverb_prob:
        rir = room_impulse_response(rng, rate, rng.uniform(*cfg.rt60_s), rng.uniform(*cfg.direct_ratio_db))
        y = signal.fftconvolve(y, rir)[: len(y)]
    y = MicrophoneResponse.draw(rng, rate, cfg.low_cut_hz, cfg.high_cut_hz, cfg.eq_bands, cfg.eq_gain_db)(y)
    speech_power = np.mean(y ** 2) + 1e-12
    snr = rng.uniform(*cfg.snr_db)
    y = y + coloured_noise(rng, len(y), rng.uniform(*cfg.noise_tilt)) * np.sqrt(speech_power / 10.0 ** (snr / 10.0))
    peak = np.max(np.abs(y)) + 1e-12
    return (y * (rng.uniform(0.3, 0.9) / peak)).astype(np.float32)
