"""Interpolated channel attention (ICA): a per-channel affine map selected by a quality level."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# softplus^-1(1): a freshly built ICA is the identity map.
_IDENTITY_RAW_WEIGHT = math.log(math.e - 1.0)


class InterpolatedChannelAttention(nn.Module):
    """``softplus(w(q)) * x + b(q)`` per channel, with ``w``, ``b`` interpolated between levels.

    The raw (pre-softplus) weight and the bias of the two neighbouring integer levels
    ``l = floor(q)`` and ``r = min(l + 1, L - 1)`` are mixed linearly with ``alpha = r - q``:
    ``w = alpha * W[l] + (1 - alpha) * W[r]``. An integer ``q`` selects exactly level ``q``.

    Parameters ``weight`` and ``bias`` have shape ``(L, 1, C, 1, 1)`` (official tensor layout).
    """

    def __init__(self, channels: int, num_levels: int = 5) -> None:
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        self.num_levels = num_levels
        self.weight = nn.Parameter(torch.full((num_levels, 1, channels, 1, 1), _IDENTITY_RAW_WEIGHT))
        self.bias = nn.Parameter(torch.zeros(num_levels, 1, channels, 1, 1))

    def forward(self, x: Tensor, q: Tensor) -> Tensor:
        """x: (B, C, H, W); q: (1,) or (B,) float in [0, L - 1]. Returns (B, C, H, W)."""
        q = q.to(device=x.device, dtype=torch.float32)
        left = torch.floor(q).long().clamp(0, self.num_levels - 1)
        right = (left + 1).clamp(max=self.num_levels - 1)
        alpha = (right.to(torch.float32) - q).view(-1, 1, 1, 1)
        channels = self.weight.shape[2]
        w_left = self.weight[left].view(-1, channels, 1, 1)
        w_right = self.weight[right].view(-1, channels, 1, 1)
        b_left = self.bias[left].view(-1, channels, 1, 1)
        b_right = self.bias[right].view(-1, channels, 1, 1)
        w = alpha * w_left + (1 - alpha) * w_right
        b = alpha * b_left + (1 - alpha) * b_right
        return (F.softplus(w).to(x.dtype) * x).add_(b.to(x.dtype))

    def extra_repr(self) -> str:
        return f"channels={self.weight.shape[2]}, num_levels={self.num_levels}"
