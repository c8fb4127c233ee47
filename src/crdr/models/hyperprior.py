"""Hyper-analysis and hyper-synthesis networks (Minnen et al. 2020 and Cheng et al. 2020 variants)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MinnenHyperAnalysis(nn.Module):
    """y (B, latent_ch, h, w) -> z (B, hyper_ch, h/4, w/4).

    conv1 3x3 s1 + ReLU, conv2 5x5 s2 + ReLU, conv3 5x5 s2 (linear).
    """

    downscale_factor = 4

    def __init__(
        self, latent_channels: int = 320, hyper_channels: int = 192, conv1_out: int = 320, conv2_out: int = 256
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(latent_channels, conv1_out, 3, padding=1)
        self.conv2 = nn.Conv2d(conv1_out, conv2_out, 5, stride=2, padding=2)
        self.conv3 = nn.Conv2d(conv2_out, hyper_channels, 5, stride=2, padding=2)

    def forward(self, y: Tensor) -> Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(y)))))


class _MinnenHyperSynthesisBranch(nn.Module):
    """z_hat -> (B, out_ch, 4h, 4w): two 5x5 stride-2 transposed convs with ReLU, then a 3x3 stride-1 one."""

    def __init__(self, hyper_channels: int, out_channels: int, conv1_out: int, conv2_out: int) -> None:
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(hyper_channels, conv1_out, 5, stride=2, padding=2, output_padding=1)
        self.conv2 = nn.ConvTranspose2d(conv1_out, conv2_out, 5, stride=2, padding=2, output_padding=1)
        self.conv3 = nn.ConvTranspose2d(conv2_out, out_channels, 3, stride=1, padding=1)

    def forward(self, z_hat: Tensor) -> Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(z_hat)))))


class MinnenHyperSynthesis(nn.Module):
    """z_hat (B, hyper_ch, h, w) -> [mean features, scale features] (B, 2 * latent_ch, 4h, 4w).

    Two independent branches, ``hd_mu`` and ``hd_std``, concatenated in that order.
    """

    def __init__(
        self, latent_channels: int = 320, hyper_channels: int = 192, conv1_out: int = 192, conv2_out: int = 256
    ) -> None:
        super().__init__()
        self.out_channels = 2 * latent_channels
        self.hd_mu = _MinnenHyperSynthesisBranch(hyper_channels, latent_channels, conv1_out, conv2_out)
        self.hd_std = _MinnenHyperSynthesisBranch(hyper_channels, latent_channels, conv1_out, conv2_out)

    def forward(self, z_hat: Tensor) -> Tensor:
        return torch.cat([self.hd_mu(z_hat), self.hd_std(z_hat)], dim=1)


def _conv_lrelu(conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(conv, nn.LeakyReLU(0.2, inplace=True))


class ChengHyperAnalysis(nn.Module):
    """y (B, latent_ch, h, w) -> z (B, hyper_ch, h/4, w/4): five 3x3 convs, strides 1,1,2,1,2, LeakyReLU(0.2)."""

    downscale_factor = 4

    def __init__(self, latent_channels: int = 320, hyper_channels: int = 192) -> None:
        super().__init__()
        ch = hyper_channels
        self.c1 = _conv_lrelu(nn.Conv2d(latent_channels, ch, 3, padding=1))
        self.c2 = _conv_lrelu(nn.Conv2d(ch, ch, 3, padding=1))
        self.c3 = _conv_lrelu(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.c4 = _conv_lrelu(nn.Conv2d(ch, ch, 3, padding=1))
        self.c5 = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, y: Tensor) -> Tensor:
        return self.c5(self.c4(self.c3(self.c2(self.c1(y)))))


class ChengHyperSynthesis(nn.Module):
    """z_hat (B, hyper_ch, h, w) -> [mean, scale] (B, 2 * latent_ch, 4h, 4w).

    3x3 conv, 4x4 stride-2 transposed conv, 3x3 conv, 4x4 stride-2 transposed conv (each with
    LeakyReLU(0.2)), then a linear 3x3 conv to ``2 * latent_ch``.
    """

    def __init__(self, latent_channels: int = 320, hyper_channels: int = 192) -> None:
        super().__init__()
        ch = hyper_channels
        self.out_channels = 2 * latent_channels
        self.c1 = _conv_lrelu(nn.Conv2d(ch, ch, 3, padding=1))
        self.c2 = _conv_lrelu(nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1))
        self.c3 = _conv_lrelu(nn.Conv2d(ch, ch, 3, padding=1))
        self.c4 = _conv_lrelu(nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1))
        self.c5 = nn.Conv2d(ch, 2 * latent_channels, 3, padding=1)

    def forward(self, z_hat: Tensor) -> Tensor:
        return self.c5(self.c4(self.c3(self.c2(self.c1(z_hat)))))
