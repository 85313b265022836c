"""steps/export_model.py: ONNX and TorchScript files give the torch module's embeddings."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import yaml
from torch import nn

from conftest import ROOT, run_cli
from dropclass_lib.errors import UserError
from dropclass_lib.export import export_extractor
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import load_model, save_model
from dropclass_lib.models import build_extractor

FEAT_DIM = 20
EXTRACTORS = {"tdnn": {"frame_dims": [16, 16, 16, 16, 32], "emb_dim": 12},
              "ecapa_tdnn": {"channels": 16, "emb_dim": 8}}


def _package(root, name: str):
    """A model package: a model file of the registry's extractor ``name`` and a frontend.yaml."""
    torch.manual_seed(0)
    ext = build_extractor(name, input_dim=FEAT_DIM, **EXTRACTORS[name])
    root.mkdir(parents=True)
    save_model(root / "final.pt", ext, build_head("softmax", ext.emb_dim, 3), ["a", "b", "c"], {})
    feats = yaml.safe_load((ROOT / "conf" / "mfcc.yaml").read_text()) | {"num_mel_bins": 24, "num_ceps": FEAT_DIM}
    (root / "frontend.yaml").write_text(yaml.safe_dump({"feats": feats, "vad": {}, "cmn_window": 300}))
    return root


def _inputs(min_frames: int) -> list[np.ndarray]:
    """Two batch sizes and two frame counts other than the traced ones."""
    rng = np.random.default_rng(1)
    return [rng.standard_normal((1, min_frames + 13, FEAT_DIM)).astype(np.float32),
            rng.standard_normal((4, min_frames + 260, FEAT_DIM)).astype(np.float32)]


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_onnx_and_torchscript_give_the_torch_embeddings(tmp_path, name):
    pkg = _package(tmp_path / "pkg", name)
    model = load_model(pkg / "final.pt")
    min_frames = int(getattr(model.extractor, "receptive_field", 1))
    code, err = run_cli("steps/export_model.py", "--format", "onnx", str(pkg), str(tmp_path / "x.onnx"))
    assert code == 0, err
    code, err = run_cli("steps/export_model.py", "--format", "torchscript", str(pkg / "final.pt"), str(tmp_path / "x.ts"))
    assert code == 0, err
    session = onnxruntime.InferenceSession(str(tmp_path / "x.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "feats" and inp.type == "tensor(float)" and isinstance(inp.shape[0], str) \
        and isinstance(inp.shape[1], str) and inp.shape[2] == FEAT_DIM
    extra = {"frontend.yaml": "", "min_frames.txt": ""}
    scripted = torch.jit.load(str(tmp_path / "x.ts"), _extra_files=extra)
    for x in _inputs(min_frames):
        with torch.no_grad():
            expected = model.extractor(torch.from_numpy(x)).numpy()
            from_ts = scripted(torch.from_numpy(x)).numpy()
        from_onnx = session.run(None, {"feats": x})[0]
        assert from_onnx.shape == expected.shape == (x.shape[0], model.extractor.emb_dim)
        np.testing.assert_allclose(from_onnx, expected, rtol=0, atol=1e-3)
        np.testing.assert_allclose(from_ts, expected, rtol=0, atol=1e-3)
    # The files say what their input must be.
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "x.onnx")).metadata_props}
    assert meta["dropclass.feat_dim"] == str(FEAT_DIM) and meta["dropclass.min_frames"] == str(min_frames)
    assert meta["dropclass.extractor"] == name
    assert meta["dropclass.frontend.yaml"] == (pkg / "frontend.yaml").read_text()
    assert extra["frontend.yaml"].decode() == (pkg / "frontend.yaml").read_text()
    assert extra["min_frames.txt"].decode() == str(min_frames)


class _FrozenLength(nn.Module):
    """Pools only the first half of the frames, counted in Python: tracing freezes the count."""

    emb_dim = 4

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(FEAT_DIM, 4)

    def forward(self, x):
        half = int(x.shape[1]) // 2
        return self.proj(x[:, :half].mean(dim=1) if half < 60 else x[:, :half].amax(dim=1))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_forward_not_traceable_with_dynamic_frames_is_a_clear_error(tmp_path, fmt):
    with pytest.raises(UserError, match="not traceable with dynamic frames"):
        export_extractor(_FrozenLength(), FEAT_DIM, fmt, tmp_path / "x")
    assert not list(tmp_path.iterdir())  # no file left behind


def test_cli_errors_are_one_line(tmp_path):
    code, err = run_cli("steps/export_model.py", "--format", "onnx", str(tmp_path / "none"), str(tmp_path / "x.onnx"))
    assert code == 1 and err.startswith("ERROR (") and "does not exist" in err and "Traceback" not in err
