#!/usr/bin/env python3
"""Extract speaker embeddings (x-vectors) of every utterance of a data directory.

    steps/extract_embeddings.py [options] MODEL DATA_DIR OUT_DIR

Features come from DATA_DIR/feats.scp as they are (the feature steps already applied CMN and
removed silence). Utterances longer than --chunk-frames are cut into near-equal chunks whose
embeddings are averaged, weighted by length. Chunks of similar length share a batch, padded,
with the padding kept out of the pooled statistics (see dropclass_lib/embeddings.py). --nj N
embeds in N jobs (one CPU thread each), --cmd CMD runs them through a job runner as Kaldi's
(CMD JOB=1:N OUT_DIR/log/job_xvector_job.JOB.log <this step> --job JOB/N). This is the extraction of the
evaluation chain (dropclass_lib.evaluation.embed_data_dir), which steps/evaluate_model.py and
steps/score_corpus.py run too.

Writes, in OUT_DIR:
  xvector.ark/.scp       one embedding per utterance (Kaldi float vectors, via kaldiio)
  spk_xvector.ark/.scp   per-speaker means over DATA_DIR/utt2spk
  num_utts.ark           text: speaker number-of-utterances
  .made_from.json        the model, data and options they were made from
Kept when made from the same model, features and options; redone otherwise.

Example:
  steps/extract_embeddings.py --device cuda exp/xvector/final.pt data/vox1 exp/xvector/xvectors_vox1
"""

from __future__ import annotations

import argparse

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.devices import DEFAULT_DEVICE, DEVICE_HELP
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.embeddings import DEFAULT_MAX_BATCH_FRAMES
from dropclass_lib.errors import UserError
from dropclass_lib.evaluation import embed_data_dir
from dropclass_lib.parallel import Dispatch, add_dispatch_options


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunk-frames", type=int, default=10000, help="longest chunk fed to the extractor (default 10000 = 100 s)")
    p.add_argument("--batch-size", type=int, default=32, help="most chunks per forward pass")
    p.add_argument("--max-batch-frames", type=int, default=DEFAULT_MAX_BATCH_FRAMES,
                   help="most frames per forward pass, counted padded to the batch's longest chunk")
    p.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    add_dispatch_options(p)
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--min-frames", type=int, default=None,
                   help="pad shorter chunks cyclically to this length (default: the extractor's receptive field)")
    p.add_argument("model", help="trained model (exp/NAME/final.pt)")
    p.add_argument("data_dir", help="data directory with feats.scp and utt2spk")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    if args.nj < 1:
        raise UserError(f"--nj must be at least 1, got {args.nj}")
    dispatch = Dispatch.from_args(args, __file__, argv)
    with dispatch.lock(lock_output_dirs, args.out_dir):
        embed_data_dir(args.model, args.data_dir, args.out_dir, device=args.device,
                       chunk_frames=args.chunk_frames, batch_size=args.batch_size, min_frames=args.min_frames,
                       max_batch_frames=args.max_batch_frames, nj=args.nj, dispatch=dispatch)
    return 0


if __name__ == "__main__":
    run_main(main)
