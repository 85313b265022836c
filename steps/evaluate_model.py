#!/usr/bin/env python3
"""Evaluate a model package on a data directory's trials: embeddings, then every back-end's scores.

    steps/evaluate_model.py [--backends LIST] [--set-name NAME] [--emb-dir DIR] MODEL DATA_DIR OUT_DIR

MODEL is a model package (steps/make_model_package.py) or its final.pt; DATA_DIR has features
ready for the extractor (CMN'd, voiced frames: steps/prepare_feats_for_egs.py) and trials.
Writes the embeddings to --emb-dir (default OUT_DIR/xvectors_<set>) and, per back-end,
OUT_DIR/scores_<set>_<backend>/ (scores, metrics.json, RESULTS, det.png, hist.png), which
steps/make_results_table.py gathers. Back-ends (see dropclass_lib/evaluation.py):
  cosine            cosine after subtracting the training mean
  cosine_dm         cosine after subtracting the scored set's own mean (domain mean, no labels)
  cosine_dm_asnorm  cosine_dm + AS-norm against the training speakers (--asnorm-top-n)
  plda              LDA + PLDA, training mean
  plda_dm           LDA + PLDA centred on the domain mean
  stats             no model: cosine of the utterances' cepstral statistics (needs --raw-data)
  ivector           the package's i-vector system (ivector/): PLDA after the domain mean (--raw-data)
  ivector_raw       the same with the whole-recording i-vector system (ivector_raw/) (--raw-data)
  fused             the package's fusion.yaml of any of these (--raw-data when it fuses one above)
Back-ends the package cannot serve (no plda/, cohort.npz, fusion.yaml or i-vector system; the
raw-feature ones without --raw-data) are skipped with a message. With --raw-data the statistics
and i-vectors go to OUT_DIR/stats_<set>/, OUT_DIR/ivector_<set>/, OUT_DIR/ivector_raw_<set>/.
Everything is redone only when its inputs or settings changed. --nj N embeds in N jobs, --cmd CMD
runs them through a job runner (utils/run.sh, utils/slurm.sh), as steps/extract_embeddings.py.

Example:
  steps/evaluate_model.py --backends cosine_dm,plda exp/baseline/seed1 data/test_no_sil exp/baseline/seed1
"""

from __future__ import annotations

import logging
from pathlib import Path

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.devices import DEFAULT_DEVICE, DEVICE_HELP
from dropclass_lib.errors import UserError
from dropclass_lib.evaluation import (BACKENDS, DEFAULT_ASNORM_TOP_N, choose_backends, embed_data_dir,
                                      raw_feature_vectors, score_data_dir)
from dropclass_lib.package import open_package
from dropclass_lib.parallel import Dispatch, add_dispatch_options
from dropclass_lib.tables import read_kv

log = logging.getLogger("evaluate_model")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated back-ends")
    p.add_argument("--asnorm-top-n", type=int, default=None,
                   help=f"AS-norm top-N (default: the package's scoring.yaml, else {DEFAULT_ASNORM_TOP_N})")
    p.add_argument("--set-name", help="name of the trial set in the outputs (default: DATA_DIR's name)")
    p.add_argument("--trials", help="trial list (default DATA_DIR/trials), e.g. one of several lists on one data dir")
    p.add_argument("--emb-dir", help="where the embeddings go (default OUT_DIR/xvectors_<set>)")
    p.add_argument("--raw-data", help="data dir with the raw features (before VAD and CMN) of DATA_DIR's "
                   "utterances, for the stats, i-vector and fused back-ends (e.g. data/test for data/test_no_sil)")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--chunk-frames", type=int, default=10000,
                   help="utterances longer than this are embedded in near-equal chunks, their embeddings "
                   "averaged by frame count (default 10000 = 100 s)")
    p.add_argument("--nj", type=int, default=1, help="parallel jobs for the embeddings (one CPU thread each)")
    add_dispatch_options(p)
    p.add_argument("model", help="model package directory (or its final.pt)")
    p.add_argument("data_dir", help="data dir with feats.scp, utt2spk and trials")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    package = open_package(args.model)
    data, out = Path(args.data_dir), Path(args.out_dir)
    trials = Path(args.trials) if args.trials else data / "trials"
    if not trials.is_file():
        raise UserError(f"{trials} does not exist")
    set_name = args.set_name or data.name
    if args.nj < 1:
        raise UserError(f"--nj must be at least 1, got {args.nj}")
    dispatch = Dispatch.from_args(args, __file__, argv)
    emb_dir = args.emb_dir or out / f"xvectors_{set_name}"
    if dispatch.is_job:  # one job of the embeddings, dispatched by --cmd: nothing else
        embed_data_dir(package.model, data, emb_dir, device=args.device, chunk_frames=args.chunk_frames,
                       nj=args.nj, dispatch=dispatch)
        return 0
    usable, _ = choose_backends(package, args.backends, with_raw=args.raw_data is not None)
    scp = embed_data_dir(package.model, data, emb_dir, device=args.device, chunk_frames=args.chunk_frames,
                         nj=args.nj, dispatch=dispatch)
    raw = {} if args.raw_data is None else raw_feature_vectors(package, usable, args.raw_data, out, set_name,
                                                               set(read_kv(data / "feats.scp")))
    top_n = args.asnorm_top_n or package.scoring.get("asnorm_top_n", DEFAULT_ASNORM_TOP_N)
    for name, m in score_data_dir(package, trials, scp, out, set_name, usable, top_n, raw).items():
        print(f"{set_name} {name} EER {m['eer']:.2f}% minDCF@0.01 {m['min_dcf_0.01']:.4f}")
    return 0


if __name__ == "__main__":
    run_main(main)
