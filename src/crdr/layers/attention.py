"""Simplified attention module of Cheng et al. (2020), without the non-local block."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class NonLocalResidualUnit(nn.Module):
    """``x + c3(relu(c2(relu(c1(x)))))`` with mid = ch / 2; no ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = channels // 2
        self.c1 = nn.Conv2d(channels, mid, 1)
        self.c2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.c3 = nn.Conv2d(mid, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.c3(F.relu(self.c2(F.relu(self.c1(x), inplace=True)), inplace=True)).add_(x)


class NonLocalAttention(nn.Module):
    """``x + trunk(x) * sigmoid(conv(attention(x)))``; trunk and attention are 3 residual units each."""

    def __init__(self, channels: int, num_units: int = 3) -> None:
        super().__init__()
        self.trunk_block = nn.Sequential(*(NonLocalResidualUnit(channels) for _ in range(num_units)))
        self.attention_block = nn.Sequential(*(NonLocalResidualUnit(channels) for _ in range(num_units)))
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W); ``cond`` is accepted for a uniform call signature and ignored."""
        return (self.trunk_block(x) * torch.sigmoid(self.conv(self.attention_block(x)))).add_(x)
