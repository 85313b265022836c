#!/usr/bin/env python3
"""Prepare VoxCeleb1 and its cleaned trial lists as Kaldi data directories.

Writes DATA/voxceleb1 (the utterances of --subset) and, for each list of --lists, DATA/vox1_L
(L = O, E, H): the utterances of veri_test2.txt, list_test_all2.txt or list_test_hard2.txt with
Kaldi ``trials`` (enrol test target|nontarget) and ``enrol.list``. Utterance ids are
SPK-VIDEO-NNNNN, as Kaldi's make_voxceleb1_v2.pl. A list line naming audio that is not in the
corpus is an error. Directories already prepared are skipped.
"""

import logging
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.corpora.voxceleb import (VOX1_LISTS, is_prepared, prepare_voxceleb1, voxceleb1_test_dir,
                                            write_prepared)
from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import UserError


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--subset", default="all", choices=["all", "dev", "test"],
                        help="speakers of DATA/voxceleb1 (the E and H lists need all)")
    parser.add_argument("--lists", default="O,E,H", help="comma-separated trial lists to convert (O, E, H; empty: none)")
    parser.add_argument("--lists-dir", default=None, help="folder holding the list files (default: VOX1_ROOT)")
    parser.add_argument("vox1_root", help="VoxCeleb1 root (wav/ and vox1_meta.csv, or dev/wav and test/wav)")
    parser.add_argument("data", help="parent folder of the data directories to write")
    args = parser.parse_args(argv)
    lists = [name for name in args.lists.split(",") if name]
    unknown = [name for name in lists if name not in VOX1_LISTS]
    if unknown:
        raise UserError(f"--lists: unknown list {unknown[0]!r} (known: {', '.join(VOX1_LISTS)})")
    lists_dir = Path(args.lists_dir or args.vox1_root)
    all_dir = Path(args.data) / "voxceleb1"
    if is_prepared(all_dir):
        logging.info("%s is already prepared, skipping", all_dir)
        vox1 = DataDir.load(all_dir)
    else:
        vox1 = prepare_voxceleb1(args.vox1_root, args.subset)
        write_prepared(vox1, all_dir)
        logging.info("%s: %d utterances of %d speakers", all_dir, len(vox1), len(vox1.speakers()))
    for name in lists:
        out = Path(args.data) / f"vox1_{name}"
        if is_prepared(out):
            logging.info("%s is already prepared, skipping", out)
            continue
        list_path = lists_dir / VOX1_LISTS[name]
        if not list_path.is_file():
            raise UserError(f"trial list {list_path} does not exist (download it from the VoxCeleb site, or drop "
                            f"{name} from --lists)")
        test = voxceleb1_test_dir(vox1, list_path)
        write_prepared(test, out)
        logging.info("%s: %d trials (%d target) on %d utterances", out, len(test.trials),
                     int(test.trials.target.sum()), len(test))
    return 0


if __name__ == "__main__":
    run_main(main)
