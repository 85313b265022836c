"""A corpus a user brings, made into a Kaldi data directory, and the front end to run on it.

The input is a Kaldi data directory (wav.scp, optionally utt2spk), a wav.scp file, or a folder of
audio files (searched recursively; one utterance per file, the speaker is the name of the file's
parent folder or what a regular expression captures from the file name). :class:`Corpus` holds
its wav.scp and utt2spk and the names a trial or enrolment list may use for each utterance (its
id or, for a folder, the file's path relative to the folder, with or without its extension).
:func:`resolve_frontend` gives the features, VAD and CMN a model package was trained with.
steps/score_corpus.py scores such a corpus; steps/adapt_model.py adapts a package to one.
"""

from __future__ import annotations

import re
from pathlib import Path

import soundfile

from dropclass_lib.config import from_dict, load_config
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.features import CONFIG_TYPES, FeatConfig, config_feat_type
from dropclass_lib.package import FRONTEND_FILE, ModelPackage
from dropclass_lib.tables import c_sorted, read_key_rest, read_kv, write_table
from dropclass_lib.vad import VadConfig

# Headerless raw audio cannot be decoded without being told its format.
AUDIO_EXTENSIONS = {"." + f.lower() for f in soundfile.available_formats() if f != "RAW"}


def _utt_id(rel: Path) -> str:
    """Utterance id of a file: its relative path without extension, folders joined by '-'."""
    return "-".join(rel.with_suffix("").parts).replace(" ", "_")


def _speaker(rel: Path, pattern: re.Pattern | None, where: str, flat_ok: bool = False) -> str:
    if pattern is None:
        spk = rel.parent.name
        if not spk and flat_ok:
            return _utt_id(rel)
        if not spk:
            raise UserError(f"{where} lies directly in the audio folder, so it has no parent folder to name "
                            "its speaker: put files in one folder per speaker or pass --spk-from-filename REGEX")
        return spk.replace(" ", "_")
    m = pattern.search(rel.name)
    if m is None:
        raise UserError(f"{where}: --spk-from-filename {pattern.pattern!r} does not match the file name {rel.name!r}")
    return (m.group(1) if pattern.groups else m.group(0)).replace(" ", "_")


class Corpus:
    """wav.scp and utt2spk of the input, plus the names trials may use for each utterance."""

    def __init__(self):
        self.wav: dict[str, str] = {}
        self.utt2spk: dict[str, str] = {}
        self.aliases: dict[str, str] = {}

    def add(self, utt: str, rx: str, spk: str, where: str) -> None:
        # Kaldi wants utterance ids that start with the speaker id, so that sorting
        # utt2spk by utterance also sorts it by speaker.
        if not (utt == spk or utt.startswith(spk + "-")):
            utt = f"{spk}-{utt}"
        if utt in self.wav:
            raise UserError(f"{where}: utterance id {utt!r} is given to two entries ({self.wav[utt]} and {rx})")
        self.wav[utt] = rx
        self.utt2spk[utt] = spk
        self.aliases[utt] = utt

    @classmethod
    def from_folder(cls, folder: Path, pattern: re.Pattern | None, flat_ok: bool = False) -> "Corpus":
        """``flat_ok``: a file directly in ``folder`` is a speaker of its own (unlabelled audio),
        instead of an error."""
        corpus = cls()
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if not files:
            raise UserError(f"{folder}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
        for path in files:
            rel = path.relative_to(folder)
            if any(c.isspace() for c in str(path.resolve())):
                raise UserError(f"{path}: paths with whitespace cannot go into a wav.scp")
            before = set(corpus.wav)
            corpus.add(_utt_id(rel), str(path.resolve()), _speaker(rel, pattern, str(path), flat_ok), str(path))
            (utt,) = set(corpus.wav) - before
            for alias in (rel.as_posix(), rel.with_suffix("").as_posix(), _utt_id(rel)):
                corpus.aliases[alias] = utt
        return corpus

    @classmethod
    def from_wav_scp(cls, wav_scp: Path, utt2spk: Path | None, pattern: re.Pattern | None) -> "Corpus":
        corpus = cls()
        spk_of = read_kv(utt2spk) if utt2spk is not None else {}
        for utt, rx in read_key_rest(wav_scp).items():
            if utt2spk is not None:
                if utt not in spk_of:
                    raise InputFileError(utt2spk, None, f"utterance {utt!r} of {wav_scp} has no speaker")
                spk = spk_of[utt]
            elif pattern is not None:
                spk = _speaker(Path(utt), pattern, f"{wav_scp}: utterance {utt!r}")
            else:
                spk = utt
            before = set(corpus.wav)
            corpus.add(utt, rx, spk, str(wav_scp))
            (new,) = set(corpus.wav) - before
            corpus.aliases[utt] = new
        return corpus

    def keep(self, utts: set[str]) -> None:
        """Restrict the corpus to ``utts`` (the utterances the trials name)."""
        self.wav = {u: rx for u, rx in self.wav.items() if u in utts}
        self.utt2spk = {u: s for u, s in self.utt2spk.items() if u in utts}

    def write(self, data_dir: Path) -> None:
        """Write wav.scp, utt2spk, spk2utt; a data dir that already holds the same is left untouched,
        so that the later steps see no newer input and skip their finished work."""
        spk2utt: dict[str, list[str]] = {}
        for utt in c_sorted(self.utt2spk):
            spk2utt.setdefault(self.utt2spk[utt], []).append(utt)
        if ((data_dir / "wav.scp").is_file() and (data_dir / "utt2spk").is_file()
                and read_key_rest(data_dir / "wav.scp") == self.wav and read_kv(data_dir / "utt2spk") == self.utt2spk):
            return
        write_table(data_dir / "wav.scp", self.wav)
        write_table(data_dir / "utt2spk", self.utt2spk)
        write_table(data_dir / "spk2utt", spk2utt)


def load_input(path: Path, pattern: re.Pattern | None, flat_ok: bool = False) -> Corpus:
    """The corpus of a data dir, a wav.scp or a folder of audio (``flat_ok``: :meth:`Corpus.from_folder`)."""
    if path.is_dir() and (path / "wav.scp").is_file():
        utt2spk = path / "utt2spk"
        return Corpus.from_wav_scp(path / "wav.scp", utt2spk if utt2spk.is_file() and pattern is None else None, pattern)
    if path.is_dir():
        return Corpus.from_folder(path, pattern, flat_ok)
    if path.is_file():
        return Corpus.from_wav_scp(path, None, pattern)
    raise UserError(f"{path} does not exist (expected a data dir, a wav.scp or a folder of audio files)")


def resolve_frontend(package: ModelPackage, feat_conf: str | None, vad_conf: str | None,
                     cmn_window: int | None) -> tuple[FeatConfig, VadConfig, int]:
    """The feature, VAD and CMN settings to use: the options where given, otherwise those the
    package's frontend.yaml records (the ones the model was trained with)."""
    where = package.root / FRONTEND_FILE
    if feat_conf is not None:
        feats = load_config(feat_conf, CONFIG_TYPES[config_feat_type(feat_conf) or "mfcc"])
    else:
        record = package.frontend["feats"]
        kind = record.get("feat_type", "mfcc") if isinstance(record, dict) else None
        if kind not in CONFIG_TYPES:
            raise InputFileError(where, None, f"feats: expected feature settings with feat_type "
                                 f"{' or '.join(CONFIG_TYPES)}, got {record!r:.80}")
        feats = from_dict(CONFIG_TYPES[kind], record, f"{where} (feats)")
    if vad_conf is not None:
        vad = load_config(vad_conf, VadConfig)
    else:
        if not isinstance(package.frontend["vad"], dict):
            raise InputFileError(where, None, "vad: expected the VAD options (a mapping)")
        vad = from_dict(VadConfig, package.frontend["vad"], f"{where} (vad)")
    if cmn_window is None:
        cmn_window = package.frontend["cmn_window"]
    if not isinstance(cmn_window, int) or isinstance(cmn_window, bool) or cmn_window < 1:
        raise InputFileError(where, None, f"cmn_window must be a positive integer, got {cmn_window!r}")
    return feats, vad, cmn_window
