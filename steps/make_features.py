#!/usr/bin/env python3
"""Compute MFCC or log-mel filterbank features for a data directory (Kaldi's make_mfcc.sh).

Reads DATA_DIR/utt2spk and wav.scp (files or commands ending in '|'), splits the utterances
into --nj contiguous chunks, one process each, and writes FEAT_DIR/raw_<type>_<name>.JOB.ark/.scp
(Kaldi archives, float32 frames x dims), then DATA_DIR/feats.scp, DATA_DIR/utt2num_frames and
DATA_DIR/feats_config.yaml (the settings used; compute_vad.py reads it). Per-job logs go to
LOG_DIR (default DATA_DIR/log). With --cmd (e.g. "$train_cmd"), the jobs run through that job
runner as Kaldi's: CMD JOB=1:N LOG_DIR/job_raw_<type>_<name>.JOB.log <this step> --job JOB/N.
Without --config the library's defaults are used
(dropclass_lib/conf/<feat-type>.yaml: Kaldi's VoxCeleb settings); --set KEY=VALUE overrides one
key. Re-running keeps the jobs whose utterances and settings are unchanged.
"""

from __future__ import annotations

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.features import CONFIG_TYPES, config_feat_type, default_config_path, make_features
from dropclass_lib.parallel import Dispatch, add_dispatch_options, check_scp_safe


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--nj", type=int, default=4, help="number of parallel jobs")
    add_dispatch_options(p)
    p.add_argument("--feat-type", choices=sorted(CONFIG_TYPES), default=None,
                   help="kind of features (default: the config's feat_type, else mfcc)")
    p.add_argument("--config", default=None,
                   help="YAML feature options (default: the library's dropclass_lib/conf/<feat-type>.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a feature option, e.g. --set dither=0 (repeatable)")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("feat_dir", metavar="FEAT_DIR", help="where the archives go")
    p.add_argument("log_dir", metavar="LOG_DIR", nargs="?", default=None, help="per-job logs (default DATA_DIR/log)")
    args = p.parse_args(argv)
    check_scp_safe(args.feat_dir, "FEAT_DIR")
    feat_type = args.feat_type or (config_feat_type(args.config) if args.config else None) or "mfcc"
    config = args.config or default_config_path(feat_type)
    cfg = load_config(config, CONFIG_TYPES[feat_type], parse_overrides(args.set))
    dispatch = Dispatch.from_args(args, __file__, argv)
    with dispatch.lock(lock_output_dirs, args.feat_dir, args.data_dir):  # data_dir: feats.scp is written there
        make_features(args.data_dir, args.feat_dir, cfg, nj=args.nj, log_dir=args.log_dir, dispatch=dispatch)
    return 0


if __name__ == "__main__":
    run_main(main)
