"""Heads: logits and gradients confined to the active classes, label re-indexing, margins."""

import math

import pytest
import torch
import torch.nn.functional as F

from dropclass_lib.errors import UserError
from dropclass_lib.heads import HEADS, build_head, reindex_labels

EMB, C = 8, 10
KWARGS = {"xvector": {"hidden_dim": 6}}


def make(name, **kw):
    torch.manual_seed(0)
    return build_head(name, EMB, C, **{**KWARGS.get(name, {}), **kw})


def test_registry_lists_every_head():
    assert set(HEADS) == {"softmax", "xvector", "l2softmax", "amsoftmax", "aamsoftmax", "sphereface", "adacos"}


def test_reindex_labels_maps_into_active_positions():
    active = torch.tensor([1, 4, 7, 9])
    labels = torch.tensor([9, 1, 7, 7, 4])
    y = reindex_labels(labels, active, C)
    assert y.tolist() == [3, 0, 2, 2, 1]
    assert torch.equal(active[y], labels)
    with pytest.raises(ValueError, match=r"\[2\]"):
        reindex_labels(torch.tensor([1, 2]), active, C)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_logits_and_gradients_touch_only_active_classes(name):
    head = make(name)
    head.train()
    active = torch.tensor([0, 2, 3, 5, 8])
    labels = torch.tensor([2, 8, 0, 5, 3, 2])
    emb = torch.randn(6, EMB, requires_grad=True)
    logits, y = head(emb, labels, active)
    assert logits.shape == (6, 5)
    assert torch.equal(active[y], labels)
    F.cross_entropy(logits, y).backward()
    grad = head.weight.grad
    inactive = torch.ones(C, dtype=torch.bool)
    inactive[active] = False
    assert torch.all(grad[inactive] == 0)
    assert torch.all(grad[active].abs().sum(1) > 0)
    bias = getattr(head, "bias", None)
    if bias is not None:
        assert torch.all(bias.grad[inactive] == 0) and torch.all(bias.grad[active] != 0)
    # changing an inactive row changes nothing
    with torch.no_grad():
        head.weight[inactive] += 5.0
    head.eval()
    p1 = head.posteriors(emb, active)
    with torch.no_grad():
        head.weight[inactive] -= 10.0
    assert torch.allclose(p1, head.posteriors(emb, active))
    assert torch.allclose(p1.sum(1), torch.ones(6))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_full_class_set_by_default_and_reset(name):
    head = make(name)
    head.eval()
    emb = torch.randn(4, EMB)
    labels = torch.tensor([0, 9, 3, 3])
    logits, y = head(emb, labels)
    assert logits.shape == (4, C) and torch.equal(y, labels)
    before = head.weight.detach().clone()
    head.reset_parameters()
    assert not torch.equal(before, head.weight)


@pytest.mark.parametrize("name", ["amsoftmax", "aamsoftmax", "sphereface"])
def test_margin_lowers_only_the_target_logit(name):
    head = make(name, **({"lambda_base": 0.0, "lambda_min": 0.0} if name == "sphereface" else {}))
    head.eval()
    emb = torch.randn(5, EMB)
    labels = torch.tensor([1, 2, 3, 4, 5])
    with_margin, y = head(emb, labels)
    plain = head.logits(emb, None, None)
    assert torch.allclose(torch.softmax(plain, 1), head.posteriors(emb))
    target = F.one_hot(y, C).bool()
    assert torch.allclose(with_margin[~target], plain[~target], atol=1e-4)
    assert torch.all(with_margin[target] < plain[target])


def test_amsoftmax_value():
    head = make("amsoftmax", s=10.0, m=0.3)
    emb = torch.randn(3, EMB)
    logits, _ = head(emb, torch.tensor([0, 1, 2]))
    cos = F.normalize(emb) @ F.normalize(head.weight).t()
    expected = 10.0 * (cos - 0.3 * F.one_hot(torch.tensor([0, 1, 2]), C))
    assert torch.allclose(logits, expected, atol=1e-5)


def test_aamsoftmax_value_and_safe_at_zero_and_pi():
    head = make("aamsoftmax", s=10.0, m=0.2)
    emb = torch.randn(3, EMB)
    labels = torch.tensor([0, 1, 2])
    logits, _ = head(emb, labels)
    cos = (F.normalize(emb) @ F.normalize(head.weight).t())[torch.arange(3), labels]
    theta = torch.acos(cos)
    expected = torch.where(theta + 0.2 < math.pi, 10 * torch.cos(theta + 0.2), 10 * (cos - math.sin(math.pi - 0.2) * 0.2))
    assert torch.allclose(logits[torch.arange(3), labels], expected, atol=1e-4)
    # embeddings exactly on (θ = 0) and opposite (θ = π) their class row
    emb = torch.stack([head.weight[0].detach() * 3, -head.weight[1].detach()]).requires_grad_()
    logits, y = head(emb, torch.tensor([0, 1]))
    F.cross_entropy(logits, y).backward()
    assert torch.isfinite(logits).all() and torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


def test_adacos_scale_adapts_in_training_only():
    head = make("adacos")
    assert head.s.item() == pytest.approx(math.sqrt(2) * math.log(C - 1))
    head.eval()
    head(torch.randn(4, EMB), torch.tensor([0, 1, 2, 3]))
    assert head.s.item() == pytest.approx(math.sqrt(2) * math.log(C - 1))
    head.train()
    head(torch.randn(4, EMB), torch.tensor([0, 1, 2, 3]))
    assert head.s.item() != pytest.approx(math.sqrt(2) * math.log(C - 1))
    assert "s" in head.state_dict()


def test_build_head_errors_name_the_problem():
    with pytest.raises(UserError, match="unknown head 'arcface'"):
        build_head("arcface", EMB, C)
    with pytest.raises(UserError, match="no option 'margin'"):
        build_head("aamsoftmax", EMB, C, margin=0.2)


# ----------------------------------------------------------------- the authors' head variants


def cos_of(head, emb):
    return F.normalize(emb) @ F.normalize(head.weight.detach()).t()


def test_aamsoftmax_without_threshold_is_cos_theta_plus_m_everywhere():
    head = make("aamsoftmax", s=10.0, m=0.5, threshold=False)
    emb = torch.randn(3, EMB)
    # the third sample sits opposite its class row: θ + m passes π, where the threshold would change it
    emb[2] = -head.weight[2].detach()
    labels = torch.tensor([0, 1, 2])
    logits, _ = head(emb, labels)
    cos = cos_of(head, emb).clamp(-1 + 1e-7, 1 - 1e-7)
    theta = torch.acos(cos[torch.arange(3), labels])
    assert theta[2] + 0.5 > math.pi
    torch.testing.assert_close(logits[torch.arange(3), labels], 10 * torch.cos(theta + 0.5), atol=1e-4, rtol=1e-4)
    target = F.one_hot(labels, C).bool()
    torch.testing.assert_close(logits[~target], 10 * cos[~target], atol=1e-5, rtol=1e-5)
    with_threshold, _ = make("aamsoftmax", s=10.0, m=0.5)(emb, labels)
    assert not torch.allclose(with_threshold[2, 2], logits[2, 2])
    with pytest.raises(UserError, match="easy_margin: true and threshold: false contradict"):
        build_head("aamsoftmax", EMB, C, easy_margin=True, threshold=False)


def test_l2softmax_with_normalized_weights_is_a_cosine_softmax():
    head = make("l2softmax", s=1.0, normalize_weight=True)
    assert head.bias is None
    emb = torch.randn(4, EMB) * 7
    logits, _ = head(emb, torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(logits, cos_of(head, emb), atol=1e-5, rtol=1e-5)
    plain = make("l2softmax", s=5.0)
    expected = 5.0 * F.normalize(emb) @ plain.weight.detach().t() + plain.bias.detach()
    torch.testing.assert_close(plain(emb, torch.tensor([0, 1, 2, 3]))[0], expected)


def test_sphereface_scaled_cos_form():
    head = make("sphereface", form="scaled_cos", m=1.35, s=20.0)
    head.train()
    emb = torch.randn(5, EMB)
    labels = torch.tensor([4, 3, 2, 1, 0])
    logits, _ = head(emb, labels)
    cos = cos_of(head, emb).clamp(-1 + 1e-7, 1 - 1e-7)
    target = F.one_hot(labels, C).bool()
    expected = torch.where(target, torch.cos(1.35 * torch.acos(cos)), cos) * 20.0
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert head.step.item() == 0  # no annealing in this form
    with pytest.raises(UserError, match="positive integer"):
        build_head("sphereface", EMB, C, m=1.35)
    with pytest.raises(UserError, match="form must be one of"):
        build_head("sphereface", EMB, C, form="arcface")


def test_softmax_without_bias():
    head = make("softmax", bias=False)
    emb = torch.randn(3, EMB)
    active = torch.tensor([1, 4, 6])
    logits, _ = head(emb, torch.tensor([1, 4, 6]), active)
    torch.testing.assert_close(logits, emb @ head.weight.detach()[active].t())
    assert [n for n, _ in head.named_parameters()] == ["weight"]


def test_xvector_head_linear_leakyrelu_bn_block():
    head = make("xvector", hidden_block="linear_leakyrelu_bn")
    head.eval()
    with torch.no_grad():
        head.hidden[2].running_mean.uniform_(-1, 1)
        head.hidden[2].running_var.uniform_(0.5, 2)
    emb = torch.randn(4, EMB)
    lin, bn = head.hidden[0], head.hidden[2]
    h = F.leaky_relu(emb @ lin.weight.detach().t() + lin.bias.detach())
    h = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight.detach() + bn.bias.detach()
    expected = h @ head.weight.detach().t() + head.bias.detach()
    torch.testing.assert_close(head(emb, torch.tensor([0, 1, 2, 3]))[0], expected, atol=1e-5, rtol=1e-5)
    assert [type(m).__name__ for m in head.hidden] == ["Linear", "LeakyReLU", "BatchNorm1d"]
    assert [type(m).__name__ for m in make("xvector").hidden] == ["ReLU", "BatchNorm1d", "Linear", "ReLU", "BatchNorm1d"]
    with pytest.raises(UserError, match="hidden_block must be one of"):
        build_head("xvector", EMB, C, hidden_block="resnet")


@pytest.mark.parametrize("name", sorted(HEADS))
def test_reset_final_layer_changes_only_the_class_rows(name):
    head = make(name)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.5)
    changed = {k: v.clone() for k, v in head.state_dict().items()}
    head.reset_final_layer()
    after = head.state_dict()
    for key in after:
        if key in ("weight", "bias"):
            assert not torch.equal(after[key], changed[key]), key
            if key == "bias":
                assert torch.all(after[key] == 0)
        else:  # hidden layers and buffers (AdaCos s, SphereFace step) untouched
            assert torch.equal(after[key], changed[key]), key
    assert before.keys() == after.keys()


@pytest.mark.parametrize("name", ["amsoftmax", "aamsoftmax", "sphereface", "adacos", "l2softmax"])
def test_unscaled_posteriors_are_the_softmax_of_cos_theta(name):
    head = make(name, **({"normalize_weight": True} if name == "l2softmax" else {}))
    head.eval()
    emb = torch.randn(4, EMB) * 3
    active = torch.tensor([0, 3, 5, 9])
    cos = cos_of(head, emb)[:, active]
    torch.testing.assert_close(head.posteriors(emb, active, scaled=False), torch.softmax(cos, 1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(head.posteriors(emb, active), torch.softmax(cos, 1), atol=1e-3)


def test_unscaled_logits_of_heads_without_a_scale_are_their_logits():
    for name in ("softmax", "xvector"):
        head = make(name)
        head.eval()
        emb = torch.randn(3, EMB)
        torch.testing.assert_close(head.posteriors(emb, scaled=False), head.posteriors(emb))
