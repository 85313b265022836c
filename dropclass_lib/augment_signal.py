"""The signal arithmetic of augmentation: reverberation, additive signals at an SNR, speed change.

Semantics are Kaldi's (wav-reverberate) and sox's (``speed``); every function takes float
samples and returns new ones (``add_signal`` adds in place). scipy.signal is imported only by
:func:`change_speed`: it costs about a second, and every feature job imports this module.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def power(x: np.ndarray) -> float:
    """Mean square of ``x`` (0 for no samples)."""
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve, align to the direct path (the RIR's peak), keep the input length and power."""
    n = len(x)
    if n == 0:
        return x.copy()
    peak = int(np.argmax(np.abs(rir)))
    nfft = 1 << (n + len(rir) - 2).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(rir, nfft), nfft)[peak:peak + n]
    p_out = power(y)
    return (y * np.sqrt(power(x) / p_out) if p_out > 0 else y).astype(np.float32)


def add_signal(x: np.ndarray, noise: np.ndarray, snr_db: float, offset: int, repeat: bool,
               signal_power: float) -> None:
    """Add ``noise`` to ``x`` in place from sample ``offset``, scaled to ``snr_db`` below
    ``signal_power``; ``repeat`` tiles it to the end of ``x``, otherwise it is cut there."""
    p_noise = power(noise)
    if p_noise == 0 or offset >= len(x):
        return
    scaled = noise * np.sqrt(10 ** (-snr_db / 10) * signal_power / p_noise)
    if repeat:
        scaled = np.tile(scaled, -(-(len(x) - offset) // len(scaled)))
    span = min(len(scaled), len(x) - offset)
    x[offset:offset + span] += scaled[:span]


def speed_ratio(factor: float) -> tuple[int, int]:
    """``(up, down)`` of the polyphase resampling that plays audio ``factor`` times as fast."""
    ratio = Fraction(factor).limit_denominator(1000)
    return ratio.denominator, ratio.numerator


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """sox ``speed FACTOR``: tempo and pitch change together (resampling to ``rate / factor``
    and playing at ``rate``), so the result has ``len(x) / factor`` samples (rounded up)."""
    from scipy import signal

    up, down = speed_ratio(factor)
    if up == down:
        return np.asarray(x, dtype=np.float32).copy()
    return signal.resample_poly(np.asarray(x, dtype=np.float64), up, down).astype(np.float32)
