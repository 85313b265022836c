#!/usr/bin/env python3
"""Convert spk2utt to utt2spk (sorted with LC_ALL=C). Writes to OUTPUT atomically, or to
stdout without one. An utterance listed twice is an error naming the line."""

import sys

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import read_spk2utt, spk2utt_to_utt2spk
from dropclass_lib.tables import c_sorted, write_table


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("spk2utt")
    p.add_argument("output", nargs="?")
    a = p.parse_args(argv)
    utt2spk = spk2utt_to_utt2spk(read_spk2utt(a.spk2utt, strict=False))
    if a.output:
        write_table(a.output, utt2spk)
    else:
        sys.stdout.writelines(f"{utt} {utt2spk[utt]}\n" for utt in c_sorted(utt2spk))


if __name__ == "__main__":
    run_main(main)
