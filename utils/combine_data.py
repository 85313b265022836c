#!/usr/bin/env python3
"""Combine several Kaldi data directories into DEST_DIR. An utterance id present in two
inputs is an error (prefix one with utils/copy_data_dir.py). A per-utterance file is
combined only if every input has it, except the audio: wav.scp and utt2aug (augmented or
speed-perturbed utterances) are kept when every input has one of them. Trials are concatenated."""

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import combine, validate_data_dir


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("dest_dir")
    p.add_argument("src_dirs", nargs="+")
    a = p.parse_args(argv)
    dirs = [validate_data_dir(d, require_wav=False, check_files=False) for d in a.src_dirs]
    combine(dirs, a.src_dirs).write(a.dest_dir)


if __name__ == "__main__":
    run_main(main)
