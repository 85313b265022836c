"""Exporting an extractor to ONNX or TorchScript: ``(batch, frames, feat_dim)`` float32 features
in, ``(batch, emb_dim)`` embeddings out, batch and frames free.

Both formats are made by tracing (``torch.jit.trace``; ONNX through torch's TorchScript-based
exporter, ``dynamo=False``, with ``dynamic_axes``), which records the operations of one forward
pass: a forward whose operations depend on the number of frames in Python code (a loop over
frames, a shape turned into a Python number) would be frozen at the traced length. Every export
is therefore checked against the eager module on other batch sizes and frame counts, and a
mismatch is an error saying so instead of a file that is silently wrong.

The unpadded TDNNs (``tdnn``, ``etdnn``, ``ftdnn``) replicate-pad an input shorter than their
receptive field in a Python branch that tracing cannot keep: exported, they take inputs of at
least ``min_frames`` (their receptive field) frames, recorded in the file; pad shorter ones
cyclically as the recipe does (:mod:`dropclass_lib.embeddings`).

Recorded with the model: ``feat_dim``, ``emb_dim``, ``min_frames``, ``extractor`` (its registry
name) and, when the package has one, ``frontend.yaml`` (the front end the features must be
computed with): ONNX metadata properties (``dropclass.<key>``), TorchScript extra files
(``<key>.txt``, ``frontend.yaml``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dropclass_lib.atomic import atomic_path
from dropclass_lib.errors import UserError

FORMATS = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAME = "feats", "embedding"
OPSET = 17
TOLERANCE = 1e-3
"""Largest absolute difference from the eager module accepted on the check inputs."""


def export_metadata(extractor: nn.Module, feat_dim: int, frontend_yaml: str | None) -> dict[str, str]:
    spec = getattr(extractor, "build_spec", {"name": type(extractor).__name__})
    meta = {"feat_dim": str(feat_dim), "emb_dim": str(extractor.emb_dim),
            "min_frames": str(int(getattr(extractor, "receptive_field", 1))), "extractor": spec["name"]}
    if frontend_yaml is not None:
        meta["frontend.yaml"] = frontend_yaml
    return meta


def _check_inputs(feat_dim: int, min_frames: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The traced input and two others of other batch sizes and frame counts."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(2, min_frames + 50), (3, min_frames + 7), (1, 2 * min_frames + 123)]
    inputs = [torch.randn(b, t, feat_dim, generator=gen) for b, t in shapes]
    return inputs[0], inputs[1:]


def _not_traceable(name: str, detail: str) -> UserError:
    return UserError(f"extractor {name!r} cannot be exported: its forward is not traceable with dynamic frames "
                     f"and batch ({detail}); only extractors whose operations do not depend on the input length "
                     "in Python code can be exported")


def _compare(name: str, run, inputs: list[torch.Tensor], extractor: nn.Module, what: str) -> None:
    for x in inputs:
        with torch.inference_mode():
            expected = extractor(x).numpy()
        try:
            got = np.asarray(run(x))
        except Exception as err:  # the runtime's own error types: a frozen shape fails in many ways
            raise _not_traceable(name, f"{what} fails on input {tuple(x.shape)}: {' '.join(str(err).split())[:300]}") from None
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=TOLERANCE):
            diff = np.abs(got - expected).max() if got.shape == expected.shape else f"shape {got.shape}"
            raise _not_traceable(name, f"{what} differs from the module on input {tuple(x.shape)}: {diff}")


def _trace(extractor: nn.Module, example: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the comparison below is what decides
        return torch.jit.trace(extractor, example, check_trace=False)


def export_torchscript(extractor: nn.Module, feat_dim: int, out: str | os.PathLike, meta: dict[str, str]) -> None:
    name = meta["extractor"]
    example, checks = _check_inputs(feat_dim, int(meta["min_frames"]))
    traced = _trace(extractor, example)
    _compare(name, lambda x: traced(x).detach().numpy(), checks, extractor, "the traced module")
    files = {("frontend.yaml" if k == "frontend.yaml" else f"{k}.txt"): v for k, v in meta.items()}
    with atomic_path(out) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files=files)


def export_onnx(extractor: nn.Module, feat_dim: int, out: str | os.PathLike, meta: dict[str, str]) -> None:
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install 'dropclass[export]' (or pip install onnx)") from None
    name = meta["extractor"]
    example, checks = _check_inputs(feat_dim, int(meta["min_frames"]))
    # The TorchScript exporter traces as torch.jit.trace does: check that trace first, since
    # an ONNX runtime may not be installed to check the file itself.
    traced = _trace(extractor, example)
    _compare(name, lambda x: traced(x).detach().numpy(), checks, extractor, "the traced module")
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(extractor, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch", 1: "frames"}, OUTPUT_NAME: {0: "batch"}})
        graph = onnx.load(str(tmp))
        for key, value in meta.items():
            graph.metadata_props.add(key=f"dropclass.{key}", value=value)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
        try:
            import onnxruntime
        except ImportError:
            return
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        _compare(name, lambda x: session.run(None, {INPUT_NAME: x.numpy()})[0], checks, extractor, "the ONNX model")


def export_extractor(extractor: nn.Module, feat_dim: int, fmt: str, out: str | os.PathLike,
                     frontend_yaml: str | None = None) -> dict[str, str]:
    """Export ``extractor`` (in eval mode, on the CPU) to ``out``; return the recorded metadata."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    extractor = extractor.cpu().eval()
    meta = export_metadata(extractor, feat_dim, frontend_yaml)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    (export_onnx if fmt == "onnx" else export_torchscript)(extractor, feat_dim, out, meta)
    return meta
