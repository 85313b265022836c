#!/usr/bin/env python3
"""Speed-perturbed copy of a data directory (Kaldi's utils/data/perturb_data_dir_speed.sh).

    utils/perturb_data_dir_speed.py FACTOR SRC_DIR DEST_DIR

Utterance and speaker ids get the prefix sp<FACTOR>- (sp0.9-, sp1.1-): each speed is a new set
of speakers, as in Kaldi, WeSpeaker and 3D-Speaker. The audio is sox's "speed FACTOR" (tempo and
pitch change together: resampling), rendered when make_features.py computes the features: DEST_DIR
has utt2aug records and an augment.yaml, no wav.scp (factor 1 gives a plain renamed copy that
keeps the wav.scp entries). utt2dur is divided by the factor; feats.scp, vad.scp and
utt2num_frames are not carried (lengths change), nor trials and enrol.list. The usual 3-way set:

    for f in 0.9 1.0 1.1; do utils/perturb_data_dir_speed.py $f data/train data/train_sp$f; done
    utils/combine_data.py data/train_sp data/train_sp0.9 data/train_sp1.0 data/train_sp1.1
"""

from dropclass_lib.augment import perturb_speed
from dropclass_lib.cli import ArgumentParser, run_main


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("factor", metavar="FACTOR", type=float, help="speed factor: > 1 faster (shorter), < 1 slower")
    p.add_argument("src_dir", metavar="SRC_DIR")
    p.add_argument("dest_dir", metavar="DEST_DIR")
    a = p.parse_args(argv)
    perturb_speed(a.src_dir, a.factor, a.dest_dir).write(a.dest_dir)


if __name__ == "__main__":
    run_main(main)
