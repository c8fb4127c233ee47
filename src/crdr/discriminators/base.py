"""The interface every discriminator of conf/discriminator implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

__all__ = ["Discriminator"]


class Discriminator(nn.Module, ABC):
    """``D(x, level, latent) -> logits``: patch logits for images ``x`` in [-1, 1].

    ``num_levels``: the rate levels D tells apart (``level`` must lie in [0, num_levels - 1]), or None
    for a discriminator that ignores the level. ``uses_latent``: whether D is conditioned on the
    generator's quantised latent y_hat (then ``latent`` is required), else it ignores ``latent``.
    """

    num_levels: int | None = None
    uses_latent: bool = False

    @abstractmethod
    def forward(self, x: Tensor, level: Tensor, latent: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W) in [-1, 1]; level: int64 (1,) or (B,) rate levels; latent: y_hat,
        (B, C_y, H/16, W/16) -> (B, 1, h, w) raw logits."""

    def compile_units(self) -> list[nn.Module]:
        """What ``torch.compile`` compiles of this discriminator: all of it, unless a subclass says otherwise."""
        return [self]
