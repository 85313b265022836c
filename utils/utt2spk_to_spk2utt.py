#!/usr/bin/env python3
"""Convert utt2spk to spk2utt (speakers and their utterances sorted with LC_ALL=C). Writes to
OUTPUT atomically, or to stdout without one."""

import sys

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import read_utt_table, utt2spk_to_spk2utt
from dropclass_lib.tables import write_table


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("utt2spk")
    p.add_argument("output", nargs="?")
    a = p.parse_args(argv)
    spk2utt = utt2spk_to_spk2utt(read_utt_table(a.utt2spk, "utt2spk", strict=False))
    if a.output:
        write_table(a.output, spk2utt)
    else:
        sys.stdout.writelines(f"{spk} {' '.join(utts)}\n" for spk, utts in spk2utt.items())


if __name__ == "__main__":
    run_main(main)
