#!/usr/bin/env python3
"""Prepare the DSPSpeech-20 corpus as Kaldi data directories with test trials.

Corpus layout (CORPUS_ROOT is the folder holding speech_data/):
  speech_data/<speaker: 11 digits>/<speaker>-<word: 2 digits>-<repetition: 2 digits>.wav   (or .flac)
Writes DATA_DIR/train and DATA_DIR/test (wav.scp, utt2spk, spk2utt; test also trials and
enrol.list). The file name (without extension) is the utterance id: it already starts with the
speaker id. The corpus has no official split: --num-test-speakers speakers are drawn with --seed
(or named with --test-speakers). Trials pair utterances of this corpus only.

Example:
  local/prepare_dspspeech20.py ../shared/data/dspspeech20 data/dspspeech20
"""

from __future__ import annotations

import re
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.real import add_split_options, prepare, scan_corpus
from dropclass_lib.corpora.trial_design import TrialDesign

# speech_data/<speaker>/<speaker>-<word>-<repetition>.<ext>
FILE_NAME = re.compile(r"^speech_data/(?P<spk>\d{11})/(?P<utt>(?P=spk)-\d{2}-\d{2})\.(wav|flac)$")


def parse(relpath: Path) -> tuple[str, str] | None:
    """``(utterance id, speaker id)`` of a corpus file, or None if it is not named as expected."""
    m = FILE_NAME.match(relpath.as_posix())
    return (m["utt"], m["spk"]) if m else None


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("corpus_root", help="the corpus folder (holding speech_data/)")
    p.add_argument("data_dir", help="where train/ and test/ go")
    add_split_options(p, default_num_test=8,
                      design=TrialDesign(enrol_per_speaker=10, max_targets_per_enrol=40, nontargets_per_enrol=80))
    args = p.parse_args(argv)

    prepare(args, scan_corpus(args.corpus_root, "speech_data", parse))
    return 0


if __name__ == "__main__":
    run_main(main)
