"""HiFiC (Mentzer et al., 2020) latent-conditioned patch discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from crdr.discriminators.base import Discriminator

__all__ = ["HificDiscriminator"]

#: Channels of the projected latent that is concatenated to the image.
LATENT_EMBED_CHANNELS = 12
#: Spatial ratio between the image and the generator's latent y_hat.
LATENT_STRIDE = 16


class HificDiscriminator(Discriminator):
    """Conditional discriminator D(x, y_hat) of HiFiC.

    The (detached) latent goes through a 1x1 conv to 12 channels and LeakyReLU(0.2), is nearest-upsampled
    x16 to the image size and concatenated to the image. Four 4x4 stride-2 spectrally normalised convs
    (``channels * (1, 2, 4, 8)`` wide, LeakyReLU(0.2)) and a 1x1 conv then give one logit per patch.

    Shapes: x (B, in_channels, H, W), latent (B, latent_channels, ceil(H/16), ceil(W/16))
    -> logits (B, 1, H/16, W/16).
    """

    uses_latent = True

    def __init__(self, in_channels: int = 3, latent_channels: int = 320, channels: int = 64) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.channels = channels
        self.latent_embed = nn.Sequential(nn.Conv2d(latent_channels, LATENT_EMBED_CHANNELS, 1), nn.LeakyReLU(0.2))
        layers: list[nn.Module] = []
        prev = in_channels + LATENT_EMBED_CHANNELS
        for i in range(4):
            width = channels * 2**i
            layers += [spectral_norm(nn.Conv2d(prev, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            prev = width
        self.model = nn.Sequential(*layers)
        self.head = nn.Conv2d(prev, 1, 1)

    def forward(self, x: Tensor, level: Tensor | None = None, latent: Tensor | None = None) -> Tensor:
        """Scores image patches conditioned on the generator's latent.

        Args:
            x: (B, in_channels, H, W) images in [-1, 1].
            level: ignored (unconditioned on the rate level).
            latent: (B, latent_channels, h, w) quantised latent y_hat with h*16 >= H, w*16 >= W; it is
                detached, so no discriminator gradient reaches the generator through it.

        Returns:
            (B, 1, H/16, W/16) raw logits.
        """
        del level
        if latent is None:
            raise ValueError("HificDiscriminator is conditioned on the latent: pass latent=y_hat (B, C, H/16, W/16)")
        if latent.ndim != 4 or latent.shape[0] != x.shape[0] or latent.shape[1] != self.latent_channels:
            raise ValueError(
                f"latent must have shape (B={x.shape[0]}, {self.latent_channels}, h, w), got {tuple(latent.shape)}"
            )
        height, width = x.shape[-2:]
        if latent.shape[-2] * LATENT_STRIDE < height or latent.shape[-1] * LATENT_STRIDE < width:
            raise ValueError(
                f"latent of spatial size {tuple(latent.shape[-2:])} is too small for an image of size "
                f"{(height, width)} (need at least ceil(size / {LATENT_STRIDE}))"
            )
        embed = self.latent_embed(latent.detach())
        embed = F.interpolate(embed, scale_factor=LATENT_STRIDE, mode="nearest")[..., :height, :width]
        return self.head(self.model(torch.cat([x, embed.to(x.dtype)], dim=1)))
