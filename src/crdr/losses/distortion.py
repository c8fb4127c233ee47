"""Distortion loss: weighted MSE on the [0, 1] scale (official weight 150 in every stage)."""

from __future__ import annotations

from torch import Tensor


class MseLoss:
    """``weight * mean((x - x_hat)**2)`` over every element, images on the [0, 1] scale.

    150 on [0, 1] equals 37.5 on [-1, 1], the scale the official code uses for its inputs.
    """

    def __init__(self, weight: float = 150.0) -> None:
        if weight < 0:
            raise ValueError(f"weight must be non-negative, got {weight}")
        self.weight = float(weight)

    def __call__(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """x, x_hat: (B, 3, H, W) in [0, 1] (x_hat may be unclamped) -> scalar."""
        if x.shape != x_hat.shape:
            raise ValueError(f"shape mismatch: x {tuple(x.shape)} vs x_hat {tuple(x_hat.shape)}")
        return self.weight * (x - x_hat).square().mean()

    def __repr__(self) -> str:
        return f"MseLoss(weight={self.weight})"
