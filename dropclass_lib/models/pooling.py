"""Statistics and attentive statistics pooling, and the replication padding for very short inputs.

A stack of TDNN layers with receptive field R turns T input frames into T - R + 1 outputs, so
an input shorter than R frames would leave nothing to pool. :func:`pad_to_receptive_field`
repeats the first and last frames (half on each side) until the input is R frames long: the
network then sees a segment as long as its context, whose outer frames are copies of the
real edge frames. Inputs of R frames or more are left untouched.

Both poolings take optional ``lengths``: the number of valid frames of each batch member, the
rest of its row being padding (a batch of utterances of different lengths). The padded frames
then take no part in any statistic or softmax, so each member is pooled as if it were alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_receptive_field(x: torch.Tensor, receptive_field: int) -> torch.Tensor:
    """``x``: (batch, channels, frames); replicate-pad the time axis to ``receptive_field`` frames."""
    missing = receptive_field - x.shape[-1]
    if missing <= 0:
        return x
    left = missing // 2
    return F.pad(x, (left, missing - left), mode="replicate")


def valid_frames(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(batch, 1, frames) float mask: 1 on each member's first ``lengths[i]`` frames, 0 after."""
    return (torch.arange(frames, device=lengths.device) < lengths[:, None]).unsqueeze(1).float()


class StatsPooling(nn.Module):
    """Mean and standard deviation over time: (batch, channels, frames) -> (batch, 2 * channels).

    The variance is floored at ``var_floor`` before the square root (as Kaldi's stats layer
    does) so a constant channel gives a finite gradient.
    """

    def __init__(self, var_floor: float = 1e-5):
        super().__init__()
        self.var_floor = var_floor

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths``: valid frames per member (None: all frames are valid)."""
        x = x.float()  # statistics in float32 even under autocast
        if lengths is None:
            mean = x.mean(dim=-1)
            var = (x - mean.unsqueeze(-1)).pow(2).mean(dim=-1)
        else:
            mask, count = valid_frames(lengths, x.shape[-1]), lengths.to(x.dtype)[:, None]
            mean = (x * mask).sum(dim=-1) / count
            var = ((x - mean.unsqueeze(-1)).pow(2) * mask).sum(dim=-1) / count
        return torch.cat([mean, var.clamp(min=self.var_floor).sqrt()], dim=-1)


class AttentiveStatsPooling(nn.Module):
    """Channel-wise attentive statistics with global context (ECAPA-TDNN, Desplanques et al. 2020).

    (batch, channels, frames) -> (batch, 2 * channels). Each frame's attention input is the frame
    itself concatenated with the utterance's plain mean and standard deviation (``global_context``),
    so the weights can depend on utterance-level properties such as the channel or noise. A
    bottleneck of ``attention_channels`` (1x1 conv -> tanh, as Okabe et al.'s attentive pooling)
    is followed by a 1x1 conv with one output per channel: every channel gets its own softmax over
    frames, and its weighted mean and standard deviation are returned. Each utterance is pooled
    on its own (the softmax runs over its frames only), so batch members never mix.
    """

    def __init__(self, channels: int, attention_channels: int = 128, global_context: bool = True,
                 var_floor: float = 1e-5):
        super().__init__()
        self.global_context = global_context
        self.var_floor = var_floor
        in_dim = 3 * channels if global_context else channels
        self.attention = nn.Sequential(
            nn.Conv1d(in_dim, attention_channels, kernel_size=1), nn.Tanh(),
            nn.Conv1d(attention_channels, channels, kernel_size=1))

    def _weighted_stats(self, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (weights * x).sum(dim=-1, keepdim=True)
        var = (weights * (x - mean).pow(2)).sum(dim=-1, keepdim=True)
        return mean, var.clamp(min=self.var_floor).sqrt()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths``: valid frames per member (None: all frames are valid)."""
        x = x.float()  # statistics and softmax in float32 even under autocast
        frames = x.shape[-1]
        mask = None if lengths is None else valid_frames(lengths, frames)
        if self.global_context:
            uniform = (torch.full_like(x[:, :1], 1.0 / frames) if mask is None
                       else mask / lengths.to(x.dtype)[:, None, None])
            mean, std = self._weighted_stats(x, uniform)
            attention_in = torch.cat([x, mean.expand_as(x), std.expand_as(x)], dim=1)
        else:
            attention_in = x
        with torch.autocast(x.device.type, enabled=False):
            logits = self.attention(attention_in).float()
            if mask is not None:
                logits = logits.masked_fill(mask == 0, float("-inf"))
            weights = torch.softmax(logits, dim=-1)
        mean, std = self._weighted_stats(x, weights)
        return torch.cat([mean.squeeze(-1), std.squeeze(-1)], dim=-1)
