"""Classification heads over a subset of *active* classes, chosen by name from a registry.

Every head holds one weight row per training class and implements

* ``forward(emb, labels, active=None) -> (logits, labels_in_active)``: logits over the active
  classes only (``active``: sorted LongTensor of class indices, ``None`` = all), with the
  margin applied at each sample's target, and the labels re-indexed into the active subset
  (``active[labels_in_active] == labels``). Rows outside ``active`` take no part in the
  softmax and receive zero gradient: this is DropClass's reduced classification problem.
* ``posteriors(emb, active=None, scaled=True)``: softmax over the active classes *without*
  margin (what DropAdapt averages over the enrolment utterances); ``scaled=False`` takes the
  softmax of :meth:`Head.unscaled_logits` instead (raw ``cos θ`` for cosine heads: the authors'
  DropAdapt ranking, ``adapt.p_avg_logits: cosine``).
* ``reset_parameters()``: fresh random weights (DropClass's ``reset_head_each_drop``);
  ``reset_final_layer()``: fresh class rows (weight and bias) only, hidden layers and buffers kept
  (``dropclass.reset_head_layers: final``).

    head = build_head("aamsoftmax", emb_dim=512, num_classes=5994, s=30.0, m=0.2)
    logits, y = head(emb, labels, active)
    loss = torch.nn.functional.cross_entropy(logits, y)

Cosine heads compute cos θ in float32 with cos clamped to [-1 + 1e-7, 1 - 1e-7], so angles at
exactly 0 or π still give finite gradients. Note that an optimiser with momentum or weight
decay still moves rows that got a zero gradient.

Options that give the heads of the authors' public code (the ``paper`` presets; docs/METHOD.md):
``softmax`` ``bias: false``; ``xvector`` ``hidden_block: linear_leakyrelu_bn``; ``l2softmax``
``normalize_weight: true, s: 1``; ``aamsoftmax`` ``threshold: false, m: 0.5``; ``sphereface``
``form: scaled_cos, m: 1.35``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dropclass_lib.registry import Registry, check_bools, check_ints, check_numbers, require

HEADS = Registry("head")
register_head = HEADS.register
COS_EPS = 1e-7


def build_head(name: str, emb_dim: int, num_classes: int, **kwargs) -> "Head":
    return HEADS.build(name, emb_dim, num_classes, **kwargs)


def reindex_labels(labels: torch.Tensor, active: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """Map class indices into positions within ``active``; a label outside it is a ValueError."""
    if active is None:
        return labels
    lookup = torch.full((num_classes,), -1, dtype=torch.long, device=labels.device)
    lookup[active] = torch.arange(len(active), device=labels.device)
    mapped = lookup[labels]
    if (mapped < 0).any():
        missing = sorted(set(labels[mapped < 0].tolist()))
        raise ValueError(f"labels {missing[:10]} are not among the active classes")
    return mapped


def _check_scale(s: float) -> None:
    check_numbers(s=s)
    require(s > 0, f"scale s must be > 0, got {s}")


def _rows(param: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    return param if active is None else param.index_select(0, active)


def _target_mask(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, logits.shape[1]).bool()


class Head(nn.Module):
    """Base class: subclasses implement ``logits(emb, active, labels)`` (``labels=None``: no margin)."""

    def __init__(self, emb_dim: int, num_classes: int, weight_dim: int | None = None):
        super().__init__()
        check_ints(emb_dim=emb_dim)
        check_ints(2, num_classes=num_classes)
        self.emb_dim = emb_dim
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, weight_dim or emb_dim))

    def reset_parameters(self) -> None:
        self.reset_final_layer()

    def reset_final_layer(self) -> None:
        """Fresh class rows (and bias, where there is one); nothing else changes."""
        nn.init.xavier_uniform_(self.weight)

    def logits(self, emb: torch.Tensor, active: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, emb: torch.Tensor, labels: torch.Tensor, active: torch.Tensor | None = None):
        labels = reindex_labels(labels, active, self.num_classes)
        return self.logits(emb.float(), active, labels), labels

    def unscaled_logits(self, emb: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        """The logits without margin and without the head's scale: ``cos θ`` for cosine heads;
        heads with no scale (softmax, xvector, l2softmax without weight normalisation) give their
        ordinary no-margin logits."""
        return self.logits(emb, active, None)

    def posteriors(self, emb: torch.Tensor, active: torch.Tensor | None = None, scaled: bool = True) -> torch.Tensor:
        emb = emb.float()
        logits = self.logits(emb, active, None) if scaled else self.unscaled_logits(emb, active)
        return torch.softmax(logits, dim=-1)


@register_head("softmax")
class SoftmaxHead(Head):
    """Affine layer + softmax; ``bias: false`` gives the authors' plain softmax (no bias)."""

    def __init__(self, emb_dim: int, num_classes: int, bias: bool = True):
        check_bools(bias=bias)
        super().__init__(emb_dim, num_classes)
        self.bias = nn.Parameter(torch.empty(num_classes)) if bias else None
        self.reset_parameters()

    def reset_final_layer(self) -> None:
        bound = 1 / math.sqrt(self.emb_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def logits(self, emb, active, labels):
        bias = None if self.bias is None else _rows(self.bias, active)
        return F.linear(emb, _rows(self.weight, active), bias)


@register_head("xvector")
class XVectorHead(Head):
    """A hidden layer, then affine + softmax over the classes.

    ``hidden_block``: ``kaldi`` (the rest of Kaldi's x-vector network after the embedding
    affine: ReLU -> BN -> affine ``hidden_dim`` -> ReLU -> BN) or ``linear_leakyrelu_bn`` (the
    authors' code: affine ``hidden_dim`` -> LeakyReLU -> BN).
    """

    HIDDEN_BLOCKS = ("kaldi", "linear_leakyrelu_bn")

    def __init__(self, emb_dim: int, num_classes: int, hidden_dim: int = 512, hidden_block: str = "kaldi"):
        check_ints(hidden_dim=hidden_dim)
        require(hidden_block in self.HIDDEN_BLOCKS, f"hidden_block must be one of {self.HIDDEN_BLOCKS}, got {hidden_block!r}")
        super().__init__(emb_dim, num_classes, weight_dim=hidden_dim)
        if hidden_block == "kaldi":
            self.hidden = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(emb_dim), nn.Linear(emb_dim, hidden_dim),
                                        nn.ReLU(), nn.BatchNorm1d(hidden_dim))
        else:
            self.hidden = nn.Sequential(nn.Linear(emb_dim, hidden_dim), nn.LeakyReLU(), nn.BatchNorm1d(hidden_dim))
        self.bias = nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.hidden:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.reset_final_layer()

    def reset_final_layer(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def logits(self, emb, active, labels):
        return F.linear(self.hidden(emb), _rows(self.weight, active), _rows(self.bias, active))


class CosineHead(Head):
    """Heads on ``cos θ`` between the length-normalised embedding and weight rows."""

    def cosine(self, emb: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        cos = F.linear(F.normalize(emb, dim=-1), F.normalize(_rows(self.weight, active), dim=-1))
        return cos.clamp(-1 + COS_EPS, 1 - COS_EPS)

    def unscaled_logits(self, emb, active):
        return self.cosine(emb, active)


@register_head("l2softmax")
class L2SoftmaxHead(CosineHead):
    """L2-constrained softmax (Ranjan et al. 2017): the embedding is length-normalised and scaled
    by ``s`` before an ordinary affine + softmax.

    ``normalize_weight: true`` normalises the weight rows too and drops the bias: a cosine
    softmax ``s cos θ`` with no margin, which is what the authors' code calls l2softmax (with
    ``s: 1``).
    """

    def __init__(self, emb_dim: int, num_classes: int, s: float = 30.0, normalize_weight: bool = False):
        _check_scale(s)
        check_bools(normalize_weight=normalize_weight)
        super().__init__(emb_dim, num_classes)
        self.s, self.normalize_weight = s, normalize_weight
        self.bias = None if normalize_weight else nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_final_layer(self) -> None:
        super().reset_final_layer()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def logits(self, emb, active, labels):
        if self.normalize_weight:
            return self.s * self.cosine(emb, active)
        return F.linear(self.s * F.normalize(emb, dim=-1), _rows(self.weight, active), _rows(self.bias, active))

    def unscaled_logits(self, emb, active):
        if self.normalize_weight:
            return self.cosine(emb, active)
        return F.linear(F.normalize(emb, dim=-1), _rows(self.weight, active), _rows(self.bias, active))


@register_head("amsoftmax")
class AMSoftmaxHead(CosineHead):
    """Additive margin (AM-softmax / CosFace): ``s (cos θ_y - m)`` at the target, ``s cos θ`` elsewhere."""

    def __init__(self, emb_dim: int, num_classes: int, s: float = 30.0, m: float = 0.2):
        _check_scale(s)
        check_numbers(m=m)
        require(m >= 0, f"margin m must be >= 0, got {m}")
        super().__init__(emb_dim, num_classes)
        self.s, self.m = s, m
        self.reset_parameters()

    def logits(self, emb, active, labels):
        cos = self.cosine(emb, active)
        if labels is not None:
            cos = torch.where(_target_mask(cos, labels), cos - self.m, cos)
        return self.s * cos


@register_head("aamsoftmax")
class AAMSoftmaxHead(CosineHead):
    """Additive angular margin (ArcFace): ``s cos(θ_y + m)`` at the target.

    ``cos(θ + m)`` is computed as ``cos θ cos m - sin θ sin m`` with ``sin θ = sqrt(1 - cos²θ)``
    on the clamped cosine (finite gradient at θ = 0 and π). Where θ + m would pass π the
    target logit would stop decreasing in θ; there ArcFace's threshold trick uses
    ``cos θ - m sin m`` instead (or, with ``easy_margin``, no margin at all where cos θ <= 0).
    ``threshold: false`` keeps ``cos(θ + m)`` everywhere, as the authors' code (no threshold,
    no easy margin); it contradicts ``easy_margin: true``.
    """

    def __init__(self, emb_dim: int, num_classes: int, s: float = 30.0, m: float = 0.2, easy_margin: bool = False,
                 threshold: bool = True):
        _check_scale(s)
        check_numbers(m=m)
        check_bools(easy_margin=easy_margin, threshold=threshold)
        require(0 <= m < math.pi / 2, f"margin m must be in [0, pi/2), got {m}")
        require(not (easy_margin and not threshold),
                "easy_margin: true and threshold: false contradict "
                "(easy_margin is a threshold rule; threshold: false means plain cos(θ + m))")
        super().__init__(emb_dim, num_classes)
        self.s, self.m, self.easy_margin, self.threshold_rule = s, m, easy_margin, threshold
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.threshold = math.cos(math.pi - m)
        self.fallback = math.sin(math.pi - m) * m
        self.reset_parameters()

    def logits(self, emb, active, labels):
        cos = self.cosine(emb, active)
        if labels is not None:
            sin = (1.0 - cos * cos).clamp(min=0).sqrt()
            phi = cos * self.cos_m - sin * self.sin_m
            if self.easy_margin:
                phi = torch.where(cos > 0, phi, cos)
            elif self.threshold_rule:
                phi = torch.where(cos > self.threshold, phi, cos - self.fallback)
            cos = torch.where(_target_mask(cos, labels), phi, cos)
        return self.s * cos


@register_head("sphereface")
class SphereFaceHead(CosineHead):
    """SphereFace / A-softmax (Liu et al. 2017) with a multiplicative angular margin ``m`` (integer).

    Target logit ``‖x‖ ψ(θ)``, ``ψ(θ) = (-1)^k cos(mθ) - 2k`` for ``θ ∈ [kπ/m, (k+1)π/m]``, others
    ``‖x‖ cos θ``; ``cos(mθ)`` is the Chebyshev polynomial T_m(cos θ) (no arccos in the
    gradient). As in the paper the margin is annealed in:
    ``ψ' = (λ cos θ + ψ) / (1 + λ)``, ``λ = max(lambda_min, lambda_base (1 + gamma·step)^-power)``,
    the step counter being a buffer (saved with the head) advanced by every training forward.

    ``form``: ``a_softmax`` (the above) or ``scaled_cos``: target logit ``s cos(m θ)``, others
    ``s cos θ``, with any real ``m > 0``, θ from arccos, no annealing: what the authors' code
    calls sphereface (``m: 1.35``).
    """

    FORMS = ("a_softmax", "scaled_cos")

    def __init__(self, emb_dim: int, num_classes: int, m: float = 4, lambda_base: float = 1000.0,
                 lambda_min: float = 5.0, gamma: float = 0.12, power: float = 1.0, form: str = "a_softmax",
                 s: float = 30.0):
        require(form in self.FORMS, f"form must be one of {self.FORMS}, got {form!r}")
        _check_scale(s)
        check_numbers(m=m, lambda_base=lambda_base, lambda_min=lambda_min, gamma=gamma, power=power)
        if form == "a_softmax":
            require(int(m) == m and m >= 1, f"margin m must be a positive integer, got {m}")
        else:
            require(m > 0, f"margin m must be > 0, got {m}")
        super().__init__(emb_dim, num_classes)
        self.form, self.s = form, s
        self.m = int(m) if form == "a_softmax" else float(m)
        self.lambda_base, self.lambda_min, self.gamma, self.power = lambda_base, lambda_min, gamma, power
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.reset_parameters()

    def current_lambda(self) -> float:
        return max(self.lambda_min, self.lambda_base * (1 + self.gamma * self.step.item()) ** -self.power)

    def logits(self, emb, active, labels):
        cos = self.cosine(emb, active)
        if self.form == "scaled_cos":
            if labels is not None:
                cos = torch.where(_target_mask(cos, labels), torch.cos(self.m * torch.acos(cos)), cos)
            return self.s * cos
        norm = emb.norm(dim=-1, keepdim=True)
        if labels is None:
            return norm * cos
        prev, cheb = torch.ones_like(cos), cos
        for _ in range(self.m - 1):
            prev, cheb = cheb, 2 * cos * cheb - prev
        with torch.no_grad():
            k = torch.floor(self.m * torch.acos(cos) / math.pi)
        psi = torch.where(k.remainder(2) == 0, cheb, -cheb) - 2 * k
        lam = self.current_lambda()
        if self.training:
            self.step += 1
        psi = (lam * cos + psi) / (1 + lam)
        return norm * torch.where(_target_mask(cos, labels), psi, cos)


@register_head("adacos")
class AdaCosHead(CosineHead):
    """AdaCos (Zhang et al. 2019): ``s cos θ`` with no margin and a scale ``s`` adapted per batch.

    ``s`` starts at ``√2 log(C - 1)``; on each training forward,
    ``s ← log(B_avg) / cos(min(π/4, θ_med))`` with ``B_avg`` the batch mean of
    ``Σ_{j≠y} exp(s cos θ_j)`` over the active classes and ``θ_med`` the median target angle.
    ``s`` is a buffer, saved with the head.
    """

    def __init__(self, emb_dim: int, num_classes: int):
        super().__init__(emb_dim, num_classes)
        self.register_buffer("s", torch.tensor(0.0))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.s.fill_(math.sqrt(2) * math.log(self.num_classes - 1))

    def logits(self, emb, active, labels):
        cos = self.cosine(emb, active)
        if labels is not None and self.training:
            with torch.no_grad():
                target = _target_mask(cos, labels)
                b_avg = torch.where(target, torch.zeros_like(cos), torch.exp(self.s * cos)).sum(1).mean()
                theta_med = torch.acos(cos[target]).median()
                self.s.copy_(torch.log(b_avg) / torch.cos(theta_med.clamp(max=math.pi / 4)))
        return self.s * cos
