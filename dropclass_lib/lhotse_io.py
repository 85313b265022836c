"""Kaldi data directory <-> lhotse manifests (RecordingSet + SupervisionSet).

Import goes through lhotse's own ``lhotse.kaldi.load_kaldi_data_dir``. That function measures
the duration of a ``cmd |`` entry only with the optional ``kaldi_native_io`` package (and
drops the entry when it cannot), so the durations are supplied to it as a ``reco2dur`` file:
taken from ``utt2dur`` when the directory has one, otherwise measured here with
:func:`dropclass_lib.audio.read_audio`, which runs pipes itself.

Export is written here rather than with ``lhotse.kaldi.export_to_kaldi``, which writes
``segments`` and a ``text`` file of ``None`` placeholders, turns every non-WAV file into an
``ffmpeg`` pipe (soundfile reads FLAC itself; ffmpeg may be absent) and writes no spk2utt.
A data directory of this toolkit has one utterance per recording, so only supervisions that
cover a whole single-channel recording can be exported.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile

from dropclass_lib.audio import is_pipe, read_audio
from dropclass_lib.datadir import DataDir, validate_data_dir
from dropclass_lib.errors import UserError
from dropclass_lib.tables import write_table

RECORDINGS = "recordings.jsonl.gz"
SUPERVISIONS = "supervisions.jsonl.gz"
#: a supervision whose duration differs from its recording's by more than this is a segment
_WHOLE_TOLERANCE_S = 0.01


def audio_duration(rxfilename: str, utt: str = "") -> tuple[float, int]:
    """``(duration in seconds, sample rate)`` of a wav.scp entry (a pipe is run to the end)."""
    if is_pipe(rxfilename):
        samples, rate = read_audio(rxfilename, utt)
        return len(samples) / rate, rate
    try:
        info = soundfile.info(rxfilename)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise UserError(f"cannot read utterance {utt!r} ({rxfilename}): {err}") from None
    return info.frames / info.samplerate, info.samplerate


def _durations(dd: DataDir, sampling_rate: int | None, num_jobs: int) -> tuple[dict[str, float], int]:
    utts = dd.utts()
    if dd.utt2dur is not None:
        durations = dict(dd.utt2dur)
        if sampling_rate is None:
            sampling_rate = audio_duration(dd.wav[utts[0]], utts[0])[1]
        return durations, sampling_rate
    with ThreadPoolExecutor(max(1, num_jobs)) as pool:
        measured = dict(zip(utts, pool.map(lambda u: audio_duration(dd.wav[u], u), utts)))
    source = f"--sampling-rate {sampling_rate}"
    if sampling_rate is None:  # the first utterance's rate must be everybody's
        sampling_rate, source = measured[utts[0]][1], f"the rate of {utts[0]!r}"
    for utt, (_, rate) in measured.items():
        if rate != sampling_rate:
            raise UserError(f"utterance {utt!r} has sample rate {rate} Hz, expected {sampling_rate} Hz ({source})")
    return {u: d for u, (d, _) in measured.items()}, sampling_rate


def data_dir_to_lhotse(data_dir: str | os.PathLike, sampling_rate: int | None = None, num_jobs: int = 1):
    """Return ``(RecordingSet, SupervisionSet)`` for a valid data directory with wav.scp.

    One recording and one whole-recording supervision (speaker from utt2spk) per utterance.
    ``sampling_rate`` defaults to the rate of the audio, which must be the same everywhere.
    """
    from lhotse.kaldi import load_kaldi_data_dir

    dd = validate_data_dir(data_dir, require_wav=True)
    durations, rate = _durations(dd, sampling_rate, num_jobs)
    with tempfile.TemporaryDirectory(prefix="lhotse_import.") as tmp:
        DataDir(utt2spk=dd.utt2spk, wav=dd.wav).write(tmp)
        write_table(Path(tmp) / "reco2dur", durations)
        recordings, supervisions, _ = load_kaldi_data_dir(tmp, sampling_rate=rate, use_reco2dur=True)
    return recordings, supervisions


def _wav_entry(recording) -> str:
    if len(recording.sources) != 1 or recording.num_channels != 1 or recording.transforms:
        raise UserError(f"recording {recording.id!r}: only single-source mono recordings without "
                        "transforms can be written to wav.scp")
    source = recording.sources[0]
    if source.type == "file":
        return str(source.source)
    if source.type == "command":
        return f"{source.source.strip()} |"
    raise UserError(f"recording {recording.id!r}: audio source of type {source.type!r} cannot be written to wav.scp")


def lhotse_to_data_dir(recordings, supervisions) -> DataDir:
    """The data directory (wav.scp, utt2spk, utt2dur) of manifests whose every supervision
    covers one whole recording; utterance ids are the supervision ids."""
    dd = DataDir(utt2spk={}, wav={}, utt2dur={})
    used: dict[str, str] = {}
    for sup in supervisions:
        if sup.recording_id not in recordings:
            raise UserError(f"supervision {sup.id!r}: recording {sup.recording_id!r} is not in the recording manifest")
        rec = recordings[sup.recording_id]
        if sup.start > _WHOLE_TOLERANCE_S or abs(sup.duration - rec.duration) > _WHOLE_TOLERANCE_S:
            raise UserError(f"supervision {sup.id!r} covers {sup.start:.3f}-{sup.end:.3f} s of recording "
                            f"{rec.id!r} ({rec.duration:.3f} s): segments are not supported")
        if sup.speaker is None:
            raise UserError(f"supervision {sup.id!r} has no speaker")
        if rec.id in used:
            raise UserError(f"recording {rec.id!r} is used by supervisions {used[rec.id]!r} and {sup.id!r}")
        if sup.id in dd.utt2spk:
            raise UserError(f"supervision id {sup.id!r} occurs twice")
        used[rec.id] = sup.id
        dd.utt2spk[sup.id] = sup.speaker
        dd.wav[sup.id] = _wav_entry(rec)
        dd.utt2dur[sup.id] = sup.duration
    if not dd.utt2spk:
        raise UserError("the supervision manifest is empty")
    return dd


def save_manifest(manifest, path: str | os.PathLike) -> None:
    """``manifest.to_file(path)`` atomically (the format follows the name, e.g. ``.jsonl.gz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        manifest.to_file(Path(tmp) / path.name)
        os.replace(Path(tmp) / path.name, path)


def load_manifests(recordings_path: str | os.PathLike, supervisions_path: str | os.PathLike):
    """Read ``(RecordingSet, SupervisionSet)`` from two lhotse manifest files."""
    from lhotse import RecordingSet, SupervisionSet

    for p in (recordings_path, supervisions_path):
        if not os.path.isfile(p):
            raise UserError(f"manifest {p} does not exist")
    try:
        return (RecordingSet.from_file(recordings_path).to_eager(),
                SupervisionSet.from_file(supervisions_path).to_eager())
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise UserError(f"cannot read manifests {recordings_path}, {supervisions_path}: {err}") from None
