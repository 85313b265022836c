#!/usr/bin/env python3
"""Generate the embedded synthetic multi-speaker corpus with the eSpeak NG synthesiser.

Every speaker is a random point in a continuous voice space (accent, engine, pitch, vocal-tract
scaling and formants, speaking rate, breathiness, roughness, flutter); every utterance jitters
that point, reads random English text and passes through a random channel (reverberation,
band-limiting and EQ, noise). Writes 16 kHz audio under OUT_AUDIO_DIR/{train,test}/SPK/ and the
Kaldi data directories DATA_DIR/train and DATA_DIR/test (wav.scp, utt2spk, spk2utt; test also
trials and enrol.list). Training and test speakers are disjoint; test speakers may come from a
shifted sub-population (config section test_shift). The same config and seed give identical
files. Re-running completes a partial corpus and rewrites the data directories; a directory
made with another config or seed is refused unless --overwrite is given.

Example:
  local/make_synthetic_corpus.py --config conf/synthetic_corpus.yaml --nj 2 corpus/synth data/synth
"""

from __future__ import annotations

import logging
import time

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config
from dropclass_lib.corpora.synthetic import SyntheticCorpusConfig, make_corpus


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", default="conf/synthetic_corpus.yaml", help="corpus configuration (YAML)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the corpus is a function of config and seed")
    p.add_argument("--nj", type=int, default=1, help="number of parallel synthesis jobs")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a corpus made with another config or seed in OUT_AUDIO_DIR / DATA_DIR")
    p.add_argument("out_audio_dir", help="where the audio goes")
    p.add_argument("data_dir", help="where the data directories train/ and test/ go")
    args = p.parse_args(argv)
    cfg = load_config(args.config, SyntheticCorpusConfig)
    start = time.perf_counter()
    stats = make_corpus(cfg, args.seed, args.out_audio_dir, args.data_dir, nj=args.nj, overwrite=args.overwrite)
    wall = time.perf_counter() - start
    logging.info("%d utterances (%d made now, %.0f s of audio) in %.1f s; data dirs in %s/{train,test}",
                 stats["utterances"], stats["made"], stats["audio_seconds"], wall, args.data_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
