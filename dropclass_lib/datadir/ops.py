"""Operations that make a new data directory from others: fix, subset, combine, filter, copy."""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dropclass_lib.datadir.core import AUDIO_TABLES, KNOWN_FILES, UTT_TABLES, DataDir
from dropclass_lib.datadir.validate import validate_data_dir
from dropclass_lib.errors import UserError
from dropclass_lib.trials import Trials

log = logging.getLogger(__name__)


def fix_data_dir(path: str | os.PathLike) -> DataDir:
    """Repair the data directory at ``path`` in place, as Kaldi's ``fix_data_dir.sh``.

    Keeps the utterances present in utt2spk and in every other per-utterance table (in one of
    wav.scp and utt2aug, which together describe the audio), sorts every table, regenerates spk2utt, drops trials that name a removed utterance and makes
    enrol.list their enrolment side. The original files are first copied to
    ``<path>/.backup/``. Returns the fixed data directory.
    """
    path = Path(path)
    dd = DataDir.load(path, strict=False)
    common = set(dd.utt2spk)
    audio: set[str] = set()
    for name, table in dd.utt_tables().items():
        if name in AUDIO_TABLES:
            audio |= table.keys()
        else:
            common &= table.keys()
    if dd.wav is not None or dd.aug is not None:
        common &= audio
    if not common:
        raise UserError(f"{path}: no utterance is present in all of utt2spk, {', '.join(dd.utt_tables())}")
    backup = path / ".backup"
    backup.mkdir(exist_ok=True)
    for name in KNOWN_FILES:
        if (path / name).is_file():
            shutil.copyfile(path / name, backup / name)
    fixed = dd.subset(common)
    for name, table in {"utt2spk": dd.utt2spk, **dd.utt_tables()}.items():
        kept = len(table.keys() & fixed.utt2spk.keys())
        if len(table) > kept:
            log.info("%s: dropped %d of %d lines of %s (utterance missing from another file)",
                     path, len(table) - kept, len(table), name)
    if dd.trials is not None:
        kept = 0 if fixed.trials is None else len(fixed.trials)
        if kept < len(dd.trials):
            log.info("%s: dropped %d of %d trials naming a removed or unknown utterance", path, len(dd.trials) - kept, len(dd.trials))
    fixed.write(path)
    log.info("%s: %d utterances, %d speakers (originals in %s)", path, len(fixed), len(fixed.speakers()), backup)
    return fixed


def _non_empty(dd: DataDir, what: str) -> DataDir:
    if not len(dd):
        raise UserError(f"{what}: no utterance selected")
    return dd


def subset_utts(dd: DataDir, utts: Iterable[str]) -> DataDir:
    """Keep the listed utterances; ids that are not in ``dd`` are counted in the log."""
    utts = list(utts)
    unknown = sum(u not in dd.utt2spk for u in utts)
    if unknown:
        log.warning("%d of %d listed utterances are not in the data directory", unknown, len(utts))
    return _non_empty(dd.subset(utts), "utterance list")


def subset_speakers(dd: DataDir, speakers: Iterable[str]) -> DataDir:
    """Keep every utterance of the listed speakers; unknown speakers are counted in the log."""
    wanted = set(speakers)
    unknown = len(wanted - set(dd.utt2spk.values()))
    if unknown:
        log.warning("%d of %d listed speakers are not in the data directory", unknown, len(wanted))
    return _non_empty(dd.subset(u for u, s in dd.utt2spk.items() if s in wanted), "speaker list")


def _check_count(dd: DataDir, n: int) -> None:
    if n < 1 or n > len(dd):
        raise UserError(f"cannot select {n} utterances from a data directory of {len(dd)}")


def subset_first(dd: DataDir, n: int) -> DataDir:
    """The first ``n`` utterances in sorted order."""
    _check_count(dd, n)
    return dd.subset(dd.utts()[:n])


def subset_random(dd: DataDir, n: int, seed: int = 0) -> DataDir:
    """``n`` utterances drawn without replacement; the same ``seed`` gives the same subset."""
    _check_count(dd, n)
    return dd.subset(random.Random(seed).sample(dd.utts(), n))


def subset_per_speaker(dd: DataDir, n: int) -> DataDir:
    """The first ``n`` utterances (sorted order) of every speaker; fewer if it has fewer."""
    if n < 1:
        raise UserError(f"utterances per speaker must be >= 1, got {n}")
    return dd.subset(u for utts in dd.spk2utt().values() for u in utts[:n])


def combine(dirs: Sequence[DataDir], names: Sequence[str]) -> DataDir:
    """Merge data directories (``names`` label them in messages); an utterance id in two is an error.

    A per-utterance table is kept only if every input has it (logged otherwise), except that
    wav.scp and utt2aug (the audio, files or rendered) are kept when every input has one of
    them; trials are concatenated in input order and enrolment lists merged.
    """
    utt2spk: dict[str, str] = {}
    origin: dict[str, str] = {}
    for dd, name in zip(dirs, names):
        for utt, spk in dd.utt2spk.items():
            if utt in origin:
                raise UserError(f"utterance {utt!r} is in both {origin[utt]} and {name}: "
                                "give one of them a prefix with utils/copy_data_dir.py --utt-prefix")
            origin[utt] = name
            utt2spk[utt] = spk
    tables = {}
    audio_in_all = all(dd.wav is not None or dd.aug is not None for dd in dirs)
    for file_name, attr in UTT_TABLES.items():
        have = [getattr(dd, attr) for dd in dirs]
        if all(t is not None for t in have) or (file_name in AUDIO_TABLES and audio_in_all
                                                      and any(t is not None for t in have)):
            tables[attr] = {k: v for t in have if t is not None for k, v in t.items()}
        elif any(t is not None for t in have):
            log.warning("not every input has %s: the combined directory will not have one", file_name)
    with_trials = [dd.trials for dd in dirs if dd.trials is not None]
    trials = Trials(*(np.concatenate([getattr(t, f) for t in with_trials]) for f in ("enrol", "test", "target"))) \
        if with_trials else None
    enrols = [dd.enrol for dd in dirs if dd.enrol is not None]
    enrol = sorted({u for e in enrols for u in e}) if enrols else None
    return DataDir(utt2spk=utt2spk, **tables, trials=trials, enrol=enrol)


def filter_data_dir(dd: DataDir, min_frames: int = 0, min_utts_per_spk: int = 0) -> DataDir:
    """Drop utterances shorter than ``min_frames`` (from utt2num_frames) and speakers with fewer
    than ``min_utts_per_spk`` utterances, repeating both until nothing changes."""
    if min_frames > 0 and dd.utt2num_frames is None:
        raise UserError("filtering by --min-frames needs utt2num_frames (written by feature extraction)")
    while True:
        keep = [u for u in dd.utt2spk if min_frames <= 0 or dd.utt2num_frames[u] >= min_frames]
        dd2 = dd.subset(keep) if len(keep) < len(dd) else dd
        if min_utts_per_spk > 0:
            dd2 = dd2.subset(u for utts in dd2.spk2utt().values() if len(utts) >= min_utts_per_spk for u in utts)
        if len(dd2) == len(dd):
            return _non_empty(dd2, "filter")
        log.info("filter: %d -> %d utterances, %d speakers", len(dd), len(dd2), len(dd2.speakers()))
        dd = dd2


def copy_data_dir(src: str | os.PathLike, dest: str | os.PathLike, utt_prefix: str = "", spk_prefix: str = "") -> DataDir:
    """Copy a valid data directory, prefixing utterance ids (everywhere, trials and enrol.list
    included) with ``utt_prefix`` and speaker ids with ``spk_prefix``."""
    if Path(src).resolve() == Path(dest).resolve():
        raise UserError(f"source and destination are the same directory ({src})")
    dd = validate_data_dir(src, require_wav=False, check_files=False).rename(utt_prefix, spk_prefix)
    dd.write(dest)
    return dd
