#!/usr/bin/env python3
"""Prepare MUSAN (ROOT/{noise,music,speech}/SOURCE/NAME.wav) as data directories for augmentation.

Writes DATA/musan_noise, DATA/musan_music and DATA/musan_speech: wav.scp, utt2spk (each file its
own speaker) and utt2dur. Directories already prepared are skipped.
"""

import logging
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.musan_rir import MUSAN_CATEGORIES, prepare_musan
from dropclass_lib.corpora.voxceleb import is_prepared, write_prepared


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("musan_root", help="MUSAN root holding noise/, music/ and speech/")
    parser.add_argument("data", help="parent folder of the data directories to write")
    args = parser.parse_args(argv)
    for category in MUSAN_CATEGORIES:
        out = Path(args.data) / f"musan_{category}"
        if is_prepared(out):
            logging.info("%s is already prepared, skipping", out)
            continue
        data = prepare_musan(args.musan_root, category)
        write_prepared(data, out)
        logging.info("%s: %d files, %.1f h", out, len(data), sum(data.utt2dur.values()) / 3600)
    return 0


if __name__ == "__main__":
    run_main(main)
