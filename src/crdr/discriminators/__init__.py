"""Discriminators for adversarial training, each a :class:`Discriminator`: ``D(x, level, latent) -> logits``."""

from crdr.discriminators.base import Discriminator
from crdr.discriminators.gvae import GvaeDiscriminator, validate_levels
from crdr.discriminators.hific import HificDiscriminator
from crdr.discriminators.multirate import ModuleListDiscriminator, MultirateGvaeDiscriminator

__all__ = [
    "Discriminator",
    "GvaeDiscriminator",
    "HificDiscriminator",
    "ModuleListDiscriminator",
    "MultirateGvaeDiscriminator",
    "validate_levels",
]
