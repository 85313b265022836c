#!/usr/bin/env python3
"""Remove utterances shorter than --min-frames frames (from utt2num_frames) and speakers with
fewer than --min-utts-per-spk utterances, repeating both until nothing changes (as Kaldi's
voxceleb recipe does before training)."""

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import filter_data_dir, validate_data_dir


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--min-frames", type=int, default=0, help="minimum frames per utterance (0: no limit)")
    p.add_argument("--min-utts-per-spk", type=int, default=0, help="minimum utterances per speaker (0: no limit)")
    p.add_argument("src_dir")
    p.add_argument("dest_dir", help="may be SRC_DIR itself")
    a = p.parse_args(argv)
    dd = validate_data_dir(a.src_dir, require_wav=False, check_files=False)
    filter_data_dir(dd, a.min_frames, a.min_utts_per_spk).write(a.dest_dir)


if __name__ == "__main__":
    run_main(main)
