#!/usr/bin/env python3
"""Write a subset of a Kaldi data directory: the utterances of a list, the speakers of a list,
the first N utterances, N random utterances (seeded), or the first N utterances of each
speaker. Every table is restricted (trials to those with both sides kept)."""

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import (subset_first, subset_per_speaker, subset_random,
                                   subset_speakers, subset_utts, validate_data_dir)
from dropclass_lib.tables import iter_table


def _first_column(path):
    return [key for _, key, _, _ in iter_table(path, min_fields=1, check_unique=False)]


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--utt-list", metavar="FILE", help="keep the utterances named in the first column of FILE")
    how.add_argument("--spk-list", metavar="FILE", help="keep the speakers named in the first column of FILE")
    how.add_argument("--first", type=int, metavar="N", help="keep the first N utterances (sorted order)")
    how.add_argument("--random", type=int, metavar="N", help="keep N utterances drawn at random (see --seed)")
    how.add_argument("--per-spk", type=int, metavar="N", help="keep the first N utterances of every speaker")
    p.add_argument("--seed", type=int, default=0, help="random seed of --random")
    p.add_argument("src_dir")
    p.add_argument("dest_dir")
    a = p.parse_args(argv)
    dd = validate_data_dir(a.src_dir, require_wav=False, check_files=False)
    if a.utt_list:
        out = subset_utts(dd, _first_column(a.utt_list))
    elif a.spk_list:
        out = subset_speakers(dd, _first_column(a.spk_list))
    elif a.first is not None:
        out = subset_first(dd, a.first)
    elif a.random is not None:
        out = subset_random(dd, a.random, a.seed)
    else:
        out = subset_per_speaker(dd, a.per_spk)
    out.write(a.dest_dir)


if __name__ == "__main__":
    run_main(main)
