"""CompressAI entropy models with CRDR's quantisation: straight-through rounding around the mean/median.

Training: the likelihood is evaluated at ``v + u`` (u ~ U(-1/2, 1/2)) and the value passed on is
``ste_round(v - m) + m``. Evaluation: ``v_hat = round(v - m) + m`` for both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from crdr.models.compressai_core import EntropyBottleneck, GaussianConditional, scale_table, standardized_quantile

#: Buffers whose size depends on the learned parameters; rebuilt by ``update`` and never trusted from files.
DYNAMIC_BUFFERS = ("_offset", "_quantized_cdf", "_cdf_length", "scale_table")


def full_precision(method: Callable) -> Callable:
    """Runs an entropy-model method in float32 with autocast off: under mixed precision (bf16/fp16
    training) the likelihoods, and so the rates, are still computed in float32."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        args = tuple(a.float() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args)
        device = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return method(self, *args, **kwargs)

    return wrapper


def ste_round(x: Tensor) -> Tensor:
    """round(x) in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


def round_around(values: Tensor, centers: Tensor, training: bool) -> Tensor:
    """v_hat = round(v - c) + c; in training the rounding is straight-through (identity gradient)."""
    if training:
        return ste_round(values - centers) + centers
    return torch.round(values - centers) + centers


def quantize_around(values: Tensor, centers: Tensor, training: bool) -> tuple[Tensor, Tensor]:
    """Returns (v_hat, where the likelihood is evaluated).

    Training: ``(ste_round(v - c) + c, v + U(-1/2, 1/2))``; evaluation: ``round(v - c) + c`` for both.
    """
    v_hat = round_around(values, centers, training)
    if training:
        return v_hat, values + torch.empty_like(values).uniform_(-0.5, 0.5)
    return v_hat, v_hat


class CompiledRoundedLikelihood:
    """Mixin: ``compile()`` also compiles ``rounded_likelihood`` (the training step calls it beside
    ``forward`` for every slice), so neither runs eagerly under ``module.compile``."""

    def compile(self, *args, **kwargs) -> None:
        super().compile(*args, **kwargs)
        self.rounded_likelihood = torch.compile(self.rounded_likelihood, *args, **kwargs)


class StraightThroughEntropyBottleneck(CompiledRoundedLikelihood, EntropyBottleneck):
    """Factorized prior for z (Balle et al. 2018).

    The likelihood uses the sign trick of CompressAI <= 1.2.4 (``|sigmoid(s*upper) - sigmoid(s*lower)|``
    with ``s = -sign(lower + upper)``), which the official tables and rates are computed with.
    Parameters are named ``_matrix{i}``, ``_bias{i}``, ``_factor{i}`` and ``quantiles``, in the
    official checkpoint order (CompressAI >= 1.2.5 keeps them in ParameterLists instead).
    """

    def __init__(self, channels: int, **kwargs) -> None:
        super().__init__(channels, **kwargs)
        matrices, biases, factors = list(self.matrices), list(self.biases), list(self.factors)
        quantiles = self.quantiles
        del self.matrices, self.biases, self.factors, self.quantiles
        for i, (matrix, bias) in enumerate(zip(matrices, biases, strict=False)):
            self.register_parameter(f"_matrix{i}", matrix)
            self.register_parameter(f"_bias{i}", bias)
            if i < len(factors):
                self.register_parameter(f"_factor{i}", factors[i])
        self.quantiles = quantiles

    def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
        logits = inputs
        for i in range(len(self.filters) + 1):
            matrix, bias = getattr(self, f"_matrix{i}"), getattr(self, f"_bias{i}")
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.filters):
                factor = getattr(self, f"_factor{i}")
                if stop_gradient:
                    factor = factor.detach()
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def _likelihood(self, inputs: Tensor, stop_gradient: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        lower = self._logits_cumulative(inputs - 0.5, stop_gradient=stop_gradient)
        upper = self._logits_cumulative(inputs + 0.5, stop_gradient=stop_gradient)
        sign = -torch.sign(lower + upper).detach()
        likelihood = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return likelihood, lower, upper

    def medians(self) -> Tensor:
        """(1, C, 1, 1) medians of the learned densities."""
        return self.quantiles[:, 0, 1].view(1, -1, 1, 1)

    @full_precision
    def forward(self, z: Tensor, training: bool | None = None) -> tuple[Tensor, Tensor]:
        """z: (B, C, h, w) -> (z_hat, likelihoods), both (B, C, h, w)."""
        if training is None:
            training = self.training
        z_hat, at = quantize_around(z, self.medians(), training)
        channels = z.shape[1]
        values = at.transpose(0, 1).reshape(channels, 1, -1)
        likelihood, _, _ = self._likelihood(values)
        likelihood = self.likelihood_lower_bound(likelihood)
        likelihood = likelihood.reshape(channels, z.shape[0], *z.shape[2:]).transpose(0, 1)
        return z_hat, likelihood

    @torch.no_grad()
    @full_precision
    def rounded_likelihood(self, z_hat: Tensor) -> Tensor:
        """Likelihoods (B, C, h, w) of the rounded latents z_hat, without gradient (what coding costs)."""
        channels = z_hat.shape[1]
        values = z_hat.transpose(0, 1).reshape(channels, 1, -1)
        likelihood = self.likelihood_lower_bound(self._likelihood(values)[0])
        return likelihood.reshape(channels, z_hat.shape[0], *z_hat.shape[2:]).transpose(0, 1)

    def update_tables(self) -> None:
        self.update(force=True)


class StraightThroughGaussianConditional(CompiledRoundedLikelihood, GaussianConditional):
    """Gaussian conditional for y with mean and scale (scales bounded below by ``scale_bound``)."""

    #: CompressAI's is ``scipy.stats.norm.ppf``: the same values, without importing scipy.stats.
    _standardized_quantile = staticmethod(standardized_quantile)

    def __init__(self, scale_bound: float = 0.11) -> None:
        super().__init__(None, scale_bound=scale_bound)

    @full_precision
    def forward(self, y: Tensor, scales: Tensor, means: Tensor, training: bool | None = None) -> tuple[Tensor, Tensor]:
        """y, scales, means: (B, C, h, w) -> (y_hat, likelihoods)."""
        if training is None:
            training = self.training
        y_hat, at = quantize_around(y, means, training)
        likelihood = self.likelihood_lower_bound(self._likelihood(at, scales, means))
        return y_hat, likelihood

    @torch.no_grad()
    @full_precision
    def rounded_likelihood(self, y_hat: Tensor, scales: Tensor, means: Tensor) -> Tensor:
        """Likelihoods of the rounded latents y_hat = round(y - means) + means, without gradient."""
        return self.likelihood_lower_bound(self._likelihood(y_hat, scales, means))

    def update_tables(self) -> None:
        """64 log-spaced scales from 0.11 to 256, as in the official codec."""
        self.update_scale_table(scale_table(), force=True)
