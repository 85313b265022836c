"""The thin ResNet34 speaker extractor: 2-D convolutions over the (frequency x time) feature map.

"Thin" ResNet34 (Xie et al., ICASSP 2019; the ResNet34 of WeSpeaker, Wang et al., ICASSP 2023)
is He et al.'s ResNet34 at a quarter of its widths: a 3x3 conv stem of ``base_channels``, then
four stages of BasicBlocks (two 3x3 conv -> BN layers and an identity or 1x1-conv shortcut)
with ``layers`` = [3, 4, 6, 3] blocks of widths ``base_channels`` x 1, 2, 4, 8 (32-64-128-256 by
default); the first block of stages 2-4 has stride 2 in both axes. The final map (channels x
reduced frequency x reduced time) is flattened over channels and frequency, mean+std pooled
over time and projected to the ``emb_dim`` embedding by one linear layer.

Convolutions are zero-padded ("same" up to the strides), so any input of one frame or more
goes through: ``frames`` become ``ceil(frames / 8)`` and ``input_dim`` bins ``ceil(input_dim / 8)``.
``receptive_field`` is the time span one output frame sees (225 input frames by default).

A zero-padded batch (``forward(feats, lengths)``: valid frames per member) gives each member the
numbers it gets alone: after every layer the frames beyond a member's length at that layer's
resolution (``(length - 1) // stride + 1`` after a strided one) are set to zero, which is what the
next convolution's zero padding reads beyond a lone utterance's end, and only the valid output
frames are pooled.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dropclass_lib.models import register_extractor
from dropclass_lib.models.pooling import StatsPooling, valid_frames
from dropclass_lib.registry import check_int_lists, check_ints


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, -> ReLU (He et al. 2016)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(conv3x3(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch), nn.ReLU(),
                                  conv3x3(out_ch, out_ch), nn.BatchNorm2d(out_ch))
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU()
        self.stride = stride

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames of inputs of ``lengths`` valid frames (3x3 conv, padding 1)."""
        return (lengths - 1) // self.stride + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: (batch, channels, freq, frames); with ``lengths``, padded frames are 0 in and out."""
        if lengths is None:
            return self.relu(self.body(x) + self.shortcut(x))
        mask = valid_frames(self.out_lengths(lengths), (x.shape[-1] - 1) // self.stride + 1).unsqueeze(1)
        conv1, bn1, relu, conv2, bn2 = self.body
        y = bn2(conv2(relu(bn1(conv1(x))) * mask))
        return self.relu(y + self.shortcut(x)) * mask


class ThinResNet(nn.Module):
    def __init__(self, input_dim: int, base_channels: int, layers: Sequence[int], emb_dim: int):
        super().__init__()
        check_ints(input_dim=input_dim, base_channels=base_channels, emb_dim=emb_dim)
        check_int_lists(layers=layers)
        self.stem = nn.Sequential(conv3x3(1, base_channels), nn.BatchNorm2d(base_channels), nn.ReLU())
        blocks, in_ch, freq = [], base_channels, input_dim
        for stage, num_blocks in enumerate(layers):
            out_ch, stride = base_channels * 2 ** stage, 1 if stage == 0 else 2
            for i in range(num_blocks):
                blocks.append(BasicBlock(in_ch, out_ch, stride if i == 0 else 1))
                in_ch = out_ch
            freq = (freq - 1) // stride + 1  # a 3x3 conv with padding 1 and this stride
        self.blocks = nn.Sequential(*blocks)
        self.pooling = StatsPooling()
        self.embedding = nn.Linear(2 * in_ch * freq, emb_dim)
        self.emb_dim = emb_dim
        self.receptive_field = self._time_receptive_field()

    def _time_receptive_field(self) -> int:
        """Input frames seen by one output frame: each 3x3 conv adds 2 x (product of earlier strides)."""
        span, jump = 1 + 2, 1  # the stem
        for block in self.blocks:
            span += 2 * jump
            jump *= block.stride
            span += 2 * jump
        return span

    def frame_map(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats``: (batch, frames, feat_dim) -> (batch, channels, reduced freq, reduced frames);
        with ``lengths``, every member's padded input frames must be 0 (see the module's docstring)."""
        x = self.stem(feats.transpose(1, 2).unsqueeze(1))
        if lengths is None:
            return self.blocks(x)
        x = x * valid_frames(lengths, x.shape[-1]).unsqueeze(1)
        for block in self.blocks:
            x = block(x, lengths)
            lengths = block.out_lengths(lengths)
        return x

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames of the final map for inputs of ``lengths`` valid frames."""
        for block in self.blocks:
            lengths = block.out_lengths(lengths)
        return lengths

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats``: (batch, frames, feat_dim) -> (batch, emb_dim); ``lengths``: valid frames per
        member of a zero-padded batch (None: all)."""
        x = self.frame_map(feats, lengths)
        return self.embedding(self.pooling(x.flatten(1, 2), None if lengths is None else self.out_lengths(lengths)))

    def after_step(self, iteration: int) -> None:
        """Called by the trainer after every optimiser step; the ResNet has nothing to do."""


@register_extractor("resnet34")
def thin_resnet34(input_dim: int = 80, base_channels: int = 32, layers: Sequence[int] = (3, 4, 6, 3),
                  emb_dim: int = 256) -> ThinResNet:
    """Thin ResNet34; ``layers`` gives the BasicBlocks per stage (stride 2 from the second stage on)."""
    return ThinResNet(input_dim, base_channels, layers, emb_dim)
