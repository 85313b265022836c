#!/usr/bin/env python3
"""Prepare the speechocean762 corpus as Kaldi data directories with trials on both halves.

Corpus layout (CORPUS_ROOT is the folder holding WAVE/, train/ and test/):
  WAVE/SPEAKER<speaker: 4 digits>/<utterance: 9 digits>.WAV   (or .wav, .flac, .opus)
  train/, test/: the authors' lists (wav.scp naming WAVE/... paths, utt2spk, text, ...),
                 a speaker-disjoint split of the corpus
Writes DATA_DIR/train and DATA_DIR/test (wav.scp with absolute audio paths, utt2spk, spk2utt,
text, trials, enrol.list). Each listed recording may be stored as the .WAV the list names or
in another format (the lossless one is used when several exist); a listed utterance without
an audio file is an error naming the list and its line. Files under WAVE/ in neither list are
ignored. The authors' utterance ids do not start with the speaker id, so the ids here are
<speaker>-<authors' id> (0001-000010011), which makes utt2spk and spk2utt sort alike.

Trials, drawn within each half (the same list for the same --seed): each speaker's first
--enrol-per-speaker utterances enrol, each against --targets-per-enrol of the speaker's
other utterances and --nontargets-per-enrol utterances of other speakers of the same half.
The test trials are the evaluation list; the train trials serve as a development list for
models that never saw this corpus.

Example:
  local/prepare_speechocean762.py ../shared/data/speechocean762 data/speechocean762
"""

from __future__ import annotations

from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.real import Utterance, find_audio, write_data_dir
from dropclass_lib.corpora.trial_design import TrialDesign, add_trial_options, design_from_args
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import c_sorted, iter_table, read_key_rest, read_kv

SPLITS = ("train", "test")
# the design of the published speaker-verification table on this corpus
DEFAULT_DESIGN = TrialDesign(enrol_per_speaker=2, max_targets_per_enrol=10, nontargets_per_enrol=30,
                             enrol_choice="first")


def _check_covers(table: dict[str, str], table_path: Path, listed: dict[str, tuple[int, str]], wav_scp: Path) -> None:
    """``table`` (read from ``table_path``) must have exactly the utterances of wav.scp
    (``listed``: utterance -> its line number and text there)."""
    for utt in table:
        if utt not in listed:
            raise UserError(f"{table_path}: utterance {utt} is not in {wav_scp}")
    for utt, (lineno, line) in listed.items():
        if utt not in table:
            raise InputFileError(wav_scp, lineno, f"utterance {utt} is not in {table_path}", line)


def read_split(root: Path, split: str) -> list[Utterance]:
    """The utterances of the authors' list ``root/split`` (ids prefixed by the speaker)."""
    lists = root / split
    wav_scp, utt2spk_path, text_path = lists / "wav.scp", lists / "utt2spk", lists / "text"
    if not lists.is_dir():
        raise UserError(f"{lists} does not exist: is {root} the speechocean762 root?")
    utt2spk = read_kv(utt2spk_path)
    text = read_key_rest(text_path) if text_path.is_file() else None
    listed: dict[str, tuple[int, str]] = {}
    audio: dict[str, Path] = {}
    for lineno, utt, (rel,), line in iter_table(wav_scp, min_fields=2, max_fields=2):
        path = find_audio(root, rel)
        if path is None:
            raise InputFileError(wav_scp, lineno, f"no audio file for {rel} (nor the same name with another "
                                                  "extension: .WAV, .wav, .FLAC, .flac, .opus)", line)
        listed[utt], audio[utt] = (lineno, line), path
    _check_covers(utt2spk, utt2spk_path, listed, wav_scp)
    if text is not None:
        _check_covers(text, text_path, listed, wav_scp)
    return [Utterance(f"{utt2spk[u]}-{u}", utt2spk[u], str(audio[u]), None if text is None else text[u])
            for u in c_sorted(listed)]


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("corpus_root", help="the corpus folder (holding WAVE/, train/ and test/)")
    p.add_argument("data_dir", help="where train/ and test/ go")
    g = p.add_argument_group("trials (on each half)")
    g.add_argument("--seed", type=int, default=0, help="seed of the trial draw")
    add_trial_options(g, DEFAULT_DESIGN)
    args = p.parse_args(argv)
    design = design_from_args(args)

    root = Path(args.corpus_root).resolve()
    halves = {split: read_split(root, split) for split in SPLITS}
    shared = {u.spk for u in halves["train"]} & {u.spk for u in halves["test"]}
    if shared:
        raise UserError(f"{root}: speakers in both train/ and test/: {' '.join(c_sorted(shared))}")
    for split, utts in halves.items():
        write_data_dir(utts, Path(args.data_dir) / split, design, args.seed)
    return 0


if __name__ == "__main__":
    run_main(main)
