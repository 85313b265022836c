#!/usr/bin/env python3
"""Score any corpus's trials with an already trained model package, without retraining.

    steps/score_corpus.py --model exp/X/seed0 [--backends LIST] INPUT TRIALS OUT_DIR

INPUT is a Kaldi data directory (holding wav.scp, optionally utt2spk), a wav.scp file, or a
folder of audio files (searched recursively; one utterance per file, the speaker is the name
of the file's parent folder or what --spk-from-filename captures from the file name).

TRIALS is a Kaldi trial list (``enrol test target|nontarget``) or a VoxCeleb one
(``1|0 enrol test``). Its utterances may be named by utterance id or, for a folder of audio,
by the file's path relative to the folder (with or without its extension).

The audio goes through the features, energy VAD and sliding CMN that the model was trained
with (the package's frontend.yaml; --feat-conf, --vad-conf and --cmn-window override it), then
the model's embeddings and every back-end the package serves (see steps/evaluate_model.py:
cosine_dm always, cosine and cosine_dm_asnorm with cohort.npz, plda and plda_dm with plda/,
stats always, ivector and ivector_raw with the package's i-vector systems, fused with fusion.yaml),
or those of --backends. MODEL is a model package directory (steps/make_model_package.py:
final.pt, frontend.yaml, plda/, cohort.npz, scoring.yaml) or the final.pt inside one.
Written under OUT_DIR: data/ (the Kaldi data dir with trials), feats/ (archives), data_no_sil/,
xvectors/, the statistics and i-vectors the back-ends need (stats_<set>/, ivector_<set>/,
ivector_raw_<set>/), scores_<set>_<backend>/ per back-end (set: --set-name, default OUT_DIR's name), and
results.txt (EER, minDCF@0.01, minDCF@0.001 per back-end; the back-end the package's
scoring.yaml names comes first, marked "default"). Every part follows the freshness rule: a
re-run redoes only what its inputs or settings changed.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from dropclass_lib.atomic import atomic_open
from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.cmn import prepare_feats_for_egs
from dropclass_lib.corpus_input import Corpus, load_input, resolve_frontend
from dropclass_lib.devices import DEFAULT_DEVICE, DEVICE_HELP
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.evaluation import (BACKENDS, DEFAULT_ASNORM_TOP_N, choose_backends, embed_data_dir,
                                      raw_feature_vectors, score_data_dir)
from dropclass_lib.features import make_features
from dropclass_lib.package import open_package
from dropclass_lib.parallel import check_scp_safe
from dropclass_lib.tables import c_sorted, iter_lines, read_kv
from dropclass_lib.trials import LABELS, Trials, read_trials, write_trials
from dropclass_lib.vad import compute_vad_dir

log = logging.getLogger("score_corpus")
def read_any_trials(path: Path, aliases: dict[str, str]) -> Trials:
    """Read a Kaldi or VoxCeleb trial list, naming utterances by id or relative path."""
    enrol, test, target = [], [], []
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 3:
            raise InputFileError(path, lineno, "expected 'enrol test target|nontarget' or '1|0 enrol test'", line)
        if parts[2] in LABELS:
            e, t, is_target = parts[0], parts[1], LABELS[parts[2]]
        elif parts[0] in ("0", "1"):
            e, t, is_target = parts[1], parts[2], parts[0] == "1"
        else:
            raise InputFileError(path, lineno, "expected 'enrol test target|nontarget' or '1|0 enrol test'", line)
        for name in (e, t):
            if name not in aliases:
                raise InputFileError(path, lineno, f"utterance {name!r} is not in the input", line)
        enrol.append(aliases[e])
        test.append(aliases[t])
        target.append(is_target)
    if not target:
        raise UserError(f"{path}: no trials")
    return Trials(np.array(enrol, dtype=object), np.array(test, dtype=object), np.array(target, dtype=bool))


def _same_trials(a: Trials, b: Trials) -> bool:
    return all(np.array_equal(x, y) for x, y in ((a.enrol, b.enrol), (a.test, b.test), (a.target, b.target)))


def write_corpus_data_dir(corpus: Corpus, trials: Trials, data: Path) -> None:
    """data/ with the utterances of the trials, the trials and enrol.list; files whose content is
    unchanged keep their times, so the later parts find their inputs as they were."""
    corpus.keep(set(trials.utts()))
    corpus.write(data)
    if not (data / "trials").is_file() or not _same_trials(read_trials(data / "trials"), trials):
        write_trials(data / "trials", trials)
    with atomic_open(data / "enrol.list", "w", encoding="utf-8") as f:
        f.write("".join(u + "\n" for u in c_sorted(trials.enrol_utts())))


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model package directory (exp/NAME/seedK) or its final.pt")
    p.add_argument("--backends", default=None,
                   help=f"comma-separated back-ends among {', '.join(BACKENDS)} (default: all the package serves)")
    p.add_argument("--asnorm-top-n", type=int, default=None,
                   help=f"AS-norm top-N (default: the package's scoring.yaml, else {DEFAULT_ASNORM_TOP_N})")
    p.add_argument("--set-name", default=None, help="name of the trial set in the outputs (default: OUT_DIR's name)")
    p.add_argument("--spk-from-filename", default=None, metavar="REGEX",
                   help="speaker id = group 1 (or the whole match) of REGEX searched in each file name "
                        "(default: the parent folder's name; for a wav.scp: its utt2spk, else the utterance id)")
    p.add_argument("--feat-conf", default=None, help="feature options (default: the package's frontend.yaml)")
    p.add_argument("--vad-conf", default=None, help="VAD options (default: the package's frontend.yaml)")
    p.add_argument("--cmn-window", type=int, default=None, help="sliding CMN window (default: the package's frontend.yaml)")
    p.add_argument("--nj", type=int, default=2, help="parallel jobs for features, VAD and CMN")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("input", help="Kaldi data dir, wav.scp file, or folder of audio files")
    p.add_argument("trials", help="trial list (Kaldi or VoxCeleb format)")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    out = Path(args.out_dir)
    package = open_package(args.model)
    backends, default = choose_backends(package, args.backends, with_raw=True)
    try:
        pattern = re.compile(args.spk_from_filename) if args.spk_from_filename else None
    except re.error as err:
        raise UserError(f"--spk-from-filename {args.spk_from_filename!r} is not a valid regular expression ({err})") from None
    feat_cfg, vad_cfg, cmn_window = resolve_frontend(package, args.feat_conf, args.vad_conf, args.cmn_window)
    corpus = load_input(Path(args.input), pattern)
    trials = read_any_trials(Path(args.trials), corpus.aliases)
    check_scp_safe(out / "feats", "OUT_DIR")
    set_name = args.set_name or out.resolve().name
    top_n = args.asnorm_top_n or package.scoring.get("asnorm_top_n", DEFAULT_ASNORM_TOP_N)

    data, data_no_sil, feats = out / "data", out / "data_no_sil", out / "feats"
    with lock_output_dirs(out):
        write_corpus_data_dir(corpus, trials, data)
        make_features(data, feats, feat_cfg, nj=args.nj)
        compute_vad_dir(data, feats, vad_cfg, nj=args.nj)
        prepare_feats_for_egs(data, data_no_sil, feats, nj=args.nj, cmn_window=cmn_window)
        dropped = sorted(set(trials.utts()) - set(read_kv(data_no_sil / "utt2spk")))
        if dropped:
            raise UserError(f"{len(dropped)} utterance(s) of the trials have no voiced frame, e.g. {dropped[0]!r}: "
                            "they cannot be scored (lower the VAD threshold with --vad-conf, or remove them from the trials)")
        scp = embed_data_dir(package.model, data_no_sil, out / "xvectors", device=args.device)
        raw = raw_feature_vectors(package, backends, data, out, set_name, set(read_kv(data_no_sil / "feats.scp")))
        results = score_data_dir(package, data / "trials", scp, out, set_name, backends, top_n, raw)
        lines = [f"{name} {m['eer']:.2f} {m['min_dcf_0.01']:.4f} {m['min_dcf_0.001']:.4f}"
                 + (" default" if name == default else "") for name, m in ((n, results[n]) for n in backends)]
        with atomic_open(out / "results.txt", "w", encoding="utf-8") as f:
            f.write(f"# backend EER% minDCF@0.01 minDCF@0.001 (trial set {set_name}; \"default\": "
                    "the package's scoring.yaml back-end)\n" + "\n".join(lines) + "\n")
    print((out / "results.txt").read_text(), end="")
    return 0


if __name__ == "__main__":
    run_main(main)
