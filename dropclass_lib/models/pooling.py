"""Statistics and attentive statistics pooling, and the replication padding for very short inputs.

A stack of TDNN layers with receptive field R turns T input frames into T - R + 1 outputs, so
an input shorter than R frames would leave nothing to pool. :func:`pad_to_receptive_field`
repeats the first and last frames (half on each side) until the input is R frames long: the
network then sees a segment as long as its context, whose outer frames are copies of the
real edge frames. Inputs of R frames or more are left untouched.
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


class StatsPooling(nn.Module):
    """Mean and standard deviation over time: (batch, channels, frames) -> (batch, 2 * channels).

    The variance is floored at ``var_floor`` before the square root (as Kaldi's stats layer
    does) so a constant channel gives a finite gradient.
    """

    def __init__(self, var_floor: float = 1e-5):
        super().__init__()
        self.var_floor = var_floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()  # statistics in float32 even under autocast
        mean = x.mean(dim=-1)
        var = (x - mean.unsqueeze(-1)).pow(2).mean(dim=-1)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()  # statistics and softmax in float32 even under autocast
        frames = x.shape[-1]
        if self.global_context:
            mean, std = self._weighted_stats(x, torch.full_like(x[:, :1], 1.0 / frames))
            attention_in = torch.cat([x, mean.expand_as(x), std.expand_as(x)], dim=1)
        else:
            attention_in = x
        with torch.autocast(x.device.type, enabled=False):
            weights = torch.softmax(self.attention(attention_in).float(), dim=-1)
        mean, std = self._weighted_stats(x, weights)
        return torch.cat([mean.squeeze(-1), std.squeeze(-1)], dim=-1)
