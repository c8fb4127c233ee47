"""GAN losses on raw discriminator logits, behind one interface.

Logit tensors have any shape, typically (B, 1, h, w) patch logits; every mean runs over all elements.
``weight`` (lambda_adv) multiplies only the generator term; the discriminator term is unweighted.
BCE-with-logits identities used throughout: BCE(s, 1) = softplus(-s), BCE(s, 0) = softplus(s).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class GanLoss(nn.Module):
    """Base class. ``generator_loss(fake, reference)`` and ``discriminator_loss(real, fake)``.

    - fake (G side): D(x_hat) with gradient to the generator.
    - reference: D(reference image) logits, detached by the caller; used only when ``relativistic``.
      With a ``reference_rate_delta`` (HRRGAN) the reference image is the reconstruction at level
      q + reference_rate_delta (the real image beyond the top level); otherwise it is the real image.
    - real, fake (D side): D(x) and D(x_hat.detach()).
    """

    relativistic: bool = False
    #: None: the reference image is the real one; else the reconstruction this many rate levels higher.
    reference_rate_delta: float | None = None

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be non-negative, got {weight}")
        self.weight = float(weight)

    @property
    def high_rate_reference(self) -> bool:
        """Whether the reference image is a higher-rate reconstruction (``reference_rate_delta`` is set)."""
        return self.reference_rate_delta is not None

    def generator_loss(self, fake: Tensor, reference: Tensor | None = None) -> Tensor:
        """Weighted G adversarial term (scalar)."""
        if self.relativistic:
            if reference is None:
                raise ValueError(f"{type(self).__name__} is relativistic: pass the reference logits")
            if reference.shape != fake.shape:
                raise ValueError(f"reference {tuple(reference.shape)} and fake {tuple(fake.shape)} logits differ")
            reference = reference.detach()
        return self.weight * self._generator(fake, reference)

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Unweighted D loss (scalar)."""
        return self._discriminator(real, fake)

    def _generator(self, fake: Tensor, reference: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, fake: Tensor, reference: Tensor | None = None) -> Tensor:
        """Same as ``generator_loss``."""
        return self.generator_loss(fake, reference)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


class VanillaGanLoss(GanLoss):
    """Non-saturating standard GAN (official SGAN): G BCE(fake, 1); D mean of BCE(real, 1), BCE(fake, 0)."""

    def _generator(self, fake: Tensor, reference: Tensor | None) -> Tensor:
        return F.softplus(-fake).mean()

    def _discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())


class HingeGanLoss(GanLoss):
    """Hinge GAN: G -mean(fake); D mean relu(1 - real) + mean relu(1 + fake)."""

    def _generator(self, fake: Tensor, reference: Tensor | None) -> Tensor:
        return -fake.mean()

    def _discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


class LsGanLoss(GanLoss):
    """Least-squares GAN: G 0.5 mean (fake - 1)^2; D 0.5 (mean (real - 1)^2 + mean fake^2)."""

    def _generator(self, fake: Tensor, reference: Tensor | None) -> Tensor:
        return 0.5 * (fake - 1.0).square().mean()

    def _discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * ((real - 1.0).square().mean() + fake.square().mean())


class RGanLoss(GanLoss):
    """Relativistic GAN. G: mean softplus(ref - fake).

    D: value mean softplus(fake - real); gradient half of that through each branch, as in the official
    two-backward update: 0.5 softplus(fake - sg real) + 0.5 softplus(sg fake - real).
    """

    relativistic = True

    def _generator(self, fake: Tensor, reference: Tensor | None) -> Tensor:
        assert reference is not None
        return F.softplus(reference - fake).mean()

    def _discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * F.softplus(fake - real.detach()).mean() + 0.5 * F.softplus(fake.detach() - real).mean()


class RaGanLoss(GanLoss):
    """Relativistic average GAN; the means m(.) are scalars over the whole batch and every patch position.

    G: 0.5 [mean softplus(ref - m(fake)) + mean softplus(m(ref) - fake)]
    D: 0.5 [mean softplus(m(sg fake) - real) + mean softplus(fake - m(sg real))]
    """

    relativistic = True

    def _generator(self, fake: Tensor, reference: Tensor | None) -> Tensor:
        assert reference is not None
        return 0.5 * (F.softplus(reference - fake.mean()).mean() + F.softplus(reference.mean() - fake).mean())

    def _discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        real_mean, fake_mean = real.detach().mean(), fake.detach().mean()
        return 0.5 * (F.softplus(fake_mean - real).mean() + F.softplus(fake - real_mean).mean())


class HrrGanLoss(RGanLoss):
    """High-rate-reference RGAN (the CRDR paper's HRRGAN): RGAN formulas, but the caller passes as
    ``reference`` the logits of the reconstruction at rate level q + ``reference_rate_delta`` (paper: 1;
    the real image's beyond the top level). The D update still uses the real image.
    """

    def __init__(self, weight: float = 1.0, reference_rate_delta: float = 1.0) -> None:
        super().__init__(weight)
        if not reference_rate_delta > 0:
            raise ValueError(f"reference_rate_delta must be positive, got {reference_rate_delta}")
        self.reference_rate_delta = float(reference_rate_delta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reference_rate_delta={self.reference_rate_delta}"
