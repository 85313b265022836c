#!/usr/bin/env python3
"""Make the augmented copy of a clean training data directory (Kaldi voxceleb v2 augmentation).

Of the copies UTT-reverb, UTT-noise, UTT-music and UTT-babble of every clean utterance, a random
subset of ``num_aug_utts`` (config) is written to OUT_DIR. Their wav.scp entries pipe the clean
audio through ``python3 -m dropclass_lib.augment`` (see that module), so the augmented audio is
produced where features are computed; OUT_DIR/augment.yaml holds the settings and the absolute
paths of the MUSAN and RIR data directories it draws from. vad.scp entries of the clean
utterances are carried over (lengths do not change). Skipped when OUT_DIR is already prepared.
"""

import logging
from pathlib import Path

from dropclass_lib.augment import AugmentConfig, AugmentSetup, make_augmented_dir
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config
from dropclass_lib.corpora.musan_rir import RIR_SETS
from dropclass_lib.corpora.voxceleb import is_prepared, write_prepared
from dropclass_lib.datadir import DataDir


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="augmentation YAML (conf/augment.yaml)")
    parser.add_argument("--musan-prefix", required=True,
                        help="prefix of the MUSAN data dirs: PREFIX_noise, PREFIX_music, PREFIX_speech")
    parser.add_argument("--rir-prefix", required=True,
                        help=f"prefix of the RIR data dirs: {', '.join('PREFIX_' + s for s in RIR_SETS)}")
    parser.add_argument("clean_dir", help="clean training data directory (wav.scp, utt2spk; vad.scp if present)")
    parser.add_argument("out_dir", help="augmented data directory to write")
    args = parser.parse_args(argv)
    if is_prepared(args.out_dir):
        logging.info("%s is already prepared, skipping", args.out_dir)
        return 0
    config = load_config(args.config, AugmentConfig)

    def absolute(path: str) -> str:
        return str(Path(path).resolve())

    setup = AugmentSetup(config=config,
                         noise_dir=absolute(f"{args.musan_prefix}_noise"),
                         music_dir=absolute(f"{args.musan_prefix}_music"),
                         speech_dir=absolute(f"{args.musan_prefix}_speech"),
                         rir_dirs=[absolute(f"{args.rir_prefix}_{s}") for s in RIR_SETS])
    aug = make_augmented_dir(DataDir.load(args.clean_dir), setup, args.out_dir)
    write_prepared(aug, args.out_dir)
    logging.info("%s: %d augmented utterances", args.out_dir, len(aug))
    return 0


if __name__ == "__main__":
    run_main(main)
