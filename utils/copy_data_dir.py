#!/usr/bin/env python3
"""Copy a Kaldi data directory, optionally prefixing utterance ids (in every file, trials and
enrol.list included) and speaker ids."""

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import copy_data_dir


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--utt-prefix", default="", help="prefix added to every utterance id")
    p.add_argument("--spk-prefix", default="", help="prefix added to every speaker id")
    p.add_argument("src_dir")
    p.add_argument("dest_dir")
    a = p.parse_args(argv)
    copy_data_dir(a.src_dir, a.dest_dir, a.utt_prefix, a.spk_prefix)


if __name__ == "__main__":
    run_main(main)
