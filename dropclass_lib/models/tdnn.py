"""The Kaldi x-vector TDNN (Snyder et al., ICASSP 2018) and the frame-layer stack it is built from.

Kaldi's ``xvector`` network: five frame-level TDNN layers (512, 512, 512, 512, 1500 units with
contexts 5/3/3/1/1 frames at dilations 1/2/3/1/1: offsets {-2..2}, {-2,0,2}, {-3,0,3}, {0},
{0}), each affine -> ReLU -> BatchNorm, then mean+std pooling and one affine layer whose output
is the 512-dim embedding (Kaldi's ``tdnn6.affine``). The rest of Kaldi's network (ReLU, BN,
a second 512 hidden layer, softmax) is the ``xvector`` head in :mod:`dropclass_lib.heads`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dropclass_lib.models import register_extractor
from dropclass_lib.models.pooling import StatsPooling, pad_to_receptive_field
from dropclass_lib.registry import check_int_lists, check_ints, require


class TDNNLayer(nn.Module):
    """Conv1d over time (``context`` taps, ``dilation`` apart) -> ReLU -> BatchNorm, as Kaldi."""

    def __init__(self, in_dim: int, out_dim: int, context: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=context, dilation=dilation)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(out_dim)
        self.context_span = (context - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.relu(self.conv(x)))


class FrameStackExtractor(nn.Module):
    """Frame layers -> (replication pad if short) -> stats pooling -> affine embedding.

    Subclasses supply ``frame_layers`` (an ``nn.Sequential`` whose layers have a
    ``context_span`` attribute: frames of context they consume) and ``frame_out_dim``.
    """

    def __init__(self, frame_layers: nn.Sequential, frame_out_dim: int, emb_dim: int):
        super().__init__()
        self.frame_layers = frame_layers
        self.pooling = StatsPooling()
        self.embedding = nn.Linear(2 * frame_out_dim, emb_dim)
        self.emb_dim = emb_dim
        self.receptive_field = 1 + sum(layer.context_span for layer in frame_layers)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats``: (batch, frames, feat_dim) -> (batch, emb_dim). ``lengths``: valid frames
        per member of a padded batch (None: all). The layers are unpadded convolutions, so a
        member's first ``length - receptive_field + 1`` outputs see only its own frames: those
        are pooled. A member shorter than the receptive field is replication-padded on its own."""
        if lengths is None:
            x = pad_to_receptive_field(feats.transpose(1, 2), self.receptive_field)
            return self.embedding(self.pooling(self.frame_layers(x)))
        x = feats.transpose(1, 2)
        short = (lengths < self.receptive_field).nonzero().flatten().tolist()
        if short:
            x = F.pad(x, (0, max(0, self.receptive_field - x.shape[-1]))).clone()  # never write into feats
            for i in short:
                x[i, :, :self.receptive_field] = pad_to_receptive_field(x[i:i + 1, :, :int(lengths[i])],
                                                                        self.receptive_field)[0]
            lengths = lengths.clamp(min=self.receptive_field)
        return self.embedding(self.pooling(self.frame_layers(x), lengths - (self.receptive_field - 1)))

    def after_step(self, iteration: int) -> None:
        """Called by the trainer after every optimiser step; plain TDNNs have nothing to do."""


def _check_lengths(**lists: Sequence) -> None:
    """The per-layer option lists (already checked to be lists) describe the same layers."""
    lengths = {k: len(v) for k, v in lists.items()}
    require(len(set(lengths.values())) == 1, f"layer lists must be equally long, got lengths {lengths}")


class TDNN(FrameStackExtractor):
    def __init__(self, input_dim: int = 30, frame_dims: Sequence[int] = (512, 512, 512, 512, 1500),
                 contexts: Sequence[int] = (5, 3, 3, 1, 1), dilations: Sequence[int] = (1, 2, 3, 1, 1),
                 emb_dim: int = 512):
        check_ints(input_dim=input_dim, emb_dim=emb_dim)
        check_int_lists(frame_dims=frame_dims, contexts=contexts, dilations=dilations)
        _check_lengths(frame_dims=frame_dims, contexts=contexts, dilations=dilations)
        layers, in_dim = [], input_dim
        for out_dim, ctx, dil in zip(frame_dims, contexts, dilations):
            layers.append(TDNNLayer(in_dim, out_dim, ctx, dil))
            in_dim = out_dim
        super().__init__(nn.Sequential(*layers), in_dim, emb_dim)


@register_extractor("tdnn")
def xvector_tdnn(input_dim: int = 30, frame_dims: Sequence[int] = (512, 512, 512, 512, 1500),
                 contexts: Sequence[int] = (5, 3, 3, 1, 1), dilations: Sequence[int] = (1, 2, 3, 1, 1),
                 emb_dim: int = 512) -> TDNN:
    """Kaldi's x-vector TDNN; every width, context and dilation can be changed."""
    return TDNN(input_dim, frame_dims, contexts, dilations, emb_dim)
