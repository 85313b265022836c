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
