"""Checking a Kaldi data directory for consistency, as Kaldi's ``validate_data_dir.sh`` does.

Every failure is one :class:`InputFileError` naming the file, the line and its text. Per-file
problems (order, duplicates, field counts, numbers, UTF-8) are found while loading; this
module adds the checks across files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from dropclass_lib.audio import is_pipe, wav_entry_problem
from dropclass_lib.datadir.core import AUDIO_TABLES, UTT_TABLES, DataDir, read_spk2utt
from dropclass_lib.datadir.utt2aug import parse_aug
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import iter_lines

# An archive entry of feats.scp/vad.scp: "path:byte-offset", optionally with a "[rows]" range.
_ARK_OFFSET = re.compile(r"^(?P<file>.+):\d+(\[[^]]*\])?$")


def _locate(path: Path, key: str, column: int = 0) -> tuple[int | None, str | None]:
    """The first line of ``path`` whose field ``column`` is ``key`` (for error messages)."""
    for lineno, line in iter_lines(path):
        fields = line.split()
        if len(fields) > column and fields[column] == key:
            return lineno, line
    return None, None


def _missing_error(path: Path, key: str, message: str) -> InputFileError:
    lineno, line = _locate(path, key)
    return InputFileError(path, lineno, message, line)


def _check_spk2utt(path: Path, dd: DataDir) -> None:
    spk2utt_path = path / "spk2utt"
    if not spk2utt_path.is_file():
        raise UserError(f"{spk2utt_path} does not exist (make it with utils/utt2spk_to_spk2utt.py or utils/fix_data_dir.py)")
    listed = set()
    for spk, utts in read_spk2utt(spk2utt_path).items():
        for utt in utts:
            if dd.utt2spk.get(utt) != spk:
                lineno, line = _locate(spk2utt_path, spk)
                got = "is not in utt2spk" if utt not in dd.utt2spk else f"has speaker {dd.utt2spk[utt]!r} in utt2spk"
                raise InputFileError(spk2utt_path, lineno, f"utterance {utt!r} listed under speaker {spk!r} {got}", line)
            listed.add(utt)
    for utt in dd.utts():
        if utt not in listed:
            raise _missing_error(path / "utt2spk", utt, f"utterance {utt!r} is missing from spk2utt")


def _check_keys(path: Path, dd: DataDir, name: str, table: dict) -> None:
    """``table`` (file ``name``) must have exactly the utterances of utt2spk."""
    for utt in table:
        if utt not in dd.utt2spk:
            raise _missing_error(path / name, utt, f"utterance {utt!r} is not in utt2spk")
    if len(table) != len(dd.utt2spk):
        for utt in dd.utts():
            if utt not in table:
                raise _missing_error(path / "utt2spk", utt, f"utterance {utt!r} has no entry in {name}")


def _audio_entry_problem(rx: str, check_files: bool) -> str | None:
    """What is wrong with a wav.scp value (None if nothing); the entry's form is checked by the
    rule read_audio applies when features are made, so the two agree."""
    problem = wav_entry_problem(rx)
    if problem or is_pipe(rx):
        return problem
    if check_files and not os.path.isfile(rx):
        return f"audio file {rx} does not exist"
    return None


def _check_wav(path: Path, wav: dict[str, str], check_files: bool) -> None:
    for utt, rx in wav.items():
        problem = _audio_entry_problem(rx, check_files)
        if problem:
            raise _missing_error(path / "wav.scp", utt, problem)


def _check_aug(path: Path, aug: dict[str, str], check_files: bool) -> None:
    """Each utt2aug line parses, its source is a valid wav.scp value and its setup files exist."""
    setups: set[str] = set()
    for utt, value in aug.items():
        try:
            record = parse_aug(value)
        except ValueError as err:
            raise _missing_error(path / "utt2aug", utt, str(err)) from None
        problem = _audio_entry_problem(record.source, check_files)
        if problem:
            raise _missing_error(path / "utt2aug", utt, f"source entry: {problem}")
        for step in record.steps:
            if check_files and step.setup not in setups:
                if not os.path.isfile(step.setup):
                    raise _missing_error(path / "utt2aug", utt, f"augmentation setup {step.setup} does not exist")
                setups.add(step.setup)


def _check_audio_keys(path: Path, dd: DataDir) -> None:
    """Every utterance is in exactly one of wav.scp and utt2aug (when either is present)."""
    wav, aug = dd.wav or {}, dd.aug or {}
    for utt in aug:
        if utt not in dd.utt2spk:
            raise _missing_error(path / "utt2aug", utt, f"utterance {utt!r} is not in utt2spk")
        if utt in wav:
            raise _missing_error(path / "utt2aug", utt, f"utterance {utt!r} is also in wav.scp: its audio is "
                                 "either a file/command (wav.scp) or rendered (utt2aug), not both")
    for utt in wav:
        if utt not in dd.utt2spk:
            raise _missing_error(path / "wav.scp", utt, f"utterance {utt!r} is not in utt2spk")
    if len(wav) + len(aug) != len(dd.utt2spk):
        for utt in dd.utts():
            if utt not in wav and utt not in aug:
                raise _missing_error(path / "utt2spk", utt, f"utterance {utt!r} has no entry in "
                                     f"{' or '.join(n for n in AUDIO_TABLES if (path / n).is_file())}")


def _check_archives(path: Path, name: str, table: dict[str, str]) -> None:
    """Each archive that ``name`` points into must exist (checked once per archive)."""
    seen: set[str] = set()
    for utt, rx in table.items():
        if is_pipe(rx):
            continue
        m = _ARK_OFFSET.match(rx)
        ark = m.group("file") if m else rx
        if ark in seen:
            continue
        if not os.path.isfile(ark):
            raise _missing_error(path / name, utt, f"archive {ark} does not exist")
        seen.add(ark)


def _check_enrol(path: Path, dd: DataDir) -> None:
    for utt in dd.enrol or ():
        if utt not in dd.utt2spk:
            raise _missing_error(path / "enrol.list", utt, f"utterance {utt!r} is not in utt2spk")
    if dd.trials is None or dd.enrol is None:
        return
    enrol = set(dd.enrol)
    trial_side = set(dd.trials.enrol.tolist())
    for utt in dd.trials.enrol_utts():
        if utt not in enrol:
            lineno, line = _locate(path / "trials", utt)
            raise InputFileError(path / "trials", lineno, f"enrolment utterance {utt!r} is missing from enrol.list", line)
    for utt in dd.enrol:
        if utt not in trial_side:
            raise _missing_error(path / "enrol.list", utt, f"utterance {utt!r} is not the enrolment side of any trial")


def validate_data_dir(path: str | os.PathLike, require_feats: bool = False, require_wav: bool = True,
                      check_files: bool = True, required: Iterable[str] = ()) -> DataDir:
    """Validate the data directory at ``path`` and return it loaded.

    Checks: every table sorted (``LC_ALL=C``) with unique keys and well-formed lines;
    utt2spk and spk2utt describe the same mapping; feats.scp, vad.scp, utt2num_frames and
    utt2dur (those present) have exactly the utterances of utt2spk, and each utterance is in
    exactly one of wav.scp and utt2aug; wav.scp values (and utt2aug sources) are existing files
    or commands ending in ``|``; utt2aug lines are well formed and name existing setup files;
    feats/vad archives exist (``check_files=False`` skips the existence checks); trials and enrol.list name known
    utterances and enrol.list is the enrolment side of the trials. ``required`` lists more
    file names that must be present (``["utt2num_frames"]``).
    """
    path = Path(path)
    dd = DataDir.load(path, strict=True)
    if require_wav and dd.wav is None and dd.aug is None:
        raise UserError(f"{path}/wav.scp does not exist (nor utt2aug)")
    for name in [*(["feats.scp"] if require_feats else []), *required]:
        if not (path / name).is_file():
            raise UserError(f"{path}/{name} does not exist")
    _check_spk2utt(path, dd)
    for name, table in dd.utt_tables().items():
        if name not in AUDIO_TABLES:
            _check_keys(path, dd, name, table)
    if dd.wav is not None or dd.aug is not None:
        _check_audio_keys(path, dd)
    if dd.wav is not None:
        _check_wav(path, dd.wav, check_files)
    if dd.aug is not None:
        _check_aug(path, dd.aug, check_files)
    if check_files:
        for name in ("feats.scp", "vad.scp"):
            if getattr(dd, UTT_TABLES[name]) is not None:
                _check_archives(path, name, getattr(dd, UTT_TABLES[name]))
    _check_enrol(path, dd)
    return dd
