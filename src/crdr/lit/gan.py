"""Stage 3: rate + distortion + beta * (LPIPS + adversarial), with a discriminator step per iteration."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from crdr.discriminators import Discriminator
from crdr.io.errors import ConfigError
from crdr.lit.rate_distortion import RateDistortionModule, compile_units, instantiate_as
from crdr.losses import GanLoss
from crdr.models import use_channels_last
from crdr.models.generator import GeneratorOutput, rate_level


class GanModule(RateDistortionModule):
    """The rate-distortion iteration plus a discriminator, stepped by manual optimization.

    Generator loss: ``distortion + rate + beta * (perceptual + adversarial)`` (paper, eq. 7); a
    model without beta conditioning uses weight 1. The discriminator scores images in [-1, 1] at
    the batch's rate level ``rate_level(q)``, conditioned on the level-q latent y_hat where it uses one.
    Relativistic losses compare D(x_hat) with D(reference): the real image, or, for a loss with a
    ``reference_rate_delta`` (HRRGAN), the generator's reconstruction at ``q + reference_rate_delta``
    with the same beta, computed with the pre-update weights and without gradients (the real image
    when ``q + delta`` is beyond the top level). The discriminator always trains on real images
    against this iteration's (detached) reconstruction. ``discriminator: {_target_: null}`` trains
    without an adversarial term.
    """

    def __init__(
        self,
        *args: Any,
        gan_loss: dict[str, Any],
        discriminator: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.discriminator: Discriminator | None = instantiate_as(
            discriminator, Discriminator, "discriminator", optional=True
        )
        if self.discriminator is not None:
            d_levels, g_levels = self.discriminator.num_levels, self.generator.num_rate_levels
            if d_levels is not None and g_levels is not None and d_levels < g_levels:
                raise ConfigError(f"discriminator: {d_levels} rate levels, but the model has {g_levels}")
            if self.hparams.channels_last:
                use_channels_last(self.discriminator)
        self.gan_loss: GanLoss = instantiate_as(gan_loss, GanLoss, "gan_loss")

    def networks_to_compile(self) -> list[nn.Module]:
        """The generator's networks, LPIPS and the discriminator's compile units."""
        return super().networks_to_compile() + compile_units(self.discriminator)

    def configure_optimizers(self):
        optimizers, schedulers = super().configure_optimizers()
        if self.discriminator is not None:
            cfg = self.hparams.optimizer
            d_opt = instantiate(cfg["discriminator"])(self.discriminator.parameters())
            optimizers.append(d_opt)
            schedulers.append(instantiate(cfg["scheduler"])(d_opt))
        return optimizers, schedulers

    # -- generator side ----------------------------------------------------------------------
    def _level(self, q: float | None) -> Tensor:
        """(1,) int64 rate level of the batch, on the CPU: the discriminator checks it and picks its
        sub-discriminator without waiting for the GPU (as a CUDA tensor, each read is a device sync)."""
        return torch.tensor([0 if q is None else rate_level(q)])

    def _latent(self, out: GeneratorOutput) -> Tensor | None:
        """What the discriminator is conditioned on besides the level: y_hat where it uses the latent."""
        return out.y_hat if self.discriminator.uses_latent else None

    def reference_images(self, x: Tensor, q: float | None, beta: float | None) -> Tensor:
        """The image D(x_hat) is compared with: x, or the q + delta reconstruction (HRRGAN); in [0, 1]."""
        delta = self.gan_loss.reference_rate_delta
        if delta is None or q is None:
            return x
        q_ref = q + delta
        if q_ref > self.generator.num_rate_levels - 1:
            return x
        with torch.no_grad():
            return self.generator.reconstruct(x, q_ref, beta)

    def loss_terms(self, x: Tensor, out: GeneratorOutput, q: float | None, beta: float | None) -> dict[str, Tensor]:
        """The rate-distortion terms and, with a discriminator, the adversarial one."""
        terms = super().loss_terms(x, out, q, beta)
        if self.discriminator is not None:
            level, latent = self._level(q), self._latent(out)
            fake = self.discriminator(_scaled(out.x_hat), level, latent)
            reference = None
            if self.gan_loss.relativistic:
                ref_image = self.reference_images(x, q, beta)
                with torch.no_grad():
                    reference = self.discriminator(_scaled(ref_image), level, latent)
            terms["adversarial"] = self.gan_loss.generator_loss(fake, reference)
        return terms

    def realism_weight(self, beta: float | None) -> float:
        """beta (paper, eq. 7); 1 for a model without beta conditioning."""
        return 1.0 if beta is None else beta

    # -- discriminator side ------------------------------------------------------------------
    def after_generator_step(
        self, x: Tensor, out: GeneratorOutput, q: float | None, beta: float | None, terms: dict[str, Tensor]
    ) -> None:
        if self.discriminator is None:
            return
        d_opt = self._raw_optimizers()[2]
        level, latent = self._level(q), self._latent(out)
        latent = None if latent is None else latent.detach()
        real = self.discriminator(_scaled(x), level, latent)
        fake = self.discriminator(_scaled(out.x_hat.detach()), level, latent)
        loss = self.gan_loss.discriminator_loss(real, fake)
        d_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        d_opt.step()
        self.lr_schedulers_list()[1].step()
        if self.logs_this_step():
            self.log_dict(
                {
                    "train/d_loss": loss.detach(),
                    "train/d_real_logit": real.detach().mean(),
                    "train/d_fake_logit": fake.detach().mean(),
                },
                on_step=True,
            )


def _scaled(images: Tensor) -> Tensor:
    """[0, 1] -> the discriminator's [-1, 1], always float32: under mixed precision reconstructions
    come out in bfloat16 and real images in float32, and one input dtype keeps one compiled graph."""
    return images.float() * 2 - 1
