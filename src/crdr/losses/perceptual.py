"""LPIPS perceptual loss: the frozen, offline LPIPS network of ``crdr.metrics.lpips``, weighted and averaged."""

from __future__ import annotations

import os

from torch import Tensor

from crdr.metrics.lpips import Lpips


class LpipsLoss(Lpips):
    """``weight * mean over the batch of LPIPS(x, x_hat)``; x, x_hat: (B, 3, H, W) on [0, 1] -> scalar.

    The network, its offline weights and ``random_backbone``/``seed`` are those of :class:`Lpips`, whose
    ``distance`` (unweighted, per image) it keeps.
    """

    def __init__(
        self,
        weight: float = 1.0,
        net: str = "alex",
        random_backbone: bool = False,
        weights_path: str | os.PathLike | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(net, random_backbone, weights_path, seed)
        self.weight = float(weight)

    def forward(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """``weight`` times the batch mean of :meth:`distance` (a scalar)."""
        return self.weight * self.distance(x, x_hat).mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight}, {super().extra_repr()}"
