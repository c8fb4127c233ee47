"""Rate-conditioned discriminators for variable-rate training (one rate level per image)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crdr.discriminators.base import Discriminator
from crdr.discriminators.gvae import GvaeDiscriminator, validate_levels

__all__ = ["ModuleListDiscriminator", "MultirateGvaeDiscriminator"]


class ModuleListDiscriminator(Discriminator):
    """One independent GVAE sub-discriminator per rate level (the CRDR paper's final design).

    Image i is scored by ``subD_list[level[i]]``. Parameter names (``subD_list.{i}.model.{j}.*``) match
    the official CRDR discriminator checkpoint.

    Shapes: x (B, 3, H, W), level (1,) or (B,) -> logits (B, 1, H/16, W/16).
    """

    def __init__(self, num_levels: int = 5, **sub_kwargs: int) -> None:
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        self.num_levels = num_levels
        self.subD_list = nn.ModuleList(GvaeDiscriminator(**sub_kwargs) for _ in range(num_levels))

    def compile_units(self) -> list[nn.Module]:
        """What ``torch.compile`` compiles: the sub-discriminators (the level dispatch stays eager;
        compiled whole, it would break the graph at the level lookup and recompile per level)."""
        return list(self.subD_list)

    def forward(self, x: Tensor, level: Tensor, latent: Tensor | None = None) -> Tensor:
        """Scores each image with the sub-discriminator of its rate level.

        Args:
            x: (B, 3, H, W) images in [-1, 1].
            level: int64 (1,) or (B,) rate-level indices in [0, num_levels - 1].
            latent: ignored.

        Returns:
            (B, 1, H/16, W/16) raw logits, in batch order.
        """
        del latent
        levels = validate_levels(level, x.shape[0], self.num_levels)
        if level.numel() == 1:
            return self.subD_list[int(level.reshape(-1)[0])](x)
        present = torch.unique(levels).tolist()
        if len(present) == 1:
            return self.subD_list[present[0]](x)
        order = torch.argsort(levels, stable=True)
        sorted_levels = levels[order]
        outputs = [self.subD_list[lv](x[order[sorted_levels == lv]]) for lv in present]
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return torch.cat(outputs, dim=0)[inverse]


class MultirateGvaeDiscriminator(Discriminator):
    """A single GVAE discriminator conditioned on the rate level through one-hot input planes.

    ``num_levels`` constant channels (the one-hot code of each image's level) are concatenated to the
    image, so the first conv takes ``in_channels + num_levels`` channels.

    Shapes: x (B, in_channels, H, W), level (1,) or (B,) -> logits (B, 1, H/16, W/16).
    """

    def __init__(self, num_levels: int = 5, in_channels: int = 3, channels: int = 64) -> None:
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        self.num_levels = num_levels
        self.model = GvaeDiscriminator(in_channels=in_channels + num_levels, channels=channels)

    def forward(self, x: Tensor, level: Tensor, latent: Tensor | None = None) -> Tensor:
        """Scores image patches given each image's rate level.

        Args:
            x: (B, in_channels, H, W) images in [-1, 1].
            level: int64 (1,) or (B,) rate-level indices in [0, num_levels - 1].
            latent: ignored.

        Returns:
            (B, 1, H/16, W/16) raw logits.
        """
        del latent
        levels = validate_levels(level, x.shape[0], self.num_levels).to(x.device)
        planes = F.one_hot(levels, self.num_levels).to(x.dtype)[:, :, None, None]
        planes = planes.expand(-1, -1, *x.shape[-2:])
        return self.model(torch.cat([x, planes], dim=1))
