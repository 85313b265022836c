"""Reading the audio that a ``wav.scp`` entry names: a file path, or a command ending in ``|``.

Kaldi's ``wav.scp`` holds ``utt-id rxfilename``; an rxfilename ending in ``|`` is a shell
command whose stdout is the audio (``sox in.flac -t wav - |``, ``ffmpeg -i x.m4a -f wav - |``).
"""

from __future__ import annotations

import io
import subprocess

import numpy as np
import soundfile

from dropclass_lib.errors import UserError


def is_pipe(rxfilename: str) -> bool:
    return rxfilename.rstrip().endswith("|")


def read_audio(rxfilename: str, utt: str = "", expected_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Return ``(samples, sample_rate)``: mono float32 in [-1, 1] (the first channel of multi-channel audio).

    Raises :class:`UserError` naming the utterance and the entry if the command fails or the
    audio cannot be decoded.
    """
    label = f"utterance {utt!r} ({rxfilename})" if utt else rxfilename
    rx = rxfilename.strip()
    if is_pipe(rx):
        proc = subprocess.run(rx[:-1], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(f"cannot read {label}: command exited with status {proc.returncode}"
                            + (f": {msg[-1]}" if msg else ""))
        source: object = io.BytesIO(proc.stdout)
    else:
        source = rx
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise UserError(f"cannot read {label}: {err}") from None
    if expected_rate is not None and rate != expected_rate:
        raise UserError(f"{label}: sample rate {rate} Hz, expected {expected_rate} Hz")
    return samples[:, 0].copy(), rate
