"""Training losses: distortion, perceptual, rate and adversarial."""

from crdr.losses.adversarial import (
    GanLoss,
    HingeGanLoss,
    HrrGanLoss,
    LsGanLoss,
    RaGanLoss,
    RGanLoss,
    VanillaGanLoss,
)
from crdr.losses.distortion import MseLoss
from crdr.losses.perceptual import LpipsLoss
from crdr.losses.rate import HificRateLoss, LambdaRateLoss, RateLoss

__all__ = [
    "GanLoss",
    "HificRateLoss",
    "HingeGanLoss",
    "HrrGanLoss",
    "LambdaRateLoss",
    "LpipsLoss",
    "LsGanLoss",
    "MseLoss",
    "RGanLoss",
    "RaGanLoss",
    "RateLoss",
    "VanillaGanLoss",
]
