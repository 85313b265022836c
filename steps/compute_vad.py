#!/usr/bin/env python3
"""Energy voice-activity detection on a data directory's features (Kaldi's compute_vad_decision.sh).

Reads DATA_DIR/feats.scp, decides per frame voiced (1) or not (0) with Kaldi's compute-vad
rule (options: --config, default the library's dropclass_lib/conf/vad.yaml, Kaldi's VoxCeleb
values; --set KEY=VALUE overrides one), writes VAD_DIR/vad_<name>.JOB.ark/.scp (Kaldi float
vectors) in --nj jobs, logs in VAD_DIR/log, then DATA_DIR/vad.scp. Re-running keeps the jobs
whose features and options are unchanged.
"""

from __future__ import annotations

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.config import load_config, parse_overrides
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.features import CONF_DIR
from dropclass_lib.parallel import Dispatch, add_dispatch_options
from dropclass_lib.vad import VadConfig, compute_vad_dir


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--nj", type=int, default=4, help="number of parallel jobs")
    add_dispatch_options(p)
    p.add_argument("--config", default=str(CONF_DIR / "vad.yaml"), help="YAML VAD options (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a VAD option, e.g. --set vad_energy_threshold=4.0 (repeatable)")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("vad_dir", metavar="VAD_DIR", help="where the archives and logs go")
    args = p.parse_args(argv)
    cfg = load_config(args.config, VadConfig, parse_overrides(args.set))
    dispatch = Dispatch.from_args(args, __file__, argv)
    with dispatch.lock(lock_output_dirs, args.vad_dir, args.data_dir):  # data_dir: vad.scp is written there
        compute_vad_dir(args.data_dir, args.vad_dir, cfg, nj=args.nj, dispatch=dispatch)
    return 0


if __name__ == "__main__":
    run_main(main)
