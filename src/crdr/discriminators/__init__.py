"""Discriminators for CRDR's adversarial training; all share ``forward(x, level, latent=None) -> logits``."""

from crdr.discriminators.gvae import GvaeDiscriminator, validate_levels
from crdr.discriminators.hific import HificDiscriminator
from crdr.discriminators.multirate import ModuleListDiscriminator, MultirateGvaeDiscriminator

__all__ = [
    "GvaeDiscriminator",
    "HificDiscriminator",
    "ModuleListDiscriminator",
    "MultirateGvaeDiscriminator",
    "validate_levels",
]
