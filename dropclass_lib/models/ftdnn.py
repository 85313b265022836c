"""The factorised TDNN (F-TDNN; Povey et al., Interspeech 2018, "Semi-orthogonal low-rank matrix
factorization for deep neural networks"), as Kaldi's ``tdnnf-layer`` builds it.

Each F-TDNN layer factorises a 2-tap TDNN weight into a *semi-orthogonal* bottleneck
projection (taps at t-s and t) followed by an affine layer (taps at t and t+s), then ReLU ->
BatchNorm, plus a scaled bypass (``bypass_scale`` * input) when input and output widths match.
A time stride ``s`` of 0 makes both factors 1-frame.

The semi-orthogonal constraint is not a reparametrisation: as in Kaldi, every ``orth_every``
optimiser steps the trainer (through :meth:`FTDNN.after_step`) moves each bottleneck matrix
``M`` towards ``M Mᵀ = α² I`` with the "floating" update of the paper:
``P = M Mᵀ, α² = tr(P Pᵀ) / tr(P), M ← M - (4 · 0.125 / α²) (P - α² I) M``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dropclass_lib.models import register_extractor
from dropclass_lib.models.tdnn import FrameStackExtractor, TDNNLayer, _check_lengths
from dropclass_lib.registry import check_int_lists, check_ints, check_numbers

UPDATE_SPEED = 0.125  # Kaldi's ConstrainOrthonormal update speed


@torch.no_grad()
def constrain_semi_orthogonal(weight: torch.Tensor) -> None:
    """One in-place step of the floating semi-orthogonal constraint on ``weight`` (rows = outputs).

    The weight is viewed as a matrix (out, in * taps); if it has more rows than columns its
    transpose is constrained instead.
    """
    m = weight.reshape(weight.shape[0], -1)
    transposed = m.shape[0] > m.shape[1]
    if transposed:
        m = m.t()
    m64 = m.double()
    p = m64 @ m64.t()
    trace_p = torch.trace(p)
    if trace_p <= 0:
        return
    alpha2 = torch.trace(p @ p.t()) / trace_p
    p -= alpha2 * torch.eye(p.shape[0], dtype=p.dtype, device=p.device)
    m64 -= (4 * UPDATE_SPEED / alpha2) * (p @ m64)
    new = m64.t() if transposed else m64
    weight.copy_(new.reshape(weight.shape).to(weight.dtype))


class FTDNNLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bottleneck_dim: int, stride: int, bypass_scale: float):
        super().__init__()
        taps, dilation = (2, stride) if stride > 0 else (1, 1)
        self.factor = nn.Conv1d(in_dim, bottleneck_dim, kernel_size=taps, dilation=dilation, bias=False)
        self.affine = nn.Conv1d(bottleneck_dim, out_dim, kernel_size=taps, dilation=dilation)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(out_dim)
        self.context_span = 2 * stride
        self.bypass_scale = bypass_scale if in_dim == out_dim else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.relu(self.affine(self.factor(x))))
        if self.bypass_scale:
            half = self.context_span // 2
            y = y + self.bypass_scale * x[..., half:x.shape[-1] - half]
        return y


class FTDNN(FrameStackExtractor):
    def __init__(self, input_dim: int, first_dim: int, first_context: int, layer_dims: Sequence[int],
                 bottleneck_dim: int, strides: Sequence[int], final_dim: int, emb_dim: int,
                 bypass_scale: float, orth_every: int):
        check_ints(input_dim=input_dim, first_dim=first_dim, first_context=first_context,
                   bottleneck_dim=bottleneck_dim, final_dim=final_dim, emb_dim=emb_dim, orth_every=orth_every)
        check_int_lists(layer_dims=layer_dims)
        check_int_lists(0, strides=strides)
        check_numbers(bypass_scale=bypass_scale)
        _check_lengths(layer_dims=layer_dims, strides=strides)
        layers = [TDNNLayer(input_dim, first_dim, first_context, 1)]
        in_dim = first_dim
        for out_dim, stride in zip(layer_dims, strides):
            layers.append(FTDNNLayer(in_dim, out_dim, bottleneck_dim, stride, bypass_scale))
            in_dim = out_dim
        layers.append(TDNNLayer(in_dim, final_dim, 1, 1))
        super().__init__(nn.Sequential(*layers), final_dim, emb_dim)
        self.orth_every = orth_every

    def constrain(self) -> None:
        for layer in self.frame_layers:
            if isinstance(layer, FTDNNLayer):
                constrain_semi_orthogonal(layer.factor.weight)

    def after_step(self, iteration: int) -> None:
        if iteration % self.orth_every == 0:
            self.constrain()


@register_extractor("ftdnn")
def factorized_tdnn(input_dim: int = 30, first_dim: int = 512, first_context: int = 5,
                    layer_dims: Sequence[int] = (1024, 1024, 1024, 1024, 1024, 1024),
                    bottleneck_dim: int = 256, strides: Sequence[int] = (1, 1, 3, 3, 3, 0),
                    final_dim: int = 1500, emb_dim: int = 512, bypass_scale: float = 0.66,
                    orth_every: int = 4) -> FTDNN:
    """First a plain 5-frame TDNN layer, then F-TDNN layers, a 1-frame ``final_dim`` layer, pooling."""
    return FTDNN(input_dim, first_dim, first_context, layer_dims, bottleneck_dim, strides,
                 final_dim, emb_dim, bypass_scale, orth_every)
