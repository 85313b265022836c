"""Statistics pooling, and the replication padding that lets very short inputs through.

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
