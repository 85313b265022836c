#!/usr/bin/env python3
"""Score any corpus's trials with an already trained model, without retraining.

    steps/score_corpus.py --model exp/X/final.pt [--plda-dir DIR] INPUT TRIALS OUT_DIR

INPUT is a Kaldi data directory (holding wav.scp, optionally utt2spk), a wav.scp file, or a
folder of audio files (searched recursively; one utterance per file, the speaker is the name
of the file's parent folder or what --spk-from-filename captures from the file name).

TRIALS is a Kaldi trial list (``enrol test target|nontarget``) or a VoxCeleb one
(``1|0 enrol test``). Its utterances may be named by utterance id or, for a folder of audio,
by the file's path relative to the folder (with or without its extension).

The audio goes through the features, energy VAD and sliding CMN that the model was trained
with (recorded in frontend.yaml beside the model file; --feat-conf, --vad-conf and
--cmn-window override it), then the model's embeddings, cosine scoring and, with --plda-dir, PLDA scoring.
Written under OUT_DIR: data/ (the Kaldi data dir with trials), features, xvectors/,
scores_cosine[, scores_plda], and results.txt (EER, minDCF@0.01, minDCF@0.001 per back-end).
Re-running skips the parts that are already done.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile
import yaml

from dropclass_lib.atomic import atomic_open
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import c_sorted, iter_lines, read_key_rest, read_kv, write_table
from dropclass_lib.trials import LABELS, Trials, read_trials, write_trials

log = logging.getLogger("score_corpus")
STEPS = Path(__file__).resolve().parent
# Headerless raw audio cannot be decoded without being told its format.
AUDIO_EXTENSIONS = {"." + f.lower() for f in soundfile.available_formats() if f != "RAW"}


def _utt_id(rel: Path) -> str:
    """Utterance id of a file: its relative path without extension, folders joined by '-'."""
    return "-".join(rel.with_suffix("").parts).replace(" ", "_")


def _speaker(rel: Path, pattern: re.Pattern | None, where: str) -> str:
    if pattern is None:
        spk = rel.parent.name
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
    def from_folder(cls, folder: Path, pattern: re.Pattern | None) -> "Corpus":
        corpus = cls()
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if not files:
            raise UserError(f"{folder}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
        for path in files:
            rel = path.relative_to(folder)
            if any(c.isspace() for c in str(path.resolve())):
                raise UserError(f"{path}: paths with whitespace cannot go into a wav.scp")
            before = set(corpus.wav)
            corpus.add(_utt_id(rel), str(path.resolve()), _speaker(rel, pattern, str(path)), str(path))
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


def load_input(path: Path, pattern: re.Pattern | None) -> Corpus:
    if path.is_dir() and (path / "wav.scp").is_file():
        utt2spk = path / "utt2spk"
        return Corpus.from_wav_scp(path / "wav.scp", utt2spk if utt2spk.is_file() and pattern is None else None, pattern)
    if path.is_dir():
        return Corpus.from_folder(path, pattern)
    if path.is_file():
        return Corpus.from_wav_scp(path, None, pattern)
    raise UserError(f"{path} does not exist (expected a data dir, a wav.scp or a folder of audio files)")


def read_any_trials(path: Path, aliases: dict[str, str]) -> Trials:
    """Read a Kaldi or VoxCeleb trial list, naming utterances by id or relative path."""
    enrol, test, target = [], [], []
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 3:
            raise InputFileError(path, lineno, "expected 'enrol test target|nontarget' or '1|0 enrol test'", line)
        if parts[2] in LABELS:
            e, t, is_target = parts[0], parts[1], LABELS[parts[2]]
        elif parts[0] in ("0", "1"):
            e, t, is_target = parts[1], parts[2], parts[0] == "1"
        else:
            raise InputFileError(path, lineno, "expected 'enrol test target|nontarget' or '1|0 enrol test'", line)
        for name in (e, t):
            if name not in aliases:
                raise InputFileError(path, lineno, f"utterance {name!r} is not in the input", line)
        enrol.append(aliases[e])
        test.append(aliases[t])
        target.append(is_target)
    if not target:
        raise UserError(f"{path}: no trials")
    return Trials(np.array(enrol, dtype=object), np.array(test, dtype=object), np.array(target, dtype=bool))


FRONTEND_FILE = "frontend.yaml"


def _same_trials(a: Trials, b: Trials) -> bool:
    return all(np.array_equal(x, y) for x, y in ((a.enrol, b.enrol), (a.test, b.test), (a.target, b.target)))


def resolve_frontend(model: Path, feat_conf: str | None, vad_conf: str | None, cmn_window: int | None,
                     conf_dir: Path) -> tuple[Path, Path, int]:
    """The feature, VAD and CMN settings to use: the options where given, otherwise those the
    model was trained with, recorded in ``frontend.yaml`` beside the model file (keys ``feats``:
    the training data's feats_config.yaml, ``vad``: the VAD options, ``cmn_window``)."""
    record_path = model.parent / FRONTEND_FILE
    record = {}
    if record_path.is_file():
        with open(record_path, encoding="utf-8") as f:
            record = yaml.safe_load(f) or {}
        if not isinstance(record, dict):
            raise InputFileError(record_path, 1, "expected a mapping with keys feats, vad, cmn_window")
    paths = {}
    for key, given in (("feats", feat_conf), ("vad", vad_conf)):
        if given is not None:
            paths[key] = Path(given)
        elif isinstance(record.get(key), dict):
            paths[key] = conf_dir / f"{key}.yaml"
            text = yaml.safe_dump(record[key], sort_keys=False)
            if not paths[key].is_file() or paths[key].read_text(encoding="utf-8") != text:
                with atomic_open(paths[key], "w", encoding="utf-8") as f:
                    f.write(text)
        else:
            raise UserError(f"the {key} settings the model was trained with are unknown: {record_path} "
                            f"{'has no ' + key + ' section' if record_path.is_file() else 'does not exist'}; "
                            f"pass --{'feat' if key == 'feats' else key}-conf FILE")
    if cmn_window is None:
        cmn_window = record.get("cmn_window", 300)
    if not isinstance(cmn_window, int) or cmn_window < 1:
        raise InputFileError(record_path, None, f"cmn_window must be a positive integer, got {cmn_window!r}")
    return paths["feats"], paths["vad"], cmn_window


def run_step(out: Path, name: str, inputs: Sequence[Path], *args: object) -> None:
    """Run another entry point of the project (its messages go straight to stderr), unless the
    marker ``OUT/.done.NAME`` shows the same command already finished after its inputs last changed.

    The steps skip their own finished jobs but rewrite their merged outputs, which would make
    every later step redo its work; the markers keep a re-run cheap, as in Kaldi recipes.
    """
    cmd = " ".join(map(str, args))
    marker = out / f".done.{name}"
    if marker.is_file() and marker.read_text(encoding="utf-8") == cmd:
        done = marker.stat().st_mtime_ns
        if all(Path(p).stat().st_mtime_ns <= done for p in inputs):
            log.info("%s: already done (remove %s to redo it)", name, marker)
            return
    marker.unlink(missing_ok=True)
    log.info("running %s", cmd)
    if subprocess.run([sys.executable, *map(str, args)]).returncode != 0:
        raise UserError(f"{Path(str(args[0])).name} failed (command: {cmd})")
    with atomic_open(marker, "w", encoding="utf-8") as f:
        f.write(cmd)


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="trained model file (exp/NAME/final.pt)")
    p.add_argument("--plda-dir", default=None, help="also score with the PLDA in this dir (steps/train_plda.py)")
    p.add_argument("--spk-from-filename", default=None, metavar="REGEX",
                   help="speaker id = group 1 (or the whole match) of REGEX searched in each file name "
                        "(default: the parent folder's name; for a wav.scp: its utt2spk, else the utterance id)")
    p.add_argument("--feat-conf", default=None, help="feature options (default: from frontend.yaml beside the model)")
    p.add_argument("--vad-conf", default=None, help="VAD options (default: from frontend.yaml beside the model)")
    p.add_argument("--cmn-window", type=int, default=None, help="sliding CMN window (default: frontend.yaml, else 300)")
    p.add_argument("--nj", type=int, default=2, help="parallel jobs for features and VAD")
    p.add_argument("--device", default="cpu", help="torch device for the embeddings")
    p.add_argument("input", help="Kaldi data dir, wav.scp file, or folder of audio files")
    p.add_argument("trials", help="trial list (Kaldi or VoxCeleb format)")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    model, out = Path(args.model), Path(args.out_dir)
    if not model.is_file():
        raise UserError(f"model file {model} does not exist")
    if args.plda_dir is not None and not (Path(args.plda_dir) / "plda.npz").is_file():
        raise UserError(f"{args.plda_dir}/plda.npz does not exist (make it with steps/train_plda.py)")
    try:
        pattern = re.compile(args.spk_from_filename) if args.spk_from_filename else None
    except re.error as err:
        raise UserError(f"--spk-from-filename {args.spk_from_filename!r} is not a valid regular expression ({err})") from None

    corpus = load_input(Path(args.input), pattern)
    trials = read_any_trials(Path(args.trials), corpus.aliases)
    feat_conf, vad_conf, cmn_window = resolve_frontend(model, args.feat_conf, args.vad_conf, args.cmn_window, out / "conf")

    data, data_no_sil = out / "data", out / "data_no_sil"
    used = set(trials.utts())
    corpus.keep(used)
    corpus.write(data)
    if not (data / "trials").is_file() or not _same_trials(read_trials(data / "trials"), trials):
        write_trials(data / "trials", trials)
        with atomic_open(data / "enrol.list", "w", encoding="utf-8") as f:
            f.write("".join(u + "\n" for u in c_sorted(trials.enrol_utts())))
    run_step(out, "features", [data / "wav.scp", data / "utt2spk", feat_conf],
             STEPS / "make_features.py", "--nj", args.nj, "--config", feat_conf, data, out / "feats")
    run_step(out, "vad", [data / "feats.scp", vad_conf],
             STEPS / "compute_vad.py", "--nj", args.nj, "--config", vad_conf, data, out / "feats")
    run_step(out, "cmn", [data / "feats.scp", data / "vad.scp", data / "trials"],
             STEPS / "prepare_feats_for_egs.py", "--nj", args.nj, "--cmn-window", cmn_window, data, data_no_sil, out / "feats")
    dropped = sorted(used - set(read_kv(data_no_sil / "utt2spk")))
    if dropped:
        raise UserError(f"{len(dropped)} utterance(s) of the trials have no voiced frame, e.g. {dropped[0]!r}: "
                        "they cannot be scored (lower the VAD threshold with --vad-conf, or remove them from the trials)")
    run_step(out, "embeddings", [model, data_no_sil / "feats.scp"],
             STEPS / "extract_embeddings.py", "--device", args.device, model, data_no_sil, out / "xvectors")
    scp = out / "xvectors" / "xvector.scp"
    backends = [("cosine", [], [])]
    if args.plda_dir:
        backends.append(("plda", ["--plda-dir", args.plda_dir], [Path(args.plda_dir) / "plda.npz"]))
    lines = []
    for name, extra, extra_inputs in backends:
        run_step(out, f"scores_{name}", [data / "trials", scp, *extra_inputs],
                 STEPS / "score_trials.py", "--backend", name, *extra, "--set-name", data.parent.name,
                 data / "trials", scp, scp, out / f"scores_{name}")
        with open(out / f"scores_{name}" / "metrics.json", encoding="utf-8") as f:
            m = json.load(f)
        lines.append(f"{name} {m['eer']:.2f} {m['min_dcf_0.01']:.4f} {m['min_dcf_0.001']:.4f}")
    with atomic_open(out / "results.txt", "w", encoding="utf-8") as f:
        f.write("# backend EER% minDCF@0.01 minDCF@0.001\n" + "\n".join(lines) + "\n")
    print((out / "results.txt").read_text(), end="")
    return 0


if __name__ == "__main__":
    run_main(main)
