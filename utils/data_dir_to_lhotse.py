#!/usr/bin/env python3
"""Convert a Kaldi data directory (wav.scp, utt2spk; utt2dur used when present) into lhotse
manifests OUT_DIR/recordings.jsonl.gz and OUT_DIR/supervisions.jsonl.gz: one recording and
one whole-recording supervision per utterance. wav.scp pipes ('cmd |') are kept as lhotse
'command' sources."""

from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.lhotse_io import RECORDINGS, SUPERVISIONS, data_dir_to_lhotse, save_manifest


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--sampling-rate", type=int, default=None,
                   help="sample rate of the audio (default: read from the audio; must be the same for all)")
    p.add_argument("--num-jobs", type=int, default=1, help="parallel readers when measuring durations")
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    a = p.parse_args(argv)
    recordings, supervisions = data_dir_to_lhotse(a.data_dir, a.sampling_rate, a.num_jobs)
    save_manifest(recordings, Path(a.out_dir) / RECORDINGS)
    save_manifest(supervisions, Path(a.out_dir) / SUPERVISIONS)


if __name__ == "__main__":
    run_main(main)
