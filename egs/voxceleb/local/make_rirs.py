#!/usr/bin/env python3
"""Prepare the simulated room impulse responses of RIRS_NOISES (openslr 28) for augmentation.

Reads ROOT/simulated_rirs/{smallroom,mediumroom}/rir_list (ROOT is the RIRS_NOISES folder;
list paths are relative to its parent) and writes DATA/rirs_smallroom and DATA/rirs_mediumroom
(utterance = rir id, speaker = room id). Directories already prepared are skipped.
"""

import logging
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.musan_rir import RIR_SETS, prepare_rirs
from dropclass_lib.corpora.voxceleb import is_prepared, write_prepared


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("rir_root", help="the RIRS_NOISES folder")
    parser.add_argument("data", help="parent folder of the data directories to write")
    args = parser.parse_args(argv)
    for room_set in RIR_SETS:
        out = Path(args.data) / f"rirs_{room_set}"
        if is_prepared(out):
            logging.info("%s is already prepared, skipping", out)
            continue
        data = prepare_rirs(args.rir_root, room_set)
        write_prepared(data, out)
        logging.info("%s: %d impulse responses in %d rooms", out, len(data), len(data.speakers()))
    return 0


if __name__ == "__main__":
    run_main(main)
