"""A Kaldi data directory held in memory: reading it file by file and writing it back.

Files handled (all keyed by utterance id unless noted, all sorted with ``LC_ALL=C``):
``utt2spk`` (required), ``spk2utt`` (keyed by speaker; always regenerated from utt2spk on
writing), ``wav.scp``, ``utt2aug`` (rendered audio, :mod:`dropclass_lib.datadir.utt2aug`),
``feats.scp``, ``vad.scp``, ``utt2num_frames``, ``utt2dur``, ``text``
(transcripts), ``trials`` (``enrol-utt test-utt target|nontarget``, kept in its own order) and
``enrol.list`` (one enrolment utterance per line). Cross-file consistency is checked by
:func:`dropclass_lib.datadir.validate.validate_data_dir`, not here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from dropclass_lib.atomic import atomic_open
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import c_sorted, iter_table, write_table
from dropclass_lib.trials import Trials, read_trials, write_trials

#: per-utterance tables other than utt2spk: file name -> DataDir attribute
UTT_TABLES = {
    "wav.scp": "wav",
    "utt2aug": "aug",
    "feats.scp": "feats",
    "vad.scp": "vad",
    "utt2num_frames": "utt2num_frames",
    "utt2dur": "utt2dur",
    "text": "text",
}
#: the tables that describe an utterance's audio: each utterance is in exactly one of them
AUDIO_TABLES = ("wav.scp", "utt2aug")
#: every file this module reads or writes
KNOWN_FILES = ("utt2spk", "spk2utt", *UTT_TABLES, "trials", "enrol.list")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise ValueError(text)
    return value


#: value parsers of the numeric tables, with what the value must be (for error messages)
_VALUE_PARSERS: dict[str, tuple[Callable[[str], object], str]] = {
    "utt2num_frames": (_count, "a frame count (integer >= 0)"),
    "utt2dur": (_seconds, "a duration in seconds (number >= 0)"),
}


def read_utt_table(path: str | os.PathLike, name: str, strict: bool = True) -> dict[str, object]:
    """Read one per-utterance table. ``name`` is its file name (selects the value format).

    ``strict``: keys must be unique and ``LC_ALL=C`` sorted. Otherwise lines may come in any
    order and a line repeated verbatim counts once; a key repeated with another value is
    always an error.
    """
    whole_rest = name in ("wav.scp", "utt2aug", "feats.scp", "vad.scp", "text")
    parse, expected = _VALUE_PARSERS.get(name, (None, ""))
    table: dict[str, object] = {}
    for lineno, key, fields, line in iter_table(path, min_fields=2, max_fields=None if whole_rest else 2,
                                                check_sorted=strict, check_unique=strict):
        value: object = line.split(None, 1)[1].strip() if whole_rest else fields[0]
        if parse is not None:
            try:
                value = parse(value)
            except ValueError:
                raise InputFileError(path, lineno, f"value must be {expected}", line) from None
        if key in table and table[key] != value:
            raise InputFileError(path, lineno, f"duplicate key {key!r} with a different value", line)
        table[key] = value
    return table


def read_spk2utt(path: str | os.PathLike, strict: bool = True) -> dict[str, list[str]]:
    """Read spk2utt; an utterance listed twice (under any speaker) is an error naming the line."""
    spk2utt: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for lineno, spk, utts, line in iter_table(path, min_fields=2, check_sorted=strict):
        for utt in utts:
            if utt in where:
                raise InputFileError(path, lineno, f"utterance {utt!r} is listed twice (also under speaker {where[utt]!r})", line)
            where[utt] = spk
        spk2utt[spk] = utts
    return spk2utt


def read_utt_list(path: str | os.PathLike, strict: bool = True) -> list[str]:
    """Read a one-column list of ids (``enrol.list``, an ``--utt-list``); sorted if ``strict``."""
    return [key for _, key, _, _ in iter_table(path, min_fields=1, max_fields=1, check_sorted=strict, check_unique=strict)]


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Invert utt2spk; speakers and each speaker's utterances in ``LC_ALL=C`` order."""
    spk2utt: dict[str, list[str]] = {}
    for utt in c_sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {spk: spk2utt[spk] for spk in c_sorted(spk2utt)}


def spk2utt_to_utt2spk(spk2utt: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Invert spk2utt; an utterance under two speakers raises :class:`UserError`."""
    utt2spk: dict[str, str] = {}
    for spk, utts in spk2utt.items():
        for utt in utts:
            if utt in utt2spk:
                raise UserError(f"utterance {utt!r} is listed under speakers {utt2spk[utt]!r} and {spk!r}")
            utt2spk[utt] = spk
    return utt2spk


@dataclasses.dataclass
class DataDir:
    """The tables of a Kaldi data directory; optional ones are ``None`` when absent."""

    utt2spk: dict[str, str]
    wav: dict[str, str] | None = None
    feats: dict[str, str] | None = None
    vad: dict[str, str] | None = None
    utt2num_frames: dict[str, int] | None = None
    utt2dur: dict[str, float] | None = None
    text: dict[str, str] | None = None
    aug: dict[str, str] | None = None
    trials: Trials | None = None
    enrol: list[str] | None = None

    def __len__(self) -> int:
        return len(self.utt2spk)

    def utts(self) -> list[str]:
        return c_sorted(self.utt2spk)

    def speakers(self) -> list[str]:
        return c_sorted(set(self.utt2spk.values()))

    def spk2utt(self) -> dict[str, list[str]]:
        return utt2spk_to_spk2utt(self.utt2spk)

    def utt_tables(self) -> dict[str, dict]:
        """The per-utterance tables present (utt2spk excluded), by file name."""
        return {name: getattr(self, attr) for name, attr in UTT_TABLES.items() if getattr(self, attr) is not None}

    @classmethod
    def load(cls, path: str | os.PathLike, strict: bool = True) -> "DataDir":
        """Read the data directory at ``path``.

        ``strict`` (the default) requires every table sorted with unique keys and every trial
        to name a known utterance; ``strict=False`` is for :func:`fix_data_dir`, which repairs
        order, verbatim repeats and dangling references.
        """
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"data directory {path} does not exist")
        if (path / "segments").exists():
            raise UserError(f"{path}/segments exists: data directories with segments are not supported; "
                            "cut the segments into their own audio files first")
        utt2spk = read_utt_table(path / "utt2spk", "utt2spk", strict)
        if not utt2spk:
            raise UserError(f"{path}/utt2spk is empty")
        kwargs = {attr: read_utt_table(path / name, name, strict)
                  for name, attr in UTT_TABLES.items() if (path / name).is_file()}
        if (path / "trials").is_file():
            kwargs["trials"] = read_trials(path / "trials", known_utts=utt2spk if strict else None)
        if (path / "enrol.list").is_file():
            kwargs["enrol"] = read_utt_list(path / "enrol.list", strict)
        return cls(utt2spk=utt2spk, **kwargs)

    def write(self, path: str | os.PathLike) -> None:
        """Write every table sorted (``spk2utt`` regenerated), each file atomically.

        Known files that this data directory lacks are removed from ``path``, so that an old
        ``feats.scp`` cannot outlive the utterances it described.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_table(path / "utt2spk", self.utt2spk)
        write_table(path / "spk2utt", self.spk2utt())
        tables = self.utt_tables()
        for name in UTT_TABLES:
            if name in tables:
                write_table(path / name, tables[name])
            else:
                (path / name).unlink(missing_ok=True)
        if self.trials is not None:
            write_trials(path / "trials", self.trials)
        else:
            (path / "trials").unlink(missing_ok=True)
        if self.enrol is not None:
            with atomic_open(path / "enrol.list", "w", encoding="utf-8") as f:
                f.writelines(f"{u}\n" for u in c_sorted(self.enrol))
        else:
            (path / "enrol.list").unlink(missing_ok=True)

    def subset(self, utts: Iterable[str]) -> "DataDir":
        """The data directory restricted to ``utts`` (ids not in it are ignored).

        Trials keep only the lines whose two utterances remain; ``enrol.list`` keeps its
        remaining utterances and, with trials, exactly their remaining enrolment side.
        """
        keep = {u for u in utts if u in self.utt2spk}
        trials, enrol = self.trials, self.enrol
        if trials is not None:
            mask = np.fromiter((e in keep and t in keep for e, t in zip(trials.enrol, trials.test)),
                               dtype=bool, count=len(trials))
            trials = Trials(trials.enrol[mask], trials.test[mask], trials.target[mask]) if mask.any() else None
        if enrol is not None:
            if trials is not None:
                enrol = trials.enrol_utts()
            elif self.trials is not None:
                enrol = None  # no trial is left, so no enrolment side either
            else:
                enrol = [u for u in enrol if u in keep]
        return DataDir(
            utt2spk={u: s for u, s in self.utt2spk.items() if u in keep},
            **{attr: {u: v for u, v in table.items() if u in keep}
               for attr, table in ((UTT_TABLES[n], t) for n, t in self.utt_tables().items())},
            trials=trials,
            enrol=enrol,
        )

    def rename(self, utt_prefix: str = "", spk_prefix: str = "") -> "DataDir":
        """Prefix every utterance id (in all tables, trials, enrol.list) and every speaker id."""
        def u(utt: str) -> str:
            return utt_prefix + utt

        trials = self.trials
        if trials is not None:
            prefix = np.vectorize(u, otypes=[object])
            trials = Trials(prefix(trials.enrol), prefix(trials.test), trials.target.copy())
        return DataDir(
            utt2spk={u(k): spk_prefix + s for k, s in self.utt2spk.items()},
            **{UTT_TABLES[n]: {u(k): v for k, v in t.items()} for n, t in self.utt_tables().items()},
            trials=trials,
            enrol=None if self.enrol is None else [u(k) for k in self.enrol],
        )
