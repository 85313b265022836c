#!/usr/bin/env python3
"""Complete a trained model's directory into a model package: front end, PLDA, cohort, scoring choice.

    steps/make_model_package.py [--frontend-data DIR --vad-conf F --cmn-window N] [--lda-dim N]
        [--scoring-backend NAME] MODEL_DIR TRAIN_DATA_DIR

MODEL_DIR holds final.pt (from steps/train_xvector.py or steps/dropadapt.py). Written there:
  frontend.yaml    with --frontend-data (the data dir whose feats_config.yaml records the
                   features the model was trained on), --vad-conf and --cmn-window
  xvectors_train/  embeddings of TRAIN_DATA_DIR (features ready: CMN'd, voiced frames)
  plda/plda.npz    LDA (--lda-dim, at most speakers - 1) + PLDA on those embeddings
  cohort.npz       the training speakers' mean embeddings and the training mean
  scoring.yaml     with --scoring-backend: the back-end reported first (and --asnorm-top-n)
  ivector/         with --ivector DIR: the i-vector system DIR (steps/train_ivector.py) that the
                   `ivector` back-end scores with; it must use CMN or VAD (Kaldi's front end)
  ivector_raw/     with --ivector-raw DIR: the one the `ivector_raw` back-end scores with; it must
                   use neither (the whole recording)
The i-vector systems are hard-linked where the file system allows (else copied).
This is the one place a package is written; steps/evaluate_model.py and steps/score_corpus.py
read it. Each part is redone only when its inputs or settings changed. --nj N embeds the training
data in N jobs, --cmd CMD runs them through a job runner, as steps/extract_embeddings.py.

Example:
  steps/make_model_package.py --frontend-data data/train --vad-conf conf/vad.yaml \
      --cmn-window 300 --lda-dim 128 exp/baseline/seed1 data/train_no_sil
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dropclass_lib import provenance
from dropclass_lib.backends.ivector import EXTRACTOR_FILE as IVECTOR_EXTRACTOR, IvectorExtractor, place_system
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import UserError
from dropclass_lib.evaluation import BACKENDS, DEFAULT_ASNORM_TOP_N, embed_data_dir
from dropclass_lib.package import (COHORT_FILE, MODEL_FILE, SCORING_FILE, frontend_record, write_cohort,
                                   write_frontend, write_yaml)
from dropclass_lib.parallel import Dispatch, add_dispatch_options
from dropclass_lib.tables import read_kv
from dropclass_lib.vector_io import read_vectors

log = logging.getLogger("make_model_package")


def install_ivector_system(system: Path, model_dir: Path, slot: str) -> None:
    """Place the i-vector system ``system`` in the package's directory ``slot``, after checking
    that its front end is the one the slot's back-end stands for."""
    config = IvectorExtractor.load(system / IVECTOR_EXTRACTOR).config
    raw = config.cmn_window == 0 and not config.use_vad
    if raw != (slot == "ivector_raw"):
        option = "--" + slot.replace("_", "-")
        raise UserError(f"{option} {system}: its front end (cmn_window {config.cmn_window}, use_vad "
                        f"{str(config.use_vad).lower()}) is not the one of `{slot}`, which "
                        + ("uses neither CMN nor VAD" if slot == "ivector_raw" else "uses CMN or VAD"))
    place_system(system, model_dir / slot)


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--frontend-data", help="data dir whose feats_config.yaml the model's features were made with")
    p.add_argument("--vad-conf", help="VAD options file the training data went through (with --frontend-data)")
    p.add_argument("--cmn-window", type=int, default=300, help="sliding CMN window of the training data, frames")
    p.add_argument("--lda-dim", type=int, default=200, help="LDA dimension before PLDA (capped at speakers - 1)")
    p.add_argument("--num-em-iters", type=int, default=10, help="PLDA EM iterations (Kaldi: 10)")
    p.add_argument("--scoring-backend", choices=BACKENDS, help="back-end the package reports first")
    p.add_argument("--asnorm-top-n", type=int, default=DEFAULT_ASNORM_TOP_N, help="AS-norm cohort top-N")
    p.add_argument("--ivector", metavar="DIR", help="i-vector system (CMN, voiced frames) for the ivector back-end")
    p.add_argument("--ivector-raw", metavar="DIR",
                   help="i-vector system without CMN and VAD for the ivector_raw back-end")
    p.add_argument("--device", default="auto", help="torch device for the embeddings: auto, cpu, cuda")
    p.add_argument("--nj", type=int, default=1, help="parallel jobs for the embeddings (one CPU thread each)")
    add_dispatch_options(p)
    p.add_argument("model_dir", help="directory holding final.pt")
    p.add_argument("train_data", help="the model's training data (features ready for the extractor)")
    args = p.parse_args(argv)
    model_dir, train = Path(args.model_dir), Path(args.train_data)
    model = model_dir / MODEL_FILE
    if not model.is_file():
        raise UserError(f"{model} does not exist: train the model first")
    if args.lda_dim < 1 or args.num_em_iters < 1 or args.asnorm_top_n < 1 or args.nj < 1:
        raise UserError("--lda-dim, --num-em-iters, --asnorm-top-n and --nj must be positive")
    dispatch = Dispatch.from_args(args, __file__, argv)
    if dispatch.is_job:  # one job of the training embeddings, dispatched by --cmd: nothing else
        embed_data_dir(model, train, model_dir / "xvectors_train", device=args.device, nj=args.nj, dispatch=dispatch)
        return 0
    if args.frontend_data:
        if not args.vad_conf:
            raise UserError("--frontend-data needs --vad-conf (the VAD the training data went through)")
        write_frontend(model_dir, frontend_record(Path(args.frontend_data) / "feats_config.yaml",
                                                  args.vad_conf, args.cmn_window))
    scp = embed_data_dir(model, train, model_dir / "xvectors_train", device=args.device, nj=args.nj, dispatch=dispatch)

    keys, x = None, None
    plda_dir = model_dir / "plda"
    with provenance.stage(plda_dir, {"lda_dim": args.lda_dim, "num_em_iters": args.num_em_iters},
                          [scp, *provenance.scp_archives(scp), train / "utt2spk"], outputs=("plda.npz",), what=f"PLDA {plda_dir}") as st:
        if not st.fresh:
            keys, x = read_vectors(scp)
            utt2spk = read_kv(train / "utt2spk")
            missing = [k for k in keys if k not in utt2spk]
            if missing:
                raise UserError(f"{scp}: {len(missing)} embedding(s) have no speaker in {train}/utt2spk, "
                                f"e.g. {missing[0]!r}")
            labels = [utt2spk[k] for k in keys]
            num_spk = len(set(labels))
            lda_dim = min(args.lda_dim, num_spk - 1, x.shape[1])
            if lda_dim < args.lda_dim:
                log.warning("LDA dimension %d capped at %d (%d speakers, %d-dim embeddings)",
                            args.lda_dim, lda_dim, num_spk, x.shape[1])
            PldaBackend.train(x, labels, lda_dim=lda_dim, num_em_iters=args.num_em_iters).save(plda_dir / "plda.npz")

    spk_scp = model_dir / "xvectors_train" / "spk_xvector.scp"
    cohort_dir = model_dir / "cohort"
    with provenance.stage(cohort_dir, {}, [scp, spk_scp, *provenance.scp_archives(scp)], outputs=(), what=f"cohort {model_dir / COHORT_FILE}") as st:
        if not st.fresh or not (model_dir / COHORT_FILE).is_file():
            if x is None:
                keys, x = read_vectors(scp)
            speakers, means = read_vectors(spk_scp)
            write_cohort(model_dir, speakers, means, x.astype(np.float64).mean(axis=0))
    for slot, system in (("ivector", args.ivector), ("ivector_raw", args.ivector_raw)):
        if system:
            install_ivector_system(Path(system), model_dir, slot)
    if args.scoring_backend:
        write_yaml(model_dir / SCORING_FILE, {"backend": args.scoring_backend, "asnorm_top_n": args.asnorm_top_n})
    log.info("model package %s is complete", model_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
