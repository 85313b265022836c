"""Data directories for the augmentation sources: MUSAN and the simulated room impulse responses.

* MUSAN: ``ROOT/{noise,music,speech}/<source>/<name>.wav`` (e.g.
  ``musan/noise/free-sound/noise-free-sound-0000.wav``); one data directory per category, each
  file its own utterance and speaker (as Kaldi's make_musan.sh), with ``utt2dur``, which the
  augmentation needs to place foreground noises.
* RIRS_NOISES (openslr 28): ``ROOT/simulated_rirs/{smallroom,mediumroom}/rir_list`` with lines
  ``--rir-id ID --room-id ROOM RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00001.wav``,
  paths relative to the folder holding ``RIRS_NOISES``. One data directory per room set:
  utterance = rir id, speaker = room id.

All audio must be 16 kHz (both corpora are distributed so); another rate is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import soundfile

from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import iter_lines

MUSAN_CATEGORIES = ("noise", "music", "speech")
RIR_SETS = ("smallroom", "mediumroom")
SAMPLE_RATE = 16000


def _duration(path: Path) -> float:
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if info.samplerate != SAMPLE_RATE:
        raise UserError(f"{path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} Hz")
    return round(info.frames / info.samplerate, 3)


def prepare_musan(root: str | Path, category: str) -> DataDir:
    """The MUSAN ``category`` (noise, music or speech): wav.scp, utt2spk (utt = speaker), utt2dur."""
    if category not in MUSAN_CATEGORIES:
        raise UserError(f"MUSAN category must be one of {', '.join(MUSAN_CATEGORIES)}, got {category!r}")
    base = Path(root) / category
    if not base.is_dir():
        raise UserError(f"MUSAN: {base} does not exist")
    wav: dict[str, str] = {}
    for path in sorted(base.glob("*/*.wav")):
        utt = path.stem
        if utt in wav:
            raise UserError(f"MUSAN: two files named {path.name} under {base}")
        wav[utt] = str(path.resolve())
    if not wav:
        raise UserError(f"MUSAN: no */*.wav files under {base}")
    return DataDir(utt2spk={u: u for u in wav}, wav=wav, utt2dur={u: _duration(Path(p)) for u, p in wav.items()})


def prepare_rirs(root: str | Path, room_set: str) -> DataDir:
    """The simulated RIRs of ``room_set`` (smallroom or mediumroom) from its ``rir_list``."""
    if room_set not in RIR_SETS:
        raise UserError(f"RIR set must be one of {', '.join(RIR_SETS)}, got {room_set!r}")
    root = Path(root)
    rir_list = root / "simulated_rirs" / room_set / "rir_list"
    if not rir_list.is_file():
        raise UserError(f"RIRS_NOISES: {rir_list} does not exist")
    wav: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    for lineno, line in iter_lines(rir_list):
        parts = line.split()
        if len(parts) != 5 or parts[0] != "--rir-id" or parts[2] != "--room-id":
            raise InputFileError(rir_list, lineno, "expected '--rir-id ID --room-id ROOM PATH'", line)
        rir, room, rel = parts[1], parts[3], parts[4]
        if rir in wav:
            raise InputFileError(rir_list, lineno, f"duplicate rir id {rir!r}", line)
        path = root.parent / rel
        if not path.is_file():
            raise InputFileError(rir_list, lineno, f"impulse response {path} does not exist", line)
        _duration(path)
        wav[rir], utt2spk[rir] = str(path.resolve()), room
    if not wav:
        raise UserError(f"{rir_list}: no impulse responses")
    return DataDir(utt2spk=utt2spk, wav=wav)
