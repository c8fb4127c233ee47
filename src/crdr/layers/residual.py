"""ELIC residual bottleneck blocks, plain and beta-conditioned."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class ResidualBottleneck(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(conv1x1(x)))))``; no activation after the sum.

    Keys: ``conv.0`` (ch -> mid, 1x1), ``conv.2`` (mid -> mid, 3x3), ``conv.4`` (mid -> ch, 1x1).
    """

    def __init__(self, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, mid_channels, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, channels, 1),
        )

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W); ``cond`` is accepted for a uniform call signature and ignored."""
        return self.conv(x).add_(x)


class BetaConditionedResidualBottleneck(ResidualBottleneck):
    """Residual bottleneck with the beta condition added after each activation.

    ``h1 = relu(conv.0(x)) + proj_1(c)``, ``h2 = relu(conv.2(h1)) + proj_2(c)``,
    ``out = x + conv.4(h2) + proj_3(c)``, where ``c`` is the (B, cond_ch, 1, 1) condition.
    """

    def __init__(self, channels: int, mid_channels: int, cond_channels: int) -> None:
        super().__init__(channels, mid_channels)
        self.proj_1 = nn.Conv2d(cond_channels, mid_channels, 1)
        self.proj_2 = nn.Conv2d(cond_channels, mid_channels, 1)
        self.proj_3 = nn.Conv2d(cond_channels, channels, 1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError("BetaConditionedResidualBottleneck needs a condition tensor")
        conv_in, _, conv_mid, _, conv_out = self.conv
        h = F.relu(conv_in(x), inplace=True) + self.proj_1(cond)
        h = F.relu(conv_mid(h), inplace=True) + self.proj_2(cond)
        return conv_out(h).add_(self.proj_3(cond)).add_(x)


class ResidualBottleneckStack(nn.Module):
    """``num_blocks`` residual bottlenecks in sequence (keys ``block0``, ``block1``, ...)."""

    def __init__(
        self,
        channels: int,
        mid_channels: int,
        num_blocks: int = 3,
        cond_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        for i in range(num_blocks):
            block = (
                ResidualBottleneck(channels, mid_channels)
                if cond_channels is None
                else BetaConditionedResidualBottleneck(channels, mid_channels, cond_channels)
            )
            self.add_module(f"block{i}", block)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W); cond: (B, cond_ch, 1, 1) or None."""
        for block in self.children():
            x = block(x, cond)
        return x
