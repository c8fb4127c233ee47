"""Building blocks of the CRDR networks; none of them knows about training."""

from crdr.layers.attention import NonLocalAttention, NonLocalResidualUnit
from crdr.layers.fourier import FourierEmbedding
from crdr.layers.interpolated_channel_attention import InterpolatedChannelAttention
from crdr.layers.residual import (
    BetaConditionedResidualBottleneck,
    ResidualBottleneck,
    ResidualBottleneckStack,
)

__all__ = [
    "BetaConditionedResidualBottleneck",
    "FourierEmbedding",
    "InterpolatedChannelAttention",
    "NonLocalAttention",
    "NonLocalResidualUnit",
    "ResidualBottleneck",
    "ResidualBottleneckStack",
]
