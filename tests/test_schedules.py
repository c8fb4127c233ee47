"""Per-iteration beta and q samplers: reproducibility, ranges, the official 101-point beta grid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from crdr.lit.rate_distortion import instantiate_optional
from crdr.lit.schedules import (
    ContinuousQ,
    ContinuousUniformBeta,
    CurriculumBeta,
    DiscreteUniformBeta,
    EndWeightedBeta,
    FixedBeta,
    FixedQ,
    LogUniformBeta,
    UniformLevelQ,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
ALL = [
    DiscreteUniformBeta(),
    ContinuousUniformBeta(),
    FixedBeta(),
    LogUniformBeta(),
    EndWeightedBeta(),
    CurriculumBeta(ramp_steps=100),
    UniformLevelQ(),
    ContinuousQ(),
    FixedQ(2.0),
]


def draws(sampler, n: int, seed: int = 0, step: int = 1000) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return [sampler.sample(step, g) for _ in range(n)]


@pytest.mark.parametrize("sampler", ALL, ids=lambda s: type(s).__name__)
def test_reproducible_and_float(sampler) -> None:
    a, b = draws(sampler, 50), draws(sampler, 50)
    assert a == b
    assert all(isinstance(v, float) for v in a)


@pytest.mark.parametrize(
    "sampler", [s for s in ALL if not isinstance(s, FixedBeta | FixedQ)], ids=lambda s: type(s).__name__
)
def test_different_seeds_differ(sampler) -> None:
    assert draws(sampler, 50, seed=0) != draws(sampler, 50, seed=1)


def test_discrete_uniform_beta_grid() -> None:
    values = draws(DiscreteUniformBeta(), 5000)
    distinct = set(values)
    assert len(distinct) == 101
    assert 0.0 in distinct and 5.12 in distinct
    assert distinct == {5.12 * i / 100 for i in range(101)}


@pytest.mark.parametrize("sampler", [ContinuousUniformBeta(), EndWeightedBeta(), LogUniformBeta()])
def test_beta_range(sampler) -> None:
    values = torch.tensor(draws(sampler, 2000))
    assert values.min() >= 0 and values.max() <= 5.12


def test_log_uniform_beta() -> None:
    values = torch.tensor(draws(LogUniformBeta(), 4000))
    zeros = (values == 0).float().mean().item()
    assert 0.07 < zeros < 0.13
    nonzero = values[values > 0]
    assert nonzero.min() >= 0.01
    # log-uniform: the median of the nonzero draws sits at the geometric mean of the range
    assert nonzero.median().item() == pytest.approx((0.01 * 5.12) ** 0.5, rel=0.2)


def test_end_weighted_beta() -> None:
    values = torch.tensor(draws(EndWeightedBeta(end_probability=0.5), 4000))
    at_zero = (values == 0).float().mean().item()
    at_max = (values == 5.12).float().mean().item()
    assert 0.2 < at_zero < 0.3 and 0.2 < at_max < 0.3
    assert set(draws(EndWeightedBeta(end_probability=1.0), 200)) == {0.0, 5.12}


def test_curriculum_range_grows() -> None:
    sampler = CurriculumBeta(max_beta=5.12, start_max_beta=0.0, ramp_steps=100)
    assert sampler.upper(0) == 0.0 and sampler.upper(50) == pytest.approx(2.56) and sampler.upper(500) == 5.12
    assert set(draws(sampler, 20, step=0)) == {0.0}
    early, late = max(draws(sampler, 500, step=10)), max(draws(sampler, 500, step=100))
    assert early <= 0.512 < 4.5 < late <= 5.12


def test_uniform_levels_q() -> None:
    values = draws(UniformLevelQ(), 1000)
    assert set(values) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_continuous_q_and_fixed() -> None:
    values = torch.tensor(draws(ContinuousQ(), 1000))
    assert values.min() >= 0 and values.max() <= 4.0 and len(set(values.tolist())) > 900
    assert set(draws(FixedQ(3.0), 10)) == {3.0}
    assert set(draws(FixedBeta(), 10)) == {2.56}


@pytest.mark.parametrize(
    "make",
    [
        lambda: DiscreteUniformBeta(num_steps=0),
        lambda: DiscreteUniformBeta(max_beta=-1.0),
        lambda: ContinuousUniformBeta(0.0),
        lambda: FixedBeta(-0.1),
        lambda: LogUniformBeta(min_beta=0.0),
        lambda: LogUniformBeta(min_beta=6.0),
        lambda: LogUniformBeta(zero_probability=1.5),
        lambda: EndWeightedBeta(end_probability=-0.1),
        lambda: CurriculumBeta(start_max_beta=6.0),
        lambda: CurriculumBeta(ramp_steps=-1),
        lambda: UniformLevelQ(0),
        lambda: ContinuousQ(0.0),
        lambda: FixedQ(-1.0),
    ],
)
def test_validation(make) -> None:
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    "path",
    sorted(p for group in ("beta_schedule", "q_schedule") for p in (CONF / group).glob("*.yaml") if p.stem != "none"),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_schedule_configs_instantiate(path: Path) -> None:
    sampler = instantiate(OmegaConf.load(path))
    value = sampler.sample(0, torch.Generator().manual_seed(0))
    assert isinstance(value, float) and 0.0 <= value <= 5.12


@pytest.mark.parametrize("group", ["beta_schedule", "q_schedule"])
def test_none_schedules_mean_no_sampling(group: str) -> None:
    assert instantiate_optional(dict(OmegaConf.load(CONF / group / "none.yaml"))) is None
