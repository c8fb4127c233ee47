"""Channels-last conv weights: oneDNN (CPU) and cuDNN run NHWC convolutions faster than NCHW."""

from __future__ import annotations

import torch
from torch import nn


def use_channels_last(module: nn.Module) -> nn.Module:
    """Stores every conv weight of ``module`` channels-last (in place) and returns ``module``.

    ``module.to(memory_format=torch.channels_last)`` cannot be used: it also converts the 5-D
    interpolated-channel-attention parameters, which have no 2-D channels-last layout. Convolutions
    then produce channels-last outputs from any input; values change only in rounding (~1e-7).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)
    return module
