#!/usr/bin/env python3
"""Make a cross-channel trial set: every trial's test side heard through another channel.

    steps/make_cross_channel_set.py [--kind sim_channel] SRC_DIR AUG_DIR DEST_DIR

SRC_DIR is a test set (trials, enrol.list, features); AUG_DIR its augmented copy
(steps/augment_data_dir.py with one kind, e.g. sim_channel: another microphone and line, its
features made as SRC_DIR's), whose utterances are named UTT-KIND. DEST_DIR gets the two combined
(utils/combine_data.py) and the trials of SRC_DIR with each test utterance replaced by its
UTT-KIND copy, the enrolment side as it was. Within a corpus whose speakers each recorded in one
session, a same-session cue (the microphone, the room) tells a target trial from a non-target one;
here both target and non-target trials cross a change of channel, as trials across recording
sessions do. Trials whose copy AUG_DIR lacks (no voiced frame) are dropped with a warning.
feats_config.yaml is copied from SRC_DIR when it has one. Run it on the raw data dirs and again on
their _no_sil counterparts.

Example:
  steps/make_cross_channel_set.py data/so_test data/so_test_xch_aug data/so_test_xch
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dropclass_lib.atomic import place_file
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.datadir import combine, validate_data_dir
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import UserError
from dropclass_lib.trials import Trials

log = logging.getLogger("make_cross_channel_set")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--kind", default="sim_channel", help="the augmentation kind of AUG_DIR (its ids end in -KIND)")
    p.add_argument("src_dir", metavar="SRC_DIR")
    p.add_argument("aug_dir", metavar="AUG_DIR")
    p.add_argument("dest_dir", metavar="DEST_DIR")
    args = p.parse_args(argv)
    src_path, aug_path, dest = Path(args.src_dir), Path(args.aug_dir), Path(args.dest_dir)
    src = validate_data_dir(src_path, require_wav=False, check_files=False)
    aug = validate_data_dir(aug_path, require_wav=False, check_files=False)
    if src.trials is None:
        raise UserError(f"{src_path}/trials does not exist: a cross-channel set needs the test set's trials")
    test = np.array([f"{u}-{args.kind}" for u in src.trials.test], dtype=object)
    kept = np.array([u in aug.utt2spk for u in test], dtype=bool)
    if not kept.any():
        raise UserError(f"{aug_path} has no {args.kind} copy of any test utterance of {src_path}/trials")
    if not kept.all():
        log.warning("%d of %d trials dropped: their test utterance has no %s copy in %s",
                    int((~kept).sum()), kept.size, args.kind, aug_path)
    combined = combine([src, aug], [str(src_path), str(aug_path)])
    combined.trials = Trials(src.trials.enrol[kept], test[kept], src.trials.target[kept])
    combined.enrol = src.enrol
    with lock_output_dirs(dest):
        combined.write(dest)
        if (src_path / "feats_config.yaml").is_file():
            place_file(src_path / "feats_config.yaml", dest / "feats_config.yaml")
    log.info("%s: %d trials, test side through %s", dest, int(kept.sum()), args.kind)
    return 0


if __name__ == "__main__":
    run_main(main)
