#!/usr/bin/env python3
"""Prepare VoxCeleb2 (ROOT/dev/aac/SPK/VIDEO/NNNNN.m4a) as a Kaldi data directory.

wav.scp entries decode each m4a through an ffmpeg pipe (16 kHz, mono, 16-bit), so ffmpeg must be
on PATH where features are computed. Utterance ids are SPK-VIDEO-NNNNN. Skipped when OUT_DIR
is already prepared.
"""

import logging

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.voxceleb import is_prepared, prepare_voxceleb2, write_prepared


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--subset", default="dev", choices=["dev", "test"], help="which VoxCeleb2 part")
    parser.add_argument("vox2_root", help="VoxCeleb2 root (holding dev/aac or aac, and vox2_meta.csv if present)")
    parser.add_argument("out_dir", help="data directory to write")
    args = parser.parse_args(argv)
    if is_prepared(args.out_dir):
        logging.info("%s is already prepared, skipping", args.out_dir)
        return 0
    data = prepare_voxceleb2(args.vox2_root, args.subset)
    write_prepared(data, args.out_dir)
    logging.info("%s: %d utterances of %d speakers", args.out_dir, len(data), len(data.speakers()))
    return 0


if __name__ == "__main__":
    run_main(main)
