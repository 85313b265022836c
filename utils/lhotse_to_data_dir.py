#!/usr/bin/env python3
"""Convert lhotse manifests (a RecordingSet and a SupervisionSet file) into a Kaldi data
directory: wav.scp ('command' sources become 'cmd |'), utt2spk, spk2utt, utt2dur. Every
supervision must cover one whole mono recording; the supervision ids become utterance ids."""

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.lhotse_io import load_manifests, lhotse_to_data_dir


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("recordings", help="e.g. manifests/recordings.jsonl.gz")
    p.add_argument("supervisions", help="e.g. manifests/supervisions.jsonl.gz")
    p.add_argument("data_dir")
    a = p.parse_args(argv)
    lhotse_to_data_dir(*load_manifests(a.recordings, a.supervisions)).write(a.data_dir)


if __name__ == "__main__":
    run_main(main)
