"""Kaldi's per-frame analysis constants where lhotse's departs from Kaldi (``feature-window.cc``,
``feature-mfcc.cc``): the Blackman window, the cepstral lifter and the floor of the log energy.
``dropclass_lib.features.FeatureExtractor`` uses these, and lhotse's tables for the rest.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

FLT_EPSILON = float(np.finfo(np.float32).eps)
"""Kaldi floors the frame energy (and the mel energies) at this before taking the log: the log
energy of a frame of digital silence is log(FLT_EPSILON) = -15.94."""


def blackman_window(length: int, blackman_coeff: float = 0.42) -> np.ndarray:
    """Kaldi's Blackman window of ``length`` samples (float64): symmetric, its cosines run over
    ``2 pi n / (length - 1)``. lhotse 1.33's runs over ``2 pi n / length`` (periodic), which
    moves MFCCs by 0.2-0.4; its other windows are Kaldi's to float rounding.
    """
    a = 2 * np.pi / (length - 1)
    n = np.arange(length)
    return blackman_coeff - 0.5 * np.cos(a * n) + (0.5 - blackman_coeff) * np.cos(2 * a * n)


def lifter_coefficients(num_ceps: int, cepstral_lifter: float) -> np.ndarray:
    """Kaldi's cepstral lifter ``1 + Q/2 sin(pi i / Q)`` for a real Q; all ones for Q = 0 (none).

    lhotse's layer takes an integer Q and cannot be built with Q = 0.
    """
    if cepstral_lifter == 0:
        return np.ones(num_ceps)
    i = np.arange(num_ceps)
    return 1.0 + 0.5 * cepstral_lifter * np.sin(np.pi * i / cepstral_lifter)


def liftered_dct(num_bins: int, num_ceps: int, cepstral_lifter: float) -> np.ndarray:
    """The ``(num_bins, num_ceps)`` matrix that maps log-mel filterbank energies to Kaldi's
    liftered cepstra: the MFCC's orthonormal DCT-II (Kaldi's ComputeDctMatrix), its first
    ``num_ceps`` rows, each scaled by the lifter. ``fbank @ liftered_dct(...)`` is then what an
    MFCC with the same mel bins gives."""
    num_ceps = min(num_ceps, num_bins)
    dct = scipy.fft.dct(np.eye(num_bins), norm="ortho", axis=0).T[:, :num_ceps]
    return dct * lifter_coefficients(num_ceps, cepstral_lifter)[None, :]
