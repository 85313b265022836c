"""ECAPA-TDNN and the thin ResNet34: options, shapes on short inputs, receptive fields, batch
independence, parameter counts of the published sizes, attentive pooling, training through the
trainer with DropClass and rebuilding from the model file."""

import pytest
import torch

from dropclass_lib.errors import UserError
from dropclass_lib.model_io import load_model, save_model
from dropclass_lib.models import EXTRACTORS, build_extractor
from dropclass_lib.models.ecapa import SqueezeExcitation
from dropclass_lib.models.pooling import AttentiveStatsPooling, StatsPooling
from dropclass_lib.training.trainer import train
from test_training import tiny_cfg
from test_training_data import make_feats_dir

SMALL = {
    "ecapa_tdnn": dict(channels=16, scale=4, se_channels=4, attention_channels=8, mfa_channels=24, emb_dim=12),
    "resnet34": dict(base_channels=4, layers=[1, 1, 1, 1], emb_dim=12),
}


def test_registry_and_bad_options():
    assert {"ecapa_tdnn", "resnet34"} <= set(EXTRACTORS)
    with pytest.raises(UserError, match="scale must be >= 2 and divide channels"):
        build_extractor("ecapa_tdnn", channels=20, scale=8)
    with pytest.raises(UserError, match="kernel sizes must be odd"):
        build_extractor("ecapa_tdnn", channels=16, scale=4, kernel_sizes=[5, 4, 3, 3])
    with pytest.raises(UserError, match="equal lengths"):
        build_extractor("ecapa_tdnn", channels=16, scale=4, kernel_sizes=[5, 3], dilations=[1, 2, 3])
    with pytest.raises(UserError, match="layers must be a non-empty list"):
        build_extractor("resnet34", layers=[])
    with pytest.raises(UserError, match="no option 'channels'"):
        build_extractor("resnet34", channels=3)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("frames", [1, 2, 5, 60])
def test_shapes_including_inputs_shorter_than_the_receptive_field(name, frames):
    torch.manual_seed(0)
    model = build_extractor(name, input_dim=7, **SMALL[name])
    out = model(torch.randn(3, frames, 7))  # training mode: BatchNorm over 3 utterances
    assert out.shape == (3, 12) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    assert model(torch.randn(1, frames, 7)).shape == (1, 12)
    assert model.build_spec == {"name": name, "kwargs": {"input_dim": 7, **SMALL[name]}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_eval_is_deterministic_and_batch_members_do_not_mix(name):
    torch.manual_seed(0)
    model = build_extractor(name, input_dim=7, **SMALL[name])
    model(torch.randn(4, 40, 7))  # one training step's worth of BatchNorm statistics
    model.eval()
    x = torch.randn(5, 33, 7)
    with torch.no_grad():
        batch = model(x)
        assert torch.equal(batch, model(x))
        for i in range(len(x)):
            assert torch.allclose(batch[i], model(x[i:i + 1])[0], rtol=1e-4, atol=1e-5), i
        changed = x.clone()
        changed[0] += 1.0
        again = model(changed)
    assert torch.allclose(again[1:], batch[1:], rtol=1e-4, atol=1e-5) and not torch.allclose(again[0], batch[0])


def dependent_frames(frame_out: torch.Tensor, x: torch.Tensor) -> list[int]:
    """Input frames whose features change ``frame_out`` (by the gradient's support)."""
    (grad,) = torch.autograd.grad(frame_out.sum(), x)
    return torch.nonzero(grad[0].abs().sum(dim=1)).flatten().tolist()


def test_ecapa_receptive_field_is_the_span_of_its_convolutions(monkeypatch):
    # the Res2Net groups chain scale-1 = 3 convolutions per block: 1 + 4 + 3 * 2 * (2 + 3 + 4)
    # (64 channels: with 4 per Res2Net group, dead ReLUs can hide the outermost taps)
    torch.manual_seed(0)
    model = build_extractor("ecapa_tdnn", input_dim=7, **{**SMALL["ecapa_tdnn"], "channels": 64}).eval()
    assert model.receptive_field == 59
    # the squeeze-excitation is the only global path before the pooling: bypass it
    monkeypatch.setattr(SqueezeExcitation, "forward", lambda self, x: x)
    x = torch.randn(1, 200, 7, requires_grad=True)
    frames = dependent_frames(model.frame_features(x)[..., 100], x)
    assert frames == list(range(100 - 29, 100 + 30))


def test_resnet_receptive_field_and_reduced_map():
    torch.manual_seed(0)
    model = build_extractor("resnet34", input_dim=7, **SMALL["resnet34"]).eval()
    # stem 3, then per block 2 x (stride product before and after its first conv): 3 + 4 + 6 + 12 + 24
    assert model.receptive_field == 49
    x = torch.randn(1, 200, 7, requires_grad=True)
    fmap = model.frame_map(x)
    assert fmap.shape == (1, 32, 1, 25)  # 4 x 8 channels, ceil(7 / 8) bins, ceil(200 / 8) frames
    frames = dependent_frames(fmap[..., 12], x)
    assert frames == list(range(frames[0], frames[0] + 49)) and frames[0] <= 96 <= frames[-1]


def conv_params(i, o, k, bias=True):
    return i * o * k + (o if bias else 0)


def ecapa_params(feat, c, emb=192, scale=8, se=128, att=128, mfa=1536, blocks=3):
    """Parameters of the paper's layer shapes (BatchNorm: a scale and a shift per channel)."""
    w = c // scale
    block = (2 * (conv_params(c, c, 1) + 2 * c) + (scale - 1) * (conv_params(w, w, 3) + 2 * w)
             + conv_params(c, se, 1) + conv_params(se, c, 1))
    return (conv_params(feat, c, 5) + 2 * c + blocks * block + conv_params(blocks * c, mfa, 1)
            + conv_params(3 * mfa, att, 1) + conv_params(att, mfa, 1)
            + 2 * 2 * mfa + 2 * mfa * emb + emb + 2 * emb)


def resnet_params(feat, base=32, layers=(3, 4, 6, 3), emb=256):
    total, in_ch, freq = 9 * base + 2 * base, base, feat
    for stage, n in enumerate(layers):
        out = base * 2 ** stage
        for i in range(n):
            total += conv_params(in_ch, out, 9, False) + conv_params(out, out, 9, False) + 4 * out
            if in_ch != out or (i == 0 and stage > 0):
                total += conv_params(in_ch, out, 1, False) + 2 * out
            in_ch = out
        freq = freq if stage == 0 else (freq + 1) // 2
    return total + conv_params(2 * in_ch * freq, emb, 1)


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_published_sizes_have_the_published_parameter_counts():
    # Desplanques et al. 2020, Table 1: 6.2M (C=512) and 14.7M (C=1024), 80 fbanks, 192-dim embeddings
    small, large = build_extractor("ecapa_tdnn", channels=512), build_extractor("ecapa_tdnn", channels=1024)
    assert count(small) == ecapa_params(80, 512) and round(count(small) / 1e6, 1) == 6.2
    assert count(large) == ecapa_params(80, 1024) and round(count(large) / 1e6, 1) == 14.7
    wide = build_extractor("ecapa_tdnn", channels=1024, mfa_channels=3072)
    assert count(wide) == ecapa_params(80, 1024, mfa=3072)
    # WeSpeaker's ResNet34 (80 fbanks, 256-dim embedding): 6.63M
    resnet = build_extractor("resnet34")
    assert count(resnet) == resnet_params(80) and round(count(resnet) / 1e6, 2) == 6.63
    assert count(build_extractor("resnet34", input_dim=30, base_channels=16)) == resnet_params(30, base=16)


def test_attentive_pooling_with_uniform_attention_is_stats_pooling():
    torch.manual_seed(0)
    pool = AttentiveStatsPooling(6, attention_channels=4)
    x = torch.randn(3, 6, 17)
    out = pool(x)
    assert out.shape == (3, 12) and not torch.allclose(out, StatsPooling()(x), atol=1e-3)
    with torch.no_grad():
        last = pool.attention[-1]
        last.weight.zero_(), last.bias.zero_()
    assert torch.allclose(pool(x), StatsPooling()(x), atol=1e-5)
    # no global context: 1x1 attention over the frame alone
    assert AttentiveStatsPooling(6, 4, global_context=False).attention[0].in_channels == 6
    assert pool.attention[0].in_channels == 18


def test_attentive_pooling_weights_are_per_channel():
    """An attention that favours the last frame in channel 0 only moves channel 0's statistics there."""
    pool = AttentiveStatsPooling(2, attention_channels=1, global_context=False)
    x = torch.tensor([[[0.0, 0.0, 10.0], [0.0, 0.0, 10.0]]])
    with torch.no_grad():
        first, last = pool.attention[0], pool.attention[-1]
        first.weight.fill_(1.0), first.bias.zero_()       # tanh(x_0 + x_1): 0, 0, ~1
        last.weight.copy_(torch.tensor([[[50.0]], [[0.0]]])), last.bias.zero_()
    mean = pool(x)[0, :2]
    assert mean[0] > 9.99 and abs(mean[1] - 10 / 3) < 1e-5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_feats_dir(tmp_path_factory.mktemp("feats") / "train")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_trains_with_dropclass_and_is_rebuilt_from_the_model_file(tmp_path, data_dir, name):
    cfg = tiny_cfg(model={"extractor": name, "extractor_opts": SMALL[name]},
                   optim={"name": "adam", "lr": 0.01}, train={"num_iters": 6, "checkpoint_every": 6})
    assert cfg.dropclass.num_drop > 0
    result = train(cfg, data_dir, tmp_path / "exp")
    model = load_model(result.final)
    assert model.extractor.build_spec == {"name": name, "kwargs": {"input_dim": 6, **SMALL[name]}}
    assert all(torch.isfinite(p).all() for p in model.extractor.parameters())
    torch.manual_seed(cfg.train.seed)  # the trainer builds its extractor right after this seeding
    initial = build_extractor(name, input_dim=6, **SMALL[name])
    trained, start = model.extractor.state_dict(), initial.state_dict()
    moved = [k for k in start if start[k].is_floating_point() and not torch.equal(start[k], trained[k])]
    assert len(moved) > len(start) // 2, moved
    # save and load again: the rebuilt extractor gives the same embeddings
    save_model(tmp_path / "again.pt", model.extractor, model.head, model.classes)
    x = torch.randn(2, 3, 6)  # shorter than the receptive field
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "again.pt").extractor(x), model.extractor(x))
