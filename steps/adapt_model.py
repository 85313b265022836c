#!/usr/bin/env python3
"""Adapt a model package to unlabelled in-domain audio, into a new model package, in one command.

    steps/adapt_model.py [options] MODEL_PACKAGE TRAIN_DIR AUDIO OUT_PACKAGE

MODEL_PACKAGE is a model package (steps/make_model_package.py) or its final.pt; TRAIN_DIR the
training data dir it was trained on (features ready for the extractor: CMN'd voiced frames,
as steps/dropadapt.py takes it). AUDIO is the in-domain audio, no labels needed: a folder of
audio files (searched recursively; files may lie in the folder itself), a wav.scp file (with
its utt2spk beside it, if any), or a Kaldi data dir with wav.scp, whose enrol.list (if any)
names the utterances to adapt to; otherwise all its utterances are used. Speakers only matter
to DropAdapt's uniform_agg variant (a folder: the parent folder's name, or --spk-from-filename).

The audio goes through the package's front end (its frontend.yaml: features, energy VAD,
sliding CMN), then DropAdapt (steps/dropadapt.py, with --config and --set) adapts the extractor
to it; the back-ends are made again on TRAIN_DIR's embeddings by the adapted extractor
(steps/make_model_package.py: LDA + PLDA, cohort), and --backend-adapt adapts them too, on the
same audio (dropclass_lib/adaptation.py): mean (re-centring on the in-domain mean), plda
(Kaldi's ivector-adapt-plda) or both (Kaldi's SRE16 recipe). --dropadapt false keeps the
extractor as it is: back-end adaptation alone, the usual competitor of DropAdapt.

Written in OUT_PACKAGE, a complete model package for steps/score_corpus.py,
steps/evaluate_model.py and dropclass_lib.load_model: final.pt, frontend.yaml (the source's),
scoring.yaml (the source's, if any), plda/plda.npz, cohort.npz, the source's i-vector systems
(ivector/, ivector_raw/: they do not depend on the extractor), and adaptation.yaml (what was
adapted, to what). The work lies in OUT_PACKAGE/adapt/: data/, feats/, data_no_sil/ (the
in-domain data), dropadapt/ (the DropAdapt run), model/ (the training back-ends),
xvectors_in_domain/. The source's fusion.yaml is not carried over (its weights were trained on
the source model's scores). A re-run with the same inputs and settings does nothing (an
interrupted one resumes); with any of them changed it is an error naming the differences,
unless --overwrite.

Examples:
  steps/adapt_model.py --config conf/dropadapt.yaml exp/baseline/seed1 data/train_no_sil \\
      my_speakers/ exp/baseline/seed1_adapted
  steps/adapt_model.py --dropadapt false --backend-adapt both exp/baseline/seed1 data/train_no_sil \\
      my_speakers/ exp/baseline/seed1_backend_adapted
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import re
from pathlib import Path

from dropclass_lib import provenance
from dropclass_lib.adaptation import BACKEND_ADAPTATIONS, write_adapted_backends
from dropclass_lib.atomic import atomic_open, place_file
from dropclass_lib.backends.ivector import place_system, system_files
from dropclass_lib.backends.plda import PldaAdaptConfig, PldaBackend
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.cmn import prepare_feats_for_egs
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.corpus_input import AUDIO_EXTENSIONS, Corpus, load_input, resolve_frontend
from dropclass_lib.devices import DEFAULT_DEVICE, DEVICE_HELP, resolve_device
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.dropadapt import DropAdapt, DropAdaptConfig
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.evaluation import embed_data_dir
from dropclass_lib.features import make_features
from dropclass_lib.package import (FRONTEND_FILE, MODEL_FILE, PLDA_FILE, SCORING_FILE, open_package, write_yaml)
from dropclass_lib.parallel import check_scp_safe
from dropclass_lib.tables import c_sorted, iter_lines, read_kv
from dropclass_lib.training.record import provenance_settings
from dropclass_lib.vad import compute_vad_dir
from dropclass_lib.vector_io import read_vectors

log = logging.getLogger("adapt_model")
ADAPTATION_FILE = "adaptation.yaml"
DEFAULT_LDA_DIM = 200  # steps/make_model_package.py's, for a source package without plda/


def _make_model_package():
    """steps/make_model_package.py as a module: the one code that writes a package's back-ends."""
    path = Path(__file__).resolve().with_name("make_model_package.py")
    spec = importlib.util.spec_from_file_location("make_model_package", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_corpus(audio: Path, pattern: re.Pattern | None) -> Corpus:
    """The in-domain corpus: a folder (files directly in it allowed), a wav.scp (with the utt2spk
    beside it) or a data dir."""
    if audio.is_file() and audio.suffix.lower() in AUDIO_EXTENSIONS:
        raise UserError(f"{audio} is one audio file: give the folder that holds the in-domain audio, a wav.scp "
                        "or a data dir")
    beside = audio.with_name("utt2spk")
    if audio.is_file() and pattern is None and beside.is_file():
        return Corpus.from_wav_scp(audio, beside, None)
    return load_input(audio, pattern, flat_ok=True)


def adaptation_utts(audio: Path, corpus: Corpus) -> list[str]:
    """The utterances to adapt to: those of AUDIO/enrol.list (named by id or file path), else all."""
    enrol = audio / "enrol.list"
    if not (audio.is_dir() and enrol.is_file()):
        return c_sorted(corpus.wav)
    utts = set()
    for lineno, line in iter_lines(enrol):
        name = line.split()[0]
        if name not in corpus.aliases:
            raise InputFileError(enrol, lineno, f"utterance {name!r} is not in {audio}/wav.scp", line)
        utts.add(corpus.aliases[name])
    if not utts:
        raise UserError(f"{enrol}: no utterances")
    return c_sorted(utts)


def audio_inputs(audio: Path, corpus: Corpus) -> list[Path]:
    """The files the in-domain corpus was read from: its lists, and the audio files it names."""
    if audio.is_dir():
        lists = [audio / n for n in ("wav.scp", "utt2spk", "enrol.list")]
    else:
        lists = [audio, audio.with_name("utt2spk")]
    files = [Path(rx) for rx in corpus.wav.values() if not rx.endswith("|") and Path(rx).is_file()]
    return [p for p in lists if p.is_file()] + sorted(files)


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", default=None,
                   help="DropAdapt configuration (YAML, as steps/dropadapt.py; default: the defaults of DropAdaptConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DropAdapt config key, e.g. --set adapt.num_drop=200 (repeatable)")
    p.add_argument("--dropadapt", choices=("true", "false"), default="true",
                   help="adapt the extractor with DropAdapt (false: only the back-ends, with --backend-adapt)")
    p.add_argument("--backend-adapt", choices=BACKEND_ADAPTATIONS, default="none",
                   help="adapt the back-ends to the same audio too: mean re-centring, PLDA adaptation, or both")
    p.add_argument("--mean-diff-scale", type=float, default=PldaAdaptConfig.mean_diff_scale,
                   help="PLDA adaptation: weight of the in-domain mean's offset in its total covariance (Kaldi's)")
    p.add_argument("--within-covar-scale", type=float, default=PldaAdaptConfig.within_covar_scale,
                   help="PLDA adaptation: share of the excess variance given to the within-speaker covariance")
    p.add_argument("--between-covar-scale", type=float, default=PldaAdaptConfig.between_covar_scale,
                   help="PLDA adaptation: share given to the between-speaker covariance")
    p.add_argument("--lda-dim", type=int, default=None,
                   help=f"LDA dimension of the new PLDA (default: the source package's, else {DEFAULT_LDA_DIM})")
    p.add_argument("--num-em-iters", type=int, default=10, help="PLDA EM iterations (Kaldi: 10)")
    p.add_argument("--spk-from-filename", default=None, metavar="REGEX",
                   help="a folder's speaker ids: group 1 (or the whole match) of REGEX in each file name "
                        "(default: the parent folder's name; a file directly in AUDIO is its own speaker)")
    p.add_argument("--nj", type=int, default=1, help="parallel jobs for features, VAD, CMN and the embeddings")
    p.add_argument("--device", default=DEFAULT_DEVICE,
                   help=f"{DEVICE_HELP}; for p_avg and the embeddings (fine-tuning uses train.device)")
    p.add_argument("--overwrite", action="store_true",
                   help="adapt again when OUT_PACKAGE was made with other settings or inputs")
    p.add_argument("model_package", help="model package directory (exp/NAME/seedK) or its final.pt")
    p.add_argument("train_dir", help="the training data dir the model was trained on (feats.scp, utt2spk)")
    p.add_argument("audio", help="in-domain audio: a folder of audio files, a wav.scp, or a data dir")
    p.add_argument("out_package", help="the adapted model package (a new directory)")
    args = p.parse_args(argv)
    args.dropadapt = args.dropadapt == "true"

    source = open_package(args.model_package)
    train, audio, out = Path(args.train_dir), Path(args.audio), Path(args.out_package)
    if out.resolve() == source.root.resolve():
        raise UserError(f"OUT_PACKAGE {out} is the source package: write the adapted one elsewhere")
    if not args.dropadapt and args.backend_adapt == "none":
        raise UserError("--dropadapt false with --backend-adapt none adapts nothing: choose mean, plda or both")
    if args.num_em_iters < 1 or args.nj < 1 or (args.lda_dim is not None and args.lda_dim < 1):
        raise UserError("--lda-dim, --num-em-iters and --nj must be positive")
    plda_config = PldaAdaptConfig(args.mean_diff_scale, args.within_covar_scale, args.between_covar_scale)
    plda_config.validate()
    cfg = load_config(args.config, DropAdaptConfig, parse_overrides(args.set)) if args.dropadapt else None
    try:
        pattern = re.compile(args.spk_from_filename) if args.spk_from_filename else None
    except re.error as err:
        raise UserError(f"--spk-from-filename {args.spk_from_filename!r} is not a valid regular expression ({err})") from None
    lda_dim = args.lda_dim or (PldaBackend.load(source.plda).lda.shape[0] if source.plda else DEFAULT_LDA_DIM)
    feat_cfg, vad_cfg, cmn_window = resolve_frontend(source, None, None, None)
    corpus = read_corpus(audio, pattern)
    utts = adaptation_utts(audio, corpus)
    check_scp_safe(out / "adapt" / "feats", "OUT_PACKAGE")

    plda_adapt = dataclasses.asdict(plda_config) if args.backend_adapt in ("plda", "both") else None
    settings = {"dropadapt": provenance_settings(cfg) if cfg else False, "backend_adapt": args.backend_adapt,
                # one string, so that turning PLDA adaptation on or off is one named difference
                "plda_adapt": ", ".join(f"{k} {v:g}" for k, v in plda_adapt.items()) if plda_adapt else None,
                "lda_dim": lda_dim, "num_em_iters": args.num_em_iters, "spk_from_filename": args.spk_from_filename}
    inputs = [source.model, source.root / FRONTEND_FILE, *provenance.data_inputs(train), *audio_inputs(audio, corpus)]
    if source.root.joinpath(SCORING_FILE).is_file():
        inputs.append(source.root / SCORING_FILE)
    inputs += [path for system in source.ivectors.values() for path in system_files(system)]
    provenance.input_identity(inputs)   # a missing input is an error before OUT_PACKAGE is made
    with lock_output_dirs(out):
        st = provenance.open_stage(out, settings, inputs, outputs=(MODEL_FILE, str(PLDA_FILE), "cohort.npz",
                                                                  ADAPTATION_FILE),
                                   strict=True, overwrite=args.overwrite, what=f"adapted package {out}",
                                   partial=("adapt",))
        if st.fresh:
            return 0
        work = out / "adapt"
        data, feats, no_sil = work / "data", work / "feats", work / "data_no_sil"
        corpus.write(data)
        with atomic_open(data / "enrol.list", "w", encoding="utf-8") as f:
            f.writelines(f"{u}\n" for u in utts)
        make_features(data, feats, feat_cfg, nj=args.nj)
        compute_vad_dir(data, feats, vad_cfg, nj=args.nj)
        prepare_feats_for_egs(data, no_sil, feats, nj=args.nj, cmn_window=cmn_window)
        kept = read_kv(no_sil / "feats.scp")
        voiced = [u for u in utts if u in kept]
        if not voiced:
            raise UserError(f"none of the {len(utts)} utterances of {audio} has a voiced frame: nothing to adapt to")

        model_dir = work / "model"   # the adapted extractor and its training back-ends
        if args.dropadapt:
            adapted = DropAdapt(cfg, str(source.model), str(train), str(no_sil), str(work / "dropadapt"),
                                resolve_device(args.device), overwrite=args.overwrite).run()
            place_file(adapted, model_dir / MODEL_FILE)
        else:
            place_file(source.model, model_dir / MODEL_FILE)
        place_file(source.root / FRONTEND_FILE, model_dir / FRONTEND_FILE)
        _make_model_package().main(["--lda-dim", str(lda_dim), "--num-em-iters", str(args.num_em_iters),
                                    "--device", args.device, "--nj", str(args.nj), str(model_dir), str(train)])
        in_domain = None
        if args.backend_adapt != "none":
            scp = embed_data_dir(model_dir / MODEL_FILE, no_sil, work / "xvectors_in_domain", device=args.device,
                                 nj=args.nj)
            keys, matrix = read_vectors(scp)
            row = {k: i for i, k in enumerate(keys)}
            in_domain = matrix[[row[u] for u in voiced]]
        write_adapted_backends(open_package(model_dir), out, args.backend_adapt, in_domain, plda_config)
        place_file(model_dir / MODEL_FILE, out / MODEL_FILE)
        place_file(source.root / FRONTEND_FILE, out / FRONTEND_FILE)
        if source.scoring:   # every key kept, those this step does not know included
            write_yaml(out / SCORING_FILE, source.scoring)
        else:
            (out / SCORING_FILE).unlink(missing_ok=True)
        for slot, system in source.ivectors.items():   # the i-vector systems do not depend on the extractor
            place_system(system, out / slot)
        if source.fusion is not None:
            log.warning("%s: not carried over (its weights were trained on the source model's scores): "
                        "train a fusion for the adapted package with steps/train_fusion.py", source.fusion)
        write_yaml(out / ADAPTATION_FILE, {
            "source": str(source.root.resolve()), "train_data": str(train.resolve()), "audio": str(audio.resolve()),
            "adaptation_utterances": len(voiced), "dropadapt": bool(args.dropadapt),
            "dropadapt_config": str((work / "dropadapt" / "config.yaml").resolve()) if args.dropadapt else None,
            "backend_adapt": args.backend_adapt, "plda_adapt": plda_adapt})
        st.finish()
    log.info("adapted model package %s is complete (%s%s)", out, "DropAdapt" if args.dropadapt else "no DropAdapt",
             "" if args.backend_adapt == "none" else f", back-ends adapted: {args.backend_adapt}")
    return 0


if __name__ == "__main__":
    run_main(main)
