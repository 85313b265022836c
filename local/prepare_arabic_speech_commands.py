#!/usr/bin/env python3
"""Prepare the Arabic Speech Commands corpus as Kaldi data directories with test trials.

Corpus layout (CORPUS_ROOT is the folder holding dataset/ and test.csv):
  dataset/<keyword>/<speaker: 8 digits>_NO_<repetition: 2 digits>.wav   (or .flac)
Writes DATA_DIR/train and DATA_DIR/test (wav.scp, utt2spk, spk2utt; test also trials and
enrol.list). Utterance ids are <speaker>-<keyword>-<repetition> (spaces in keywords become
_), prefixed by the speaker so
that utt2spk and spk2utt sort alike. By default the test speakers are the authors' (the
speakers of test.csv; the validation speakers join training). Trials pair utterances of this
corpus only.

This script is the template for a new corpus: write a parser from a file's path to
(utterance id, speaker id), then let dropclass_lib.corpora.real do the rest.

Example:
  local/prepare_arabic_speech_commands.py ../shared/data/arabic_speech_commands data/arabic
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.real import add_split_options, prepare, scan_corpus
from dropclass_lib.corpora.trial_design import TrialDesign
from dropclass_lib.errors import InputFileError

# dataset/<keyword>/<speaker>_NO_<repetition>.<ext>; two keywords hold a space ("zoom in")
FILE_NAME = re.compile(r"^dataset/(?P<word>[A-Za-z0-9_ ]+)/(?P<spk>\d{8})_NO_(?P<rep>\d{2})\.(wav|flac)$")


def parse(relpath: Path) -> tuple[str, str] | None:
    """``(utterance id, speaker id)`` of a corpus file, or None if it is not named as expected."""
    m = FILE_NAME.match(relpath.as_posix())
    if m is None:
        return None
    word = m["word"].replace(" ", "_")  # ids must not contain spaces
    return f"{m['spk']}-{word}-{m['rep']}", m["spk"]


def authors_test_speakers(csv_path: Path) -> list[str]:
    """The speakers of the authors' test.csv (its rows name the original .wav files)."""
    speakers = set()
    with open(csv_path, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if lineno == 1 or not row:
                continue  # header: file,class
            m = FILE_NAME.match(row[0])
            if m is None:
                raise InputFileError(csv_path, lineno, "expected dataset/<keyword>/<speaker>_NO_<nn>.wav", ",".join(row))
            speakers.add(m["spk"])
    return sorted(speakers)


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("corpus_root", help="the corpus folder (holding dataset/ and test.csv)")
    p.add_argument("data_dir", help="where train/ and test/ go")
    p.add_argument("--random-split", action="store_true",
                   help="draw --num-test-speakers test speakers at random instead of using the authors' test.csv")
    add_split_options(p, default_num_test=6,
                      design=TrialDesign(enrol_per_speaker=10, max_targets_per_enrol=50, nontargets_per_enrol=100))
    args = p.parse_args(argv)

    utts = scan_corpus(args.corpus_root, "dataset", parse)
    test_csv = Path(args.corpus_root) / "test.csv"
    default_test = None if args.random_split or not test_csv.is_file() else authors_test_speakers(test_csv)
    prepare(args, utts, default_test)
    return 0


if __name__ == "__main__":
    run_main(main)
