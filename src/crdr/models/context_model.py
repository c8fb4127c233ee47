"""Channel-wise autoregressive context model (CHARM, Minnen & Singh 2020) with latent residual prediction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from crdr.models.entropy_models import StraightThroughGaussianConditional, round_around


class SliceTransform(nn.Module):
    """Conv 5x5 -> ReLU -> Conv 5x5 -> ReLU -> Conv 3x3, all stride 1 (keys ``model.0/2/4``)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: Sequence[int] = (224, 128)) -> None:
        super().__init__()
        h0, h1 = hidden
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, h0, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(h0, h1, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(h1, out_channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class ChannelContextModel(nn.Module):
    """y is cut into ``num_slices`` channel slices coded in order; slice i is predicted from the
    hyper features and the first ``min(i, max_support_slices)`` decoded slices.

    For slice i: ``mu = mean_i([h_mu, support])``, ``sigma = scale_i([h_sigma, support])`` (raw; the
    entropy model bounds it), ``y_tilde = Q(y_i; mu)``, then ``y_hat_i = y_tilde + 0.5 tanh(lrp_i([h_mu,
    support, y_tilde]))``.
    """

    def __init__(
        self,
        latent_channels: int = 320,
        num_slices: int = 10,
        max_support_slices: int = 5,
        hidden: Sequence[int] = (224, 128),
    ) -> None:
        super().__init__()
        if latent_channels % num_slices:
            raise ValueError(f"latent_channels={latent_channels} is not divisible by num_slices={num_slices}")
        self.num_slices = num_slices
        self.max_support_slices = max_support_slices
        self.slice_channels = c = latent_channels // num_slices
        supports = [latent_channels + c * min(i, max_support_slices) for i in range(num_slices)]
        self.mean_slice_transforms = nn.ModuleList(SliceTransform(s, c, hidden) for s in supports)
        self.scale_slice_transforms = nn.ModuleList(SliceTransform(s, c, hidden) for s in supports)
        self.lrp_slice_transforms = nn.ModuleList(SliceTransform(s + c, c, hidden) for s in supports)

    def run_slices(
        self,
        hyper: Tensor,
        quantize: Callable[[int, Tensor, Tensor | None], Tensor],
        compute_dtype: torch.dtype | None = None,
        scales: bool = True,
    ) -> Tensor:
        """The slice-by-slice loop shared by the forward pass, the encoder and the decoder.

        hyper: (B, 2C, h, w). ``quantize(i, mu, sigma)`` returns the quantised slice i (before its
        LRP), however it is obtained (rounding, or rANS decoding). Returns y_hat (B, C, h, w).
        ``compute_dtype`` (``torch.bfloat16``): the slice transforms run under autocast (about 4x
        faster on CPUs with AMX); mu, sigma and y_hat are float32 either way. ``scales=False``:
        sigma is None and the scale transforms do not run (y_hat depends on the means only).
        """
        # float32 like the decoded slices, so every slice transform sees one input dtype (under mixed
        # precision the hyper-synthesis output is bfloat16; autocast casts it back for the convs)
        h_mu, h_sigma = hyper.float().chunk(2, dim=1)
        decoded: list[Tensor] = []
        # no compute_dtype: leave any enclosing autocast (mixed-precision training) in charge
        autocast = nullcontext() if compute_dtype is None else torch.autocast(hyper.device.type, dtype=compute_dtype)
        with autocast:
            for i in range(self.num_slices):
                mu, sigma, mean_support = self._slice_parameters(i, h_mu, h_sigma if scales else None, decoded)
                decoded.append(self._refine(i, mean_support, quantize(i, mu, sigma)))
        return torch.cat(decoded, dim=1)

    def _slice_parameters(
        self, i: int, h_mu: Tensor, h_sigma: Tensor | None, decoded: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """Returns (mu, sigma, mean_support) of slice i given the slices decoded so far (sigma: None
        without h_sigma)."""
        support = list(decoded[: self.max_support_slices])
        mean_support = torch.cat([h_mu, *support], dim=1)
        mu = self.mean_slice_transforms[i](mean_support).float()
        if h_sigma is None:
            return mu, None, mean_support
        sigma = self.scale_slice_transforms[i](torch.cat([h_sigma, *support], dim=1)).float()
        return mu, sigma, mean_support

    def _refine(self, i: int, mean_support: Tensor, y_tilde: Tensor) -> Tensor:
        """Latent residual prediction: y_tilde + 0.5 tanh(lrp_i([mean_support, y_tilde]))."""
        lrp = self.lrp_slice_transforms[i](torch.cat([mean_support, y_tilde], dim=1)).float()
        return y_tilde + 0.5 * torch.tanh(lrp)

    def forward(
        self, y: Tensor, hyper: Tensor, entropy_model: StraightThroughGaussianConditional
    ) -> tuple[Tensor, Tensor, Tensor]:
        """y: (B, C, h, w); hyper: (B, 2C, h, w) -> (y_hat, likelihoods, rounded likelihoods), all (B, C, h, w).

        The rounded likelihoods (no gradient) price the rounded latents; in eval mode they are the
        likelihoods themselves.
        """
        y_slices = y.chunk(self.num_slices, dim=1)
        likelihoods: list[Tensor] = []
        rounded: list[Tensor] = []

        def quantize(i: int, mu: Tensor, sigma: Tensor) -> Tensor:
            y_tilde, likelihood = entropy_model(y_slices[i], sigma, mu)
            likelihoods.append(likelihood)
            if entropy_model.training:
                rounded.append(entropy_model.rounded_likelihood(y_tilde, sigma, mu))
            return y_tilde

        y_hat = self.run_slices(hyper, quantize)
        likelihood = torch.cat(likelihoods, dim=1)
        return y_hat, likelihood, torch.cat(rounded, dim=1) if rounded else likelihood

    def quantize_latents(self, y: Tensor, hyper: Tensor) -> Tensor:
        """y_hat of ``forward`` alone, (B, C, h, w): no scale transforms and no likelihoods."""
        y_slices = y.float().chunk(self.num_slices, dim=1)
        training = self.training
        return self.run_slices(hyper, lambda i, mu, _: round_around(y_slices[i], mu, training), scales=False)
