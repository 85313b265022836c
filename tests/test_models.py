"""Extractors: registry, shapes, Kaldi x-vector layout, short inputs, F-TDNN constraint."""

import pytest
import torch

from dropclass_lib.errors import OptionValueError, UserError
from dropclass_lib.models import EXTRACTORS, build_extractor
from dropclass_lib.models.ftdnn import FTDNNLayer

SMALL = {
    "tdnn": dict(frame_dims=[16, 16, 16, 16, 32], emb_dim=12),
    "etdnn": dict(frame_dims=[16] * 8 + [32], emb_dim=12),
    "ftdnn": dict(first_dim=16, layer_dims=[16, 16, 16], bottleneck_dim=8, strides=[1, 2, 0], final_dim=32, emb_dim=12),
}


def test_registry():
    assert {"tdnn", "etdnn", "ftdnn"} <= set(EXTRACTORS)
    with pytest.raises(UserError, match="unknown extractor 'resnet'"):
        build_extractor("resnet")
    with pytest.raises(UserError, match="no option 'width'"):
        build_extractor("tdnn", width=3)
    with pytest.raises(UserError, match="equally long"):
        build_extractor("tdnn", frame_dims=[8, 8], contexts=[5, 3, 3], dilations=[1, 2, 3])


@pytest.mark.parametrize("name", ["tdnn", "etdnn", "ftdnn", "ecapa_tdnn", "resnet34"])
@pytest.mark.parametrize("option, value, message", [
    ("emb_dim", -4, "emb_dim must be an integer >= 1, got -4"),
    ("emb_dim", 0, "emb_dim must be an integer >= 1, got 0"),
    ("input_dim", 2.5, "input_dim must be an integer >= 1, got 2.5"),
    ("input_dim", True, "input_dim must be an integer >= 1, got True"),
])
def test_every_extractor_refuses_bad_sizes_as_a_user_error(name, option, value, message):
    with pytest.raises(OptionValueError, match=f"^extractor '{name}': {message}$"):
        build_extractor(name, **{option: value})


@pytest.mark.parametrize("name, options, message", [
    ("tdnn", {"frame_dims": [8, -8, 8, 8, 8]}, r"frame_dims must be a non-empty list of integers >= 1"),
    ("tdnn", {"contexts": [0, 3, 3, 1, 1]}, r"contexts must be a non-empty list of integers >= 1"),
    ("tdnn", {"frame_dims": 512}, r"frame_dims must be a non-empty list of integers >= 1, got 512"),
    ("ftdnn", {"strides": [1, 1, 3, 3, 3, -1]}, r"strides must be a non-empty list of integers >= 0"),
    ("ftdnn", {"orth_every": 0}, r"orth_every must be an integer >= 1, got 0"),
    ("ftdnn", {"bypass_scale": "high"}, r"bypass_scale must be a finite number, got 'high'"),
    ("ecapa_tdnn", {"global_context": "yes"}, r"global_context must be true or false, got 'yes'"),
    ("resnet34", {"layers": [3, 0, 6, 3]}, r"layers must be a non-empty list of integers >= 1"),
])
def test_bad_layer_options_name_the_option(name, options, message):
    with pytest.raises(OptionValueError, match=message):
        build_extractor(name, **options)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("frames", [1, 5, 60])
def test_shapes_including_inputs_shorter_than_the_receptive_field(name, frames):
    torch.manual_seed(0)
    model = build_extractor(name, input_dim=7, **SMALL[name])
    out = model(torch.randn(3, frames, 7))
    assert out.shape == (3, 12) and torch.isfinite(out).all()
    assert model.build_spec == {"name": name, "kwargs": {"input_dim": 7, **SMALL[name]}}


def test_kaldi_xvector_layout():
    model = build_extractor("tdnn", input_dim=30)
    convs = [layer.conv for layer in model.frame_layers]
    assert [c.out_channels for c in convs] == [512, 512, 512, 512, 1500]
    assert [c.kernel_size[0] for c in convs] == [5, 3, 3, 1, 1]
    assert [c.dilation[0] for c in convs] == [1, 2, 3, 1, 1]
    assert convs[0].in_channels == 30
    assert model.embedding.in_features == 3000 and model.emb_dim == 512
    assert model.receptive_field == 15
    layer = model.frame_layers[0]
    assert [type(m).__name__ for m in layer.children()] == ["Conv1d", "ReLU", "BatchNorm1d"]


def test_short_input_is_replication_padded():
    torch.manual_seed(0)
    model = build_extractor("tdnn", input_dim=4, **SMALL["tdnn"]).eval()
    rf = model.receptive_field
    x = torch.randn(1, 3, 4)
    padded = torch.cat([x[:, :1].expand(1, (rf - 3) // 2, 4), x, x[:, -1:].expand(1, rf - 3 - (rf - 3) // 2, 4)], 1)
    assert torch.allclose(model(x), model(padded))


def test_ftdnn_semi_orthogonal_constraint_converges():
    torch.manual_seed(0)
    model = build_extractor("ftdnn", input_dim=5, **SMALL["ftdnn"])
    weights = [l.factor.weight for l in model.frame_layers if isinstance(l, FTDNNLayer)]

    def error(w):
        m = w.detach().reshape(w.shape[0], -1)
        p = m @ m.t()
        alpha2 = torch.trace(p @ p.t()) / torch.trace(p)
        return (p / alpha2 - torch.eye(p.shape[0])).abs().max().item()

    before = [error(w) for w in weights]
    assert min(before) > 0.1
    for it in range(1, 4 * 40 + 1):
        model.after_step(it)  # orth_every = 4: 40 constraint steps
    after = [error(w) for w in weights]
    assert max(after) < 1e-3, after
    model.after_step(3)  # not a multiple of orth_every: no change
    assert [error(w) for w in weights] == after
