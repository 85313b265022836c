#!/usr/bin/env python3
"""Prepare features for x-vector training (Kaldi's prepare_feats_for_egs.sh).

For every utterance of DATA_IN (needs feats.scp and vad.scp): sliding-window mean
normalisation (centred window of --cmn-window frames, no variance normalisation), then only
the voiced frames are kept. Archives go to FEAT_DIR/xvector_feats_<name>.JOB.ark/.scp in --nj
jobs (logs in FEAT_DIR/log; --cmd runs them through a job runner, as make_features.py); DATA_OUT gets feats.scp, utt2num_frames and utt2spk, spk2utt,
wav.scp, trials and enrol.list restricted to the utterances that kept at least one frame.
Utterances with no voiced frame are dropped with a warning. Re-running skips finished jobs.
"""

from __future__ import annotations

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.cmn import prepare_feats_for_egs
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.parallel import Dispatch, add_dispatch_options


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--nj", type=int, default=4, help="number of parallel jobs")
    add_dispatch_options(p)
    p.add_argument("--cmn-window", type=int, default=300, help="CMN window in frames (Kaldi --cmn-window)")
    p.add_argument("data_in", metavar="DATA_IN")
    p.add_argument("data_out", metavar="DATA_OUT")
    p.add_argument("feat_dir", metavar="FEAT_DIR", help="where the archives and logs go")
    args = p.parse_args(argv)
    dispatch = Dispatch.from_args(args, __file__, argv)
    with dispatch.lock(lock_output_dirs, args.data_out, args.feat_dir):
        prepare_feats_for_egs(args.data_in, args.data_out, args.feat_dir, nj=args.nj, cmn_window=args.cmn_window,
                              dispatch=dispatch)
    return 0


if __name__ == "__main__":
    run_main(main)
