"""Per-iteration samplers for the realism weight beta and the rate level q.

Every sampler is a :class:`QSchedule` (conf/q_schedule) or a :class:`BetaSchedule` (conf/beta_schedule)
with ``sample(step, generator) -> float``; ``step`` is the generator iteration and all randomness comes
from torch ops on the given ``torch.Generator`` (reproducible runs). The official recipe draws one q and
one beta per batch: q uniform over the integer levels {0..4}, beta uniform over the 101-point grid
{5.12 i / 100}.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch


class ConditionSchedule(ABC):
    """Draws one value of a generator condition per training iteration."""

    @abstractmethod
    def sample(self, step: int, generator: torch.Generator) -> float:
        """The value for generator iteration ``step`` (>= 0), non-negative; every random draw is taken
        from ``generator``, which the caller seeds from (seed, step), so a resumed run draws the same."""


class QSchedule(ConditionSchedule):
    """Draws the rate level q of an iteration, at most the model's top level (fractions interpolate levels)."""


class BetaSchedule(ConditionSchedule):
    """Draws the realism weight beta of an iteration, at most the model's ``max_beta``."""


def _uniform(generator: torch.Generator) -> float:
    """One draw from U[0, 1)."""
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def _check_step(step: int) -> None:
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")


class DiscreteUniformBeta(BetaSchedule):
    """beta = max_beta * i / num_steps with i uniform over {0, ..., num_steps} (paper / official)."""

    def __init__(self, max_beta: float = 5.12, num_steps: int = 100) -> None:
        if not max_beta > 0:
            raise ValueError(f"max_beta must be positive, got {max_beta}")
        if int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps}")
        self.max_beta, self.num_steps = float(max_beta), int(num_steps)

    def sample(self, step: int, generator: torch.Generator) -> float:
        i = int(torch.randint(0, self.num_steps + 1, (), generator=generator))
        return self.max_beta * i / self.num_steps


class ContinuousUniformBeta(BetaSchedule):
    """beta uniform on [0, max_beta]."""

    def __init__(self, max_beta: float = 5.12) -> None:
        if not max_beta > 0:
            raise ValueError(f"max_beta must be positive, got {max_beta}")
        self.max_beta = float(max_beta)

    def sample(self, step: int, generator: torch.Generator) -> float:
        return self.max_beta * _uniform(generator)


class FixedBeta(BetaSchedule):
    """A constant beta (e.g. 2.56, the official validation value)."""

    def __init__(self, value: float = 2.56) -> None:
        if value < 0:
            raise ValueError(f"beta must be non-negative, got {value}")
        self.value = float(value)

    def sample(self, step: int, generator: torch.Generator) -> float:
        return self.value


class LogUniformBeta(BetaSchedule):
    """0 with ``zero_probability``, else log-uniform on [min_beta, max_beta]."""

    def __init__(self, max_beta: float = 5.12, min_beta: float = 0.01, zero_probability: float = 0.1) -> None:
        if not 0 < min_beta < max_beta:
            raise ValueError(f"need 0 < min_beta < max_beta, got min_beta={min_beta}, max_beta={max_beta}")
        if not 0 <= zero_probability <= 1:
            raise ValueError(f"zero_probability must be in [0, 1], got {zero_probability}")
        self.max_beta, self.min_beta, self.zero_probability = float(max_beta), float(min_beta), float(zero_probability)

    def sample(self, step: int, generator: torch.Generator) -> float:
        u_zero, u = _uniform(generator), _uniform(generator)  # always two draws: stream independent of outcome
        if u_zero < self.zero_probability:
            return 0.0
        lo, hi = math.log(self.min_beta), math.log(self.max_beta)
        return min(math.exp(lo + (hi - lo) * u), self.max_beta)


class EndWeightedBeta(BetaSchedule):
    """With ``end_probability`` one of the ends {0, max_beta} (equally likely), else uniform on [0, max_beta]."""

    def __init__(self, max_beta: float = 5.12, end_probability: float = 0.5) -> None:
        if not max_beta > 0:
            raise ValueError(f"max_beta must be positive, got {max_beta}")
        if not 0 <= end_probability <= 1:
            raise ValueError(f"end_probability must be in [0, 1], got {end_probability}")
        self.max_beta, self.end_probability = float(max_beta), float(end_probability)

    def sample(self, step: int, generator: torch.Generator) -> float:
        u_end, u = _uniform(generator), _uniform(generator)
        if u_end < self.end_probability:
            return self.max_beta if u_end < 0.5 * self.end_probability else 0.0
        return self.max_beta * u


class CurriculumBeta(BetaSchedule):
    """Uniform on [0, m(step)], m rising linearly from ``start_max_beta`` to ``max_beta`` over ``ramp_steps``."""

    def __init__(self, max_beta: float = 5.12, start_max_beta: float = 0.0, ramp_steps: int = 100000) -> None:
        if not max_beta > 0:
            raise ValueError(f"max_beta must be positive, got {max_beta}")
        if not 0 <= start_max_beta <= max_beta:
            raise ValueError(f"start_max_beta must be in [0, max_beta], got {start_max_beta}")
        if int(ramp_steps) != ramp_steps or ramp_steps < 0:
            raise ValueError(f"ramp_steps must be a non-negative integer, got {ramp_steps}")
        self.max_beta, self.start_max_beta, self.ramp_steps = float(max_beta), float(start_max_beta), int(ramp_steps)

    def upper(self, step: int) -> float:
        """m(step): the current upper end of the range."""
        _check_step(step)
        if self.ramp_steps == 0 or step >= self.ramp_steps:
            return self.max_beta
        return self.start_max_beta + (self.max_beta - self.start_max_beta) * step / self.ramp_steps

    def sample(self, step: int, generator: torch.Generator) -> float:
        return self.upper(step) * _uniform(generator)


class UniformLevelQ(QSchedule):
    """Integer rate level uniform over {0, ..., num_levels - 1}, returned as float (paper / official)."""

    def __init__(self, num_levels: int = 5) -> None:
        if int(num_levels) != num_levels or num_levels < 1:
            raise ValueError(f"num_levels must be a positive integer, got {num_levels}")
        self.num_levels = int(num_levels)

    def sample(self, step: int, generator: torch.Generator) -> float:
        return float(torch.randint(0, self.num_levels, (), generator=generator))


class ContinuousQ(QSchedule):
    """q uniform on [0, max_q] (fractional levels use the interpolated channel attention)."""

    def __init__(self, max_q: float = 4.0) -> None:
        if not max_q > 0:
            raise ValueError(f"max_q must be positive, got {max_q}")
        self.max_q = float(max_q)

    def sample(self, step: int, generator: torch.Generator) -> float:
        return self.max_q * _uniform(generator)


class FixedQ(QSchedule):
    """A constant q."""

    def __init__(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"q must be non-negative, got {value}")
        self.value = float(value)

    def sample(self, step: int, generator: torch.Generator) -> float:
        return self.value


__all__ = [
    "BetaSchedule",
    "ConditionSchedule",
    "ContinuousQ",
    "ContinuousUniformBeta",
    "CurriculumBeta",
    "DiscreteUniformBeta",
    "EndWeightedBeta",
    "FixedBeta",
    "FixedQ",
    "LogUniformBeta",
    "QSchedule",
    "UniformLevelQ",
]
