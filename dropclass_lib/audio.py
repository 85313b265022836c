"""Reading the audio that a ``wav.scp`` entry names: a file path, or a command ending in ``|``.

Kaldi's ``wav.scp`` holds ``utt-id rxfilename``; an rxfilename ending in ``|`` is a shell
command whose stdout is the audio (``sox in.flac -t wav - |``, ``ffmpeg -i x.m4a -f wav - |``).

Damaged audio is an error, not fewer samples: libsndfile reads a WAV file cut short (or a
command whose output stops early) up to where it ends and says nothing, so the size that the
WAV header gives its data chunk is checked against the bytes that are there.
"""

from __future__ import annotations

import io
import struct
import subprocess

import numpy as np
import soundfile

from dropclass_lib.errors import UserError

# Data-chunk sizes that writers put in a WAV header when they cannot seek back to fill in the
# real one (writing to a pipe): sox writes 0x7ffff000, ffmpeg 0xffffffff, RF64 0xffffffff.
_UNKNOWN_WAV_SIZE = 0x7FFFF000


def is_pipe(rxfilename: str) -> bool:
    return rxfilename.rstrip().endswith("|")


def wav_entry_problem(rxfilename: str) -> str | None:
    """Why a ``wav.scp`` value cannot be read (None if it can): a command must not be empty,
    and a file path cannot hold whitespace (Kaldi splits it; a command must end with ``|``)."""
    if is_pipe(rxfilename):
        return None if rxfilename.rstrip()[:-1].strip() else "empty command before '|'"
    if len(rxfilename.split()) > 1:
        return "malformed entry: a file path cannot contain spaces and a command must end with '|'"
    return None


def _wav_shortfall(head: bytes, total: int) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of the data chunk of a RIFF WAV whose data chunk is shorter
    than its header says; None when it is complete, its size is unknown, or it is not RIFF WAV.
    ``head`` is the start of the file, ``total`` its length in bytes."""
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
        return None
    endian = "<" if head[:4] == b"RIFF" else ">"
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos:pos + 4]
        (size,) = struct.unpack(endian + "I", head[pos + 4:pos + 8])
        if chunk_id == b"data":
            present = total - (pos + 8)
            if size == 0 or size >= _UNKNOWN_WAV_SIZE or present >= size:
                return None
            return size, present
        pos += 8 + size + (size & 1)
    return None


def read_audio(rxfilename: str, utt: str = "", expected_rate: int | None = None,
               channel: int | None = None) -> tuple[np.ndarray, int]:
    """Return ``(samples, sample_rate)``: mono float32 in [-1, 1].

    Multi-channel audio needs ``channel`` (0-based, Kaldi's ``--channel``); without one it is
    an error, as is a channel the audio does not have. Mono audio is used whatever ``channel``
    says (a corpus may mix mono and multi-channel files). Raises :class:`UserError` naming the
    utterance and the entry if the command fails, the audio cannot be decoded or is truncated.
    """
    label = f"utterance {utt!r} ({rxfilename})" if utt else rxfilename
    rx = rxfilename.strip()
    problem = wav_entry_problem(rx)
    if problem:
        raise UserError(f"cannot read {label}: {problem}")
    try:
        if is_pipe(rx):
            proc = subprocess.run(rx[:-1], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if proc.returncode != 0:
                msg = proc.stderr.decode(errors="replace").strip().splitlines()
                raise UserError(f"cannot read {label}: command exited with status {proc.returncode}"
                                + (f": {msg[-1]}" if msg else ""))
            data = proc.stdout
            head, total = data[:1 << 16], len(data)
            source: object = io.BytesIO(data)
        else:
            with open(rx, "rb") as f:
                head = f.read(1 << 16)
                total = f.seek(0, io.SEEK_END)
            source = rx
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise UserError(f"cannot read {label}: {err}") from None
    shortfall = _wav_shortfall(head, total)
    if shortfall:
        raise UserError(f"cannot read {label}: truncated WAV: its header gives the audio {shortfall[0]} bytes, "
                        f"only {shortfall[1]} are there (an interrupted copy or conversion?)")
    if expected_rate is not None and rate != expected_rate:
        raise UserError(f"{label}: sample rate {rate} Hz, expected {expected_rate} Hz")
    channels = samples.shape[1]
    if channels == 1:
        return samples[:, 0].copy(), rate
    if channel is None:
        raise UserError(f"{label}: {channels} channels; choose one with the feature option 'channel' "
                        "(0 = the first), or convert the audio to mono")
    if not 0 <= channel < channels:
        raise UserError(f"{label}: has {channels} channels, channel {channel} was asked for (0-based)")
    return samples[:, channel].copy(), rate
