"""CLIC 2021 GVAE-style patch discriminator (the CRDR paper's sub-discriminator)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crdr.discriminators.base import Discriminator

__all__ = ["GvaeDiscriminator", "validate_levels"]


def validate_levels(level: Tensor, batch: int, num_levels: int) -> Tensor:
    """Checks rate-level indices and broadcasts them to the batch.

    Args:
        level: integer tensor of shape (), (1,) or (B,) with values in [0, num_levels - 1].
        batch: the batch size B.
        num_levels: the number of rate levels.

    Returns:
        int64 tensor of shape (B,).
    """
    if not isinstance(level, Tensor):
        raise ValueError(f"level must be an integer tensor, got {type(level).__name__}")
    if level.dtype.is_floating_point or level.dtype.is_complex or level.dtype == torch.bool:
        raise ValueError(f"level must be an integer tensor, got dtype {level.dtype}")
    shape = tuple(level.shape)
    level = level.reshape(-1).long()
    if level.numel() not in (1, batch):
        raise ValueError(f"level must have shape (1,) or (B,)=({batch},), got {shape}")
    if level.numel() > 0:
        lo, hi = int(level.min()), int(level.max())
        if lo < 0 or hi >= num_levels:
            raise ValueError(f"level indices must lie in [0, {num_levels - 1}], got values in [{lo}, {hi}]")
    return level.expand(batch)


class GvaeDiscriminator(Discriminator):
    """Fully convolutional patch discriminator with 3x3 convs and LeakyReLU(0.2), no normalisation.

    Each of the ``num_downscale`` stages is a stride-1 conv (widening the channels) followed by a
    stride-2 conv; a final stride-1 conv gives one logit per patch. With ``num_downscale=4`` the widths
    are ``channels * (1, 1, 2, 2, 4, 4, 8, 8)`` and the parameter names (``model.0`` ... ``model.16``)
    match the official CRDR discriminator checkpoint.

    Shapes: x (B, in_channels, H, W) -> logits (B, 1, ceil(H / 2**num_downscale), ceil(W / 2**num_downscale)).
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_downscale: int = 4) -> None:
        super().__init__()
        if in_channels < 1 or channels < 1 or num_downscale < 0:
            raise ValueError(
                f"need in_channels >= 1, channels >= 1, num_downscale >= 0; got {in_channels}, {channels}, "
                f"{num_downscale}"
            )
        self.in_channels = in_channels
        self.channels = channels
        self.num_downscale = num_downscale
        layers: list[nn.Module] = []
        prev = in_channels
        for stage in range(num_downscale):
            width = channels * 2**stage
            for stride in (1, 2):
                layers += [nn.Conv2d(prev, width, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]
                prev = width
        layers.append(nn.Conv2d(prev, 1, 3, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor, level: Tensor | None = None, latent: Tensor | None = None) -> Tensor:
        """Scores image patches.

        Args:
            x: (B, in_channels, H, W) images in [-1, 1].
            level: ignored (unconditioned discriminator).
            latent: ignored.

        Returns:
            (B, 1, H / 2**num_downscale, W / 2**num_downscale) raw logits.
        """
        del level, latent
        return self.model(x)
