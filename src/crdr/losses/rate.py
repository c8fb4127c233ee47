"""Rate losses on bits per pixel (:class:`RateLoss`): HiFiC-style target switching, and a plain lambda per level."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from torch import Tensor

FloatOrList = float | Sequence[float]


def _is_list(value: FloatOrList) -> bool:
    return not isinstance(value, int | float)


def _as_floats(name: str, value: FloatOrList) -> list[float]:
    values = [float(v) for v in value]
    if not values:
        raise ValueError(f"{name} must not be an empty list")
    return values


def _level_index(level: int | None, num_levels: int) -> int:
    if level is None:
        raise ValueError(f"this rate loss has one lambda per rate level ({num_levels}); pass the batch's level")
    index = int(level)
    if index != level or not 0 <= index < num_levels:
        raise ValueError(f"rate level must be an integer in [0, {num_levels - 1}], got {level}")
    return index


class RateLoss(ABC):
    """``lambda * mean(bpp)`` of a batch, lambda chosen per rate level and, where the loss has targets,
    by the batch's rounded rate (conf/rate_loss)."""

    @property
    @abstractmethod
    def num_levels(self) -> int | None:
        """Number of rate levels with their own lambda, or None for one lambda at every level."""

    @abstractmethod
    def __call__(self, bpp: Tensor, qbpp: Tensor, level: int | None = None) -> Tensor:
        """bpp: (B,) noisy, differentiable; qbpp: (B,) (or the global batch's (1,) mean) rounded-latent bpp,
        detached; level: the batch's integer rate level (None for a model without levels) -> scalar."""


class HificRateLoss(RateLoss):
    """HiFiC rate loss: ``lambda * mean(bpp)``, lambda = lambda_a if mean(qbpp) > target else lambda_b.

    Either all scalars (stage 1; ``level`` is ignored) or per-level lists (stages 2 and 3, indexed by the
    batch's integer rate level; a scalar lambda_b is broadcast). The switch is decided once per batch on
    the detached mean of the rounded-latent bpp; the gradient flows through the noisy bpp.
    """

    def __init__(self, lambda_a: FloatOrList, lambda_b: FloatOrList, target: FloatOrList) -> None:
        self.per_level = _is_list(lambda_a) or _is_list(lambda_b) or _is_list(target)
        if not self.per_level:
            self.lambda_a, self.lambda_b, self.target = [float(lambda_a)], [float(lambda_b)], [float(target)]
        else:
            if not (_is_list(lambda_a) and _is_list(target)):
                raise ValueError("per-level HificRateLoss needs lambda_a and target as lists (lambda_b may be scalar)")
            self.lambda_a = _as_floats("lambda_a", lambda_a)
            self.target = _as_floats("target", target)
            n = len(self.lambda_a)
            self.lambda_b = _as_floats("lambda_b", lambda_b) if _is_list(lambda_b) else [float(lambda_b)] * n
            if not len(self.target) == len(self.lambda_b) == n:
                raise ValueError(
                    f"lambda_a, lambda_b and target need one entry per level: got lengths "
                    f"{n}, {len(self.lambda_b)}, {len(self.target)}"
                )
            if any(b < a for a, b in zip(self.target, self.target[1:], strict=False)):
                raise ValueError(f"targets must be sorted ascending, got {self.target}")
            if any(b > a for a, b in zip(self.lambda_a, self.lambda_a[1:], strict=False)):
                raise ValueError(f"lambda_a must be sorted descending, got {self.lambda_a}")
        bad = [i for i, (a, b) in enumerate(zip(self.lambda_a, self.lambda_b, strict=True)) if not a > b]
        if bad:
            raise ValueError(f"lambda_a must exceed lambda_b at every level; fails at level(s) {bad}")
        if any(v < 0 for v in (*self.lambda_a, *self.lambda_b)):
            raise ValueError("lambdas must be non-negative")

    @property
    def num_levels(self) -> int | None:
        """Number of rate levels, or None for the single-rate (scalar) version."""
        return len(self.lambda_a) if self.per_level else None

    def lmbda(self, qbpp: Tensor, level: int | None = None) -> float:
        """The lambda chosen for this batch; qbpp: (B,) rounded-latent bpp."""
        i = _level_index(level, len(self.lambda_a)) if self.per_level else 0
        over = float(qbpp.detach().float().mean()) > self.target[i]
        return self.lambda_a[i] if over else self.lambda_b[i]

    def __call__(self, bpp: Tensor, qbpp: Tensor, level: int | None = None) -> Tensor:
        """bpp: (B,) noisy, differentiable; qbpp: (B,) rounded, detached -> scalar."""
        return self.lmbda(qbpp, level) * bpp.mean()

    def __repr__(self) -> str:
        if not self.per_level:
            return f"HificRateLoss(lambda_a={self.lambda_a[0]}, lambda_b={self.lambda_b[0]}, target={self.target[0]})"
        return f"HificRateLoss(lambda_a={self.lambda_a}, lambda_b={self.lambda_b}, target={self.target})"


class LambdaRateLoss(RateLoss):
    """``lambda * mean(bpp)`` with one lambda, or one per rate level (official stage 3, where every
    HiFiC target is 0 so lambda_a[q] always applies)."""

    def __init__(self, lmbda: FloatOrList) -> None:
        self.per_level = _is_list(lmbda)
        self.lmbda_values = _as_floats("lmbda", lmbda) if self.per_level else [float(lmbda)]
        if any(v < 0 for v in self.lmbda_values):
            raise ValueError(f"lambdas must be non-negative, got {self.lmbda_values}")

    @property
    def num_levels(self) -> int | None:
        """Number of rate levels, or None for the single-lambda version."""
        return len(self.lmbda_values) if self.per_level else None

    def lmbda(self, level: int | None = None) -> float:
        return (
            self.lmbda_values[_level_index(level, len(self.lmbda_values))] if self.per_level else self.lmbda_values[0]
        )

    def __call__(self, bpp: Tensor, qbpp: Tensor | None = None, level: int | None = None) -> Tensor:
        """bpp: (B,) noisy, differentiable; qbpp unused (kept for a common signature) -> scalar."""
        return self.lmbda(level) * bpp.mean()

    def __repr__(self) -> str:
        value = self.lmbda_values if self.per_level else self.lmbda_values[0]
        return f"LambdaRateLoss(lmbda={value})"
