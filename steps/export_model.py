#!/usr/bin/env python3
"""Export a trained extractor to ONNX or TorchScript, to run it without this project.

    steps/export_model.py --format onnx|torchscript MODEL OUT

MODEL is a model package (exp/X/seed1/: final.pt, frontend.yaml) or a final.pt. OUT takes
float32 features (batch, frames, feat_dim) -- computed, CMN'd and silence-removed as the
model's frontend.yaml says -- and gives embeddings (batch, emb_dim); batch and frames are free
(at least min_frames frames: the receptive field of the unpadded TDNNs, 1 for the others).
The export is checked against the torch module on other batch sizes and frame counts; an
extractor whose forward cannot be traced with dynamic frames is an error. The file records
feat_dim, emb_dim, min_frames, the extractor's name and frontend.yaml (ONNX: metadata
properties dropclass.<key>; TorchScript: extra files <key>.txt and frontend.yaml).

Examples:
  steps/export_model.py --format onnx exp/baseline/seed1 exp/baseline/seed1/extractor.onnx
  steps/export_model.py --format torchscript exp/baseline/seed1/final.pt extractor.ts
"""

from __future__ import annotations

import argparse
import logging

from dropclass_lib.cli import ArgumentParser, run_main
from dropclass_lib.errors import UserError
from dropclass_lib.export import FORMATS, export_extractor
from dropclass_lib.model_io import extractor_input_dim, load_model
from dropclass_lib.package import FRONTEND_FILE, package_paths

log = logging.getLogger("export_model")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", choices=FORMATS, required=True, help="onnx (onnxruntime and others) or torchscript (torch.jit.load)")
    p.add_argument("model", metavar="MODEL", help="model package directory or final.pt")
    p.add_argument("out", metavar="OUT", help="the exported file")
    args = p.parse_args(argv)
    model_file, package = package_paths(args.model)
    model = load_model(model_file)
    feat_dim = extractor_input_dim(model.extractor)
    if feat_dim is None:
        raise UserError(f"{model_file}: the extractor's feature dimension is not recorded, so no input can be traced")
    frontend = package / FRONTEND_FILE
    if not frontend.is_file():
        log.warning("%s does not exist: the export will not record the front end its features need", frontend)
    meta = export_extractor(model.extractor, feat_dim, args.format, args.out,
                            frontend.read_text(encoding="utf-8") if frontend.is_file() else None)
    log.info("%s extractor (%s -> %s dims, at least %s frames) -> %s (%s)", meta["extractor"], meta["feat_dim"],
             meta["emb_dim"], meta["min_frames"], args.out, args.format)
    return 0


if __name__ == "__main__":
    run_main(main)
