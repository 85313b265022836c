#!/usr/bin/env python3
"""Check a Kaldi data directory: sorted tables without duplicate keys, utt2spk and spk2utt
consistent, wav.scp/feats.scp/vad.scp/utt2num_frames/utt2dur covering exactly the utterances
of utt2spk, audio files and feature archives present, trials and enrol.list naming known
utterances. Exit status 1 with one message naming the file and line on the first problem."""

import logging

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import validate_data_dir


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--require-feats", action="store_true", help="feats.scp must exist")
    p.add_argument("--no-wav", action="store_true", help="wav.scp need not exist")
    p.add_argument("--no-file-check", action="store_true",
                   help="do not check that audio files and feature archives exist")
    p.add_argument("--require", action="append", default=[], metavar="FILE",
                   help="another file that must exist (repeatable), e.g. utt2num_frames")
    p.add_argument("data_dir")
    a = p.parse_args(argv)
    dd = validate_data_dir(a.data_dir, require_feats=a.require_feats, require_wav=not a.no_wav,
                           check_files=not a.no_file_check, required=a.require)
    logging.info("%s: OK (%d utterances, %d speakers)", a.data_dir, len(dd), len(dd.speakers()))


if __name__ == "__main__":
    run_main(main)
