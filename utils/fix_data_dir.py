#!/usr/bin/env python3
"""Repair a Kaldi data directory in place: keep the utterances present in every per-utterance
file, sort all tables, regenerate spk2utt, drop trials naming removed utterances. The original
files are copied to DATA_DIR/.backup/ first; how many lines were dropped is logged."""

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import fix_data_dir


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("data_dir")
    fix_data_dir(p.parse_args(argv).data_dir)


if __name__ == "__main__":
    run_main(main)
