#!/usr/bin/env python3
"""Prepare Speakers in the Wild (SITW) dev and eval, core-core condition, as Kaldi data directories.

Writes DATA/sitw_dev and DATA/sitw_eval, each holding the core enrolment files (utterance
MODEL_FILE, speaker MODEL) and the test files of keys/core-core.lst (utterance FILE, its own
speaker, as Kaldi's make_sitw.sh), with ``trials`` whose enrolment side is the model's enrolment
utterance, and ``enrol.list``. Directories already prepared are skipped.
"""

import logging
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.voxceleb import is_prepared, prepare_sitw, write_prepared


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--subsets", default="dev,eval", help="comma-separated SITW parts to prepare")
    parser.add_argument("sitw_root", help="SITW root holding dev/ and eval/ (audio/, lists/, keys/)")
    parser.add_argument("data", help="parent folder of the data directories to write")
    args = parser.parse_args(argv)
    for subset in args.subsets.split(","):
        out = Path(args.data) / f"sitw_{subset}"
        if is_prepared(out):
            logging.info("%s is already prepared, skipping", out)
            continue
        data = prepare_sitw(args.sitw_root, subset)
        write_prepared(data, out)
        logging.info("%s: %d trials on %d utterances", out, len(data.trials), len(data))
    return 0


if __name__ == "__main__":
    run_main(main)
