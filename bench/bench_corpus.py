#!/usr/bin/env python3
"""Benchmark synthetic-corpus generation: seconds of audio made per second of wall time, per core.

Makes a small corpus (the default config with fewer speakers) in a temporary directory with
--nj jobs and prints the speed. Example:  python bench/bench_corpus.py --nj 2
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config
from dropclass_lib.corpora.synthetic import SyntheticCorpusConfig, make_corpus


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="conf/synthetic_corpus.yaml", help="base corpus config")
    p.add_argument("--speakers", type=int, default=20, help="training speakers (test: a quarter, at least 2)")
    p.add_argument("--nj", type=int, default=1, help="parallel jobs (= cores used)")
    args = p.parse_args(argv)
    cfg = dataclasses.replace(load_config(args.config, SyntheticCorpusConfig), num_train_speakers=args.speakers,
                              num_test_speakers=max(2, args.speakers // 4))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        stats = make_corpus(cfg, 0, f"{tmp}/audio", f"{tmp}/data", nj=args.nj)
        wall = time.perf_counter() - start
    speed = stats["audio_seconds"] / wall
    print(f"corpus generation: {stats['utterances']} utterances, {stats['audio_seconds']:.0f} s of audio "
          f"in {wall:.1f} s with {args.nj} job(s): {speed:.0f}x realtime, {speed / args.nj:.0f}x realtime per core")
    return 0


if __name__ == "__main__":
    run_main(main)
