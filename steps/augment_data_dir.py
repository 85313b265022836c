#!/usr/bin/env python3
"""Make the augmented copy of a clean data directory; its audio is rendered by make_features.py.

    steps/augment_data_dir.py [--config FILE] [--set KEY=VALUE ...]
        [--musan-prefix data/musan] [--rir-prefix data/rirs] CLEAN_DIR OUT_DIR

One copy UTT-KIND per utterance and kind of the config's ``kinds``; of all copies a random
``num_aug_utts`` are kept. OUT_DIR gets utt2spk/spk2utt (the clean speakers), utt2aug (per
utterance: the clean source entry and the augmentation step; there is no wav.scp, since the
audio exists nowhere), the clean vad.scp and utt2dur entries (lengths do not change), and
augment.yaml: the settings and the absolute paths of the data directories the augmentation draws
from. The default config needs no download (sim_reverb, self_noise, self_babble); the MUSAN and
RIRS_NOISES kinds (reverb, noise, music, babble) need the data directories of those corpora.
Combine the result with the clean directory with utils/combine_data.py. Without --config the
library's default (dropclass_lib/conf/augment.yaml: the kinds that need no download) is used.
OUT_DIR is kept, with the features computed on it since, while the settings and the source
directories' tables are unchanged (OUT_DIR/.augment.made_from.json); otherwise it is rewritten.
"""

import logging
from pathlib import Path

from dropclass_lib.augment import AugmentConfig, AugmentSetup, augment_data_dir
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.corpora.musan_rir import MUSAN_CATEGORIES, RIR_SETS
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.features import CONF_DIR


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(CONF_DIR / "augment.yaml"), help="augmentation YAML (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set num_aug_utts=1000 (repeatable)")
    parser.add_argument("--musan-prefix", default="",
                        help=f"MUSAN data dirs {', '.join('PREFIX_' + c for c in MUSAN_CATEGORIES)} "
                             "(as egs/voxceleb/local/make_musan.py writes them)")
    parser.add_argument("--rir-prefix", default="",
                        help=f"RIR data dirs {', '.join('PREFIX_' + s for s in RIR_SETS)}, in the order of "
                             "rir_weights (as egs/voxceleb/local/make_rirs.py writes them)")
    parser.add_argument("clean_dir", metavar="CLEAN_DIR",
                        help="data directory to augment (wav.scp or utt2aug, utt2spk; vad.scp if present)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="augmented data directory to write")
    args = parser.parse_args(argv)
    config = load_config(args.config, AugmentConfig, parse_overrides(args.set))

    def absolute(prefix: str, suffix: str) -> str:
        return str(Path(f"{prefix}_{suffix}").resolve()) if prefix else ""

    setup = AugmentSetup(config=config,
                         noise_dir=absolute(args.musan_prefix, "noise"),
                         music_dir=absolute(args.musan_prefix, "music"),
                         speech_dir=absolute(args.musan_prefix, "speech"),
                         rir_dirs=[absolute(args.rir_prefix, s) for s in RIR_SETS] if args.rir_prefix else [])
    with lock_output_dirs(args.out_dir):
        count = augment_data_dir(args.clean_dir, setup, args.out_dir)
    if count is not None:
        logging.info("%s: %d augmented utterances (kinds %s)", args.out_dir, count, ", ".join(config.kinds))
    return 0


if __name__ == "__main__":
    run_main(main)
