"""ELIC-style analysis and synthesis transforms with optional ICA rate control and beta conditioning."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crdr.layers import FourierEmbedding, InterpolatedChannelAttention, NonLocalAttention, ResidualBottleneckStack


def _conv_down(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 5, stride=2, padding=2)


def _conv_up(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, 5, stride=2, padding=2, output_padding=1)


class _StagedTransform(nn.Module):
    """Runs named stages in order, each paired with an optional ICA (after or before the stage)."""

    stage_names: tuple[str, ...]
    ica_before_stage: bool

    def _add_rate_control(self, stage_channels: list[int], num_rate_levels: int | None) -> None:
        self.num_rate_levels = num_rate_levels
        if num_rate_levels is not None:
            self.interp_ca_list = nn.ModuleList(
                InterpolatedChannelAttention(ch, num_rate_levels) for ch in stage_channels
            )

    @property
    def rate_controlled(self) -> bool:
        return self.num_rate_levels is not None

    def _run_stages(
        self, x: Tensor, q: Tensor | None, cond: Tensor | None = None, compute_dtype: torch.dtype | None = None
    ) -> Tensor:
        """``compute_dtype``: autocast every stage but the last to it; the last runs in float32."""
        if self.rate_controlled and q is None:
            raise ValueError(f"{type(self).__name__} has rate control and needs a quality level q")
        last = len(self.stage_names) - 1
        for i in range(len(self.stage_names)):
            if compute_dtype is None:
                x = self._run_stage(i, x, q, cond)
            elif i < last:
                with torch.autocast(x.device.type, dtype=compute_dtype):
                    x = self._run_stage(i, x, q, cond)
            else:
                x = self._run_stage(i, x.float(), q, cond)
        return x

    def _run_stage(self, i: int, x: Tensor, q: Tensor | None, cond: Tensor | None) -> Tensor:
        if self.rate_controlled and self.ica_before_stage:
            x = self.interp_ca_list[i](x, q)
        name = self.stage_names[i]
        layer = getattr(self, name)
        x = layer(x, cond) if name.startswith("block") else layer(x)
        if self.rate_controlled and not self.ica_before_stage:
            x = self.interp_ca_list[i](x, q)
        return x


class AnalysisTransform(_StagedTransform):
    """x (B, in_ch, H, W) -> y (B, latent_ch, H/16, W/16); H, W multiples of 16.

    Stages: conv1, block1, conv2, block2, attn2, conv3, block3, conv4, attn4 (strided convs
    are linear); with ``num_rate_levels`` an ICA follows every stage.
    """

    stage_names = ("conv1", "block1", "conv2", "block2", "attn2", "conv3", "block3", "conv4", "attn4")
    ica_before_stage = False
    downscale_factor = 16

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 192,
        latent_channels: int = 320,
        mid_channels: int = 96,
        num_rate_levels: int | None = None,
    ) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.conv1 = _conv_down(in_channels, channels)
        self.block1 = ResidualBottleneckStack(channels, mid_channels)
        self.conv2 = _conv_down(channels, channels)
        self.block2 = ResidualBottleneckStack(channels, mid_channels)
        self.attn2 = NonLocalAttention(channels)
        self.conv3 = _conv_down(channels, channels)
        self.block3 = ResidualBottleneckStack(channels, mid_channels)
        self.conv4 = _conv_down(channels, latent_channels)
        self.attn4 = NonLocalAttention(latent_channels)
        self._add_rate_control([channels] * 7 + [latent_channels] * 2, num_rate_levels)

    def forward(self, x: Tensor, q: Tensor | None = None, compute_dtype: torch.dtype | None = None) -> Tensor:
        """x in [-1, 1]; q: (1,) or (B,) quality levels when rate-controlled.

        ``compute_dtype`` (``torch.bfloat16``): every stage but the last runs under autocast, a fast
        encoder (y moves by ~1e-2, so a few symbols change; the stream stays decodable).
        """
        return self._run_stages(x, q, compute_dtype=compute_dtype)


class SynthesisTransform(_StagedTransform):
    """y_hat (B, latent_ch, h, w) -> x_hat (B, out_ch, 16h, 16w), linear output (no tanh).

    Stages: attn1, conv1, block1, conv2, attn2, block2, conv3, block3, conv4 (up-convs are
    5x5 stride-2 transposed convs); with ``num_rate_levels`` an ICA precedes every stage.
    With ``beta_channels`` the residual blocks are beta-conditioned: beta -> Fourier embedding
    -> ``mlp`` (Linear, ReLU, Linear) -> a (B, beta_channels, 1, 1) condition for every block.
    """

    stage_names = ("attn1", "conv1", "block1", "conv2", "attn2", "block2", "conv3", "block3", "conv4")
    ica_before_stage = True

    def __init__(
        self,
        latent_channels: int = 320,
        channels: int = 256,
        mid_channels: int = 128,
        out_channels: int = 3,
        num_rate_levels: int | None = None,
        beta_channels: int | None = None,
        num_frequencies: int = 10,
        max_beta: float = 5.12,
        use_pi: bool = False,
        weight_init: bool = False,
    ) -> None:
        super().__init__()
        cond = beta_channels
        self.attn1 = NonLocalAttention(latent_channels)
        self.conv1 = _conv_up(latent_channels, channels)
        self.block1 = ResidualBottleneckStack(channels, mid_channels, cond_channels=cond)
        self.conv2 = _conv_up(channels, channels)
        self.attn2 = NonLocalAttention(channels)
        self.block2 = ResidualBottleneckStack(channels, mid_channels, cond_channels=cond)
        self.conv3 = _conv_up(channels, channels)
        self.block3 = ResidualBottleneckStack(channels, mid_channels, cond_channels=cond)
        self.conv4 = _conv_up(channels, out_channels)
        self._add_rate_control([latent_channels] * 2 + [channels] * 7, num_rate_levels)
        self.beta_conditioned = beta_channels is not None
        if self.beta_conditioned:
            self.embed = FourierEmbedding(num_frequencies, max_beta, use_pi)
            self.mlp = nn.Sequential(
                nn.Linear(self.embed.dim, beta_channels),
                nn.ReLU(inplace=True),
                nn.Linear(beta_channels, beta_channels),
            )
        if weight_init:
            self.apply(_normal_init)

    @property
    def max_beta(self) -> float | None:
        return self.embed.max_beta if self.beta_conditioned else None

    def forward(
        self,
        y_hat: Tensor,
        q: Tensor | None = None,
        beta: Tensor | None = None,
        compute_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """y_hat: (B, C, h, w); q, beta: (1,) or (B,) when the transform uses them.

        ``compute_dtype`` (``torch.bfloat16`` or ``torch.float16``) is a fast inference path: every
        stage but the output conv runs under autocast (about 3x faster on CPUs with AMX); the output
        conv and the result stay float32. Pixels then differ from float32 by a few 1e-3 on [0, 1].
        """
        cond = None
        if self.beta_conditioned:
            if beta is None:
                raise ValueError("this synthesis transform is beta-conditioned and needs beta")
            cond = self.mlp(self.embed(beta).to(y_hat))[:, :, None, None]
        return self._run_stages(y_hat, q, cond, compute_dtype)


def _normal_init(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases for every conv and linear layer (official decoder init).
    Meta weights (``parameters_on_meta``: loaded right after) are skipped: ``normal_`` on the meta
    device runs torch's Python reference kernel, whose import takes a second."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and not module.weight.is_meta:
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


__all__ = ["AnalysisTransform", "SynthesisTransform"]
