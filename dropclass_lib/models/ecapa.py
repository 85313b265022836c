"""ECAPA-TDNN (Desplanques, Thienpondt, Demuynck, Interspeech 2020, "ECAPA-TDNN: Emphasized
Channel Attention, Propagation and Aggregation in TDNN Based Speaker Verification").

Layout (defaults = the paper's C=512 system)::

    Conv1d(k=5) -> ReLU -> BN                               C channels
    3 x SE-Res2Block (k=3, dilations 2, 3, 4)               C channels each
        1x1 conv -> ReLU -> BN
        Res2Net conv: C split into ``scale`` groups; group 1 passes, group i > 1 is
            conv(k, d) -> ReLU -> BN of (group i + output of group i-1)
        1x1 conv -> ReLU -> BN
        squeeze-excitation (time mean -> se_channels -> ReLU -> C -> sigmoid: a weight per channel)
        + block input (residual)
    multi-layer feature aggregation: concatenation of the block outputs -> 1x1 conv -> ReLU
    attentive statistics pooling with global context -> BN -> Linear(emb_dim) -> BN

With ``sum_block_inputs`` (the paper's "summed residual connections", Section 2.4) the input
of each block is the sum of the first layer's output and of all earlier blocks' outputs.

Every convolution is zero-padded to keep the number of frames ("same" padding), so any input
of one frame or more goes through without padding by the model. ``receptive_field`` is the
span of the convolutions (1 + 4 + 7·2·(2 + 3 + 4) = 131 frames by default: the Res2Net groups
form a chain of ``scale - 1`` convolutions); the squeeze-excitation and the attentive pooling
see the whole input.

A padded batch (``forward(feats, lengths)``: valid frames per member) gives each member the
numbers it gets alone: after every layer the padded frames are set to zero, which is what the
"same" padding of the next convolution reads beyond a lone utterance's end, and the
squeeze-excitation means and the pooling count the valid frames only.

The published sizes: ``channels: 512`` has 6.19 M parameters and ``channels: 1024`` 14.66 M
(80-dim input, 192-dim embedding, ``mfa_channels`` 1536 and 128 attention channels for both,
as the paper's Figure 2 and parameter counts). ``mfa_channels: 3072`` with ``channels: 1024``
is the wider aggregation some toolkits use (20.76 M).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dropclass_lib.models import register_extractor
from dropclass_lib.models.pooling import AttentiveStatsPooling, valid_frames
from dropclass_lib.registry import check_bools, check_int_lists, check_ints, require


class ConvReluBN(nn.Module):
    """Conv1d with "same" zero padding -> ReLU -> BatchNorm, the ECAPA frame layer."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(out_dim)
        self.context_span = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask``: (batch, 1, frames), 0 on padded frames, which the output then holds as 0."""
        y = self.bn(self.relu(self.conv(x)))
        return y if mask is None else y * mask


class Res2Conv(nn.Module):
    """Res2Net's hierarchical convolution: ``scale`` channel groups, each later group convolved
    together with the previous group's output, so one layer mixes several context widths."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int):
        super().__init__()
        width = channels // scale
        self.scale = scale
        self.convs = nn.ModuleList(ConvReluBN(width, width, kernel_size, dilation) for _ in range(scale - 1))
        self.context_span = (scale - 1) * self.convs[0].context_span

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        groups = x.chunk(self.scale, dim=1)
        outputs, previous = [groups[0]], None
        for conv, group in zip(self.convs, groups[1:]):
            previous = conv(group if previous is None else group + previous, mask)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


class SqueezeExcitation(nn.Module):
    """Channel rescaling from the utterance's mean frame through a ``bottleneck`` (Hu et al. 2018)."""

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv1d(channels, bottleneck, kernel_size=1), nn.ReLU(),
                                  nn.Conv1d(bottleneck, channels, kernel_size=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask``: as :class:`ConvReluBN`'s; the mean is over the valid frames (``x`` is 0 elsewhere)."""
        mean = x.mean(dim=-1, keepdim=True) if mask is None else x.sum(dim=-1, keepdim=True) / mask.sum(dim=-1, keepdim=True)
        return x * self.gate(mean)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int, se_channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            ConvReluBN(channels, channels),
            Res2Conv(channels, kernel_size, dilation, scale),
            ConvReluBN(channels, channels),
            SqueezeExcitation(channels, se_channels))
        self.context_span = self.layers[1].context_span

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return x + self.layers(x)
        y = x
        for layer in self.layers:
            y = layer(y, mask)
        return x + y


class ECAPATDNN(nn.Module):
    def __init__(self, input_dim: int, channels: int, emb_dim: int, kernel_sizes: Sequence[int],
                 dilations: Sequence[int], scale: int, se_channels: int, attention_channels: int,
                 mfa_channels: int, sum_block_inputs: bool, global_context: bool):
        super().__init__()
        check_ints(input_dim=input_dim, channels=channels, emb_dim=emb_dim, scale=scale, se_channels=se_channels,
                   attention_channels=attention_channels, mfa_channels=mfa_channels)
        check_int_lists(kernel_sizes=kernel_sizes, dilations=dilations)
        check_bools(sum_block_inputs=sum_block_inputs, global_context=global_context)
        require(len(kernel_sizes) == len(dilations) and len(kernel_sizes) >= 2,
                f"kernel_sizes and dilations need equal lengths >= 2 (the first layer, then one per "
                f"SE-Res2Block), got {list(kernel_sizes)} and {list(dilations)}")
        require(all(k % 2 == 1 for k in kernel_sizes),
                f"kernel sizes must be odd (for 'same' padding), got {list(kernel_sizes)}")
        require(scale >= 2 and channels % scale == 0,
                f"scale must be >= 2 and divide channels, got scale {scale} for {channels} channels")
        self.first = ConvReluBN(input_dim, channels, kernel_sizes[0], dilations[0])
        self.blocks = nn.ModuleList(SERes2Block(channels, k, d, scale, se_channels)
                                    for k, d in zip(kernel_sizes[1:], dilations[1:]))
        self.aggregate = nn.Sequential(nn.Conv1d(len(self.blocks) * channels, mfa_channels, kernel_size=1), nn.ReLU())
        self.pooling = AttentiveStatsPooling(mfa_channels, attention_channels, global_context)
        self.pool_bn = nn.BatchNorm1d(2 * mfa_channels)
        self.embedding = nn.Linear(2 * mfa_channels, emb_dim)
        self.emb_bn = nn.BatchNorm1d(emb_dim)
        self.sum_block_inputs = sum_block_inputs
        self.emb_dim = emb_dim
        self.receptive_field = 1 + self.first.context_span + sum(b.context_span for b in self.blocks)

    def frame_features(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats``: (batch, frames, feat_dim) -> aggregated frame features (batch, mfa_channels, frames);
        with ``lengths``, every member's padded input frames must be 0 (see the module's docstring)."""
        mask = None if lengths is None else valid_frames(lengths, feats.shape[1])
        x = self.first(feats.transpose(1, 2), mask)
        block_in, outputs = x, []
        for block in self.blocks:
            out = block(block_in, mask)
            outputs.append(out)
            block_in = block_in + out if self.sum_block_inputs else out
        return self.aggregate(torch.cat(outputs, dim=1))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats``: (batch, frames, feat_dim) -> (batch, emb_dim); ``lengths``: valid frames per
        member of a zero-padded batch (None: all)."""
        pooled = self.pool_bn(self.pooling(self.frame_features(feats, lengths), lengths))
        return self.emb_bn(self.embedding(pooled))

    def after_step(self, iteration: int) -> None:
        """Called by the trainer after every optimiser step; ECAPA has nothing to do."""


@register_extractor("ecapa_tdnn")
def ecapa_tdnn(input_dim: int = 80, channels: int = 512, emb_dim: int = 192,
               kernel_sizes: Sequence[int] = (5, 3, 3, 3), dilations: Sequence[int] = (1, 2, 3, 4),
               scale: int = 8, se_channels: int = 128, attention_channels: int = 128, mfa_channels: int = 1536,
               sum_block_inputs: bool = True, global_context: bool = True) -> ECAPATDNN:
    """ECAPA-TDNN; ``kernel_sizes``/``dilations``: the first layer's, then one pair per SE-Res2Block."""
    return ECAPATDNN(input_dim, channels, emb_dim, kernel_sizes, dilations, scale, se_channels,
                     attention_channels, mfa_channels, sum_block_inputs, global_context)
