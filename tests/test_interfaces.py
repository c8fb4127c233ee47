"""Every option of the training's pluggable config groups builds an object of its interface, which
behaves as the interface says; the Lightning modules refuse one of the wrong kind."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from conftest import train_config
from crdr.cli.train import build_module
from crdr.config import config_dir
from crdr.discriminators import Discriminator
from crdr.io.errors import ConfigError
from crdr.lit.schedules import BetaSchedule, QSchedule
from crdr.losses import GanLoss, RateLoss

INTERFACES = {
    "q_schedule": QSchedule,
    "beta_schedule": BetaSchedule,
    "discriminator": Discriminator,
    "rate_loss": RateLoss,
    "gan_loss": GanLoss,
}
OPTIONS = [(group, p.stem) for group in INTERFACES for p in sorted((config_dir() / group).glob("*.yaml"))]


def check_schedule(schedule: QSchedule | BetaSchedule, top: float) -> None:
    draws = [schedule.sample(step, torch.Generator().manual_seed(step)) for step in range(20)]
    again = [schedule.sample(step, torch.Generator().manual_seed(step)) for step in range(20)]
    assert draws == again and all(isinstance(v, float) and 0 <= v <= top for v in draws)


def check_discriminator(d: Discriminator, latent_channels: int) -> None:
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    latent = torch.randn(2, latent_channels, 4, 4)
    top = torch.tensor([0 if d.num_levels is None else d.num_levels - 1])
    d.eval()  # spectral norm updates its power iteration only in training mode
    with torch.no_grad():
        logits = d(x, top, latent)
        assert logits.ndim == 4 and logits.shape[:2] == (2, 1) and logits.shape[-1] > 0
        if not d.uses_latent:
            torch.testing.assert_close(d(x, top, None), logits)
        if d.num_levels is None:
            torch.testing.assert_close(d(x, torch.tensor([3]), latent), logits)
    assert d.compile_units()


def check_rate_loss(loss: RateLoss, num_levels: int) -> None:
    assert loss.num_levels in (None, num_levels)
    bpp = torch.tensor([0.5, 0.7], requires_grad=True)
    value = loss(bpp, bpp.detach().mean().reshape(1), None if loss.num_levels is None else num_levels - 1)
    value.backward()
    assert value.ndim == 0 and value > 0 and bool((bpp.grad > 0).all())


def check_gan_loss(loss: GanLoss) -> None:
    fake, real = torch.randn(2, 1, 4, 4, requires_grad=True), torch.randn(2, 1, 4, 4)
    g = loss.generator_loss(fake, real if loss.relativistic else None)
    g.backward()
    d = loss.discriminator_loss(real, fake.detach())
    assert g.ndim == d.ndim == 0 and torch.isfinite(g) and torch.isfinite(d) and fake.grad is not None


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_builds_an_object_of_its_interface(tmp_path, group, option):
    cfg = train_config(tmp_path, [f"{group}={option}"])
    if cfg[group]["_target_"] is None:
        assert option == "none"  # the "none" options build nothing
        return
    built = instantiate(cfg[group])
    assert isinstance(built, INTERFACES[group])
    levels = cfg.model.encoder.num_rate_levels
    if group == "q_schedule":
        check_schedule(built, levels - 1)
    elif group == "beta_schedule":
        check_schedule(built, cfg.model.decoder.max_beta)
    elif group == "discriminator":
        check_discriminator(built, cfg.model.encoder.latent_channels)
    elif group == "rate_loss":
        check_rate_loss(built, levels)
    else:
        check_gan_loss(built)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["q_schedule._target_=crdr.lit.schedules.FixedBeta", "~q_schedule.num_levels", "+q_schedule.value=1.0"],
            "q_schedule: crdr.lit.schedules.FixedBeta is not a QSchedule",
        ),
        (["rate_loss._target_=crdr.losses.MseLoss", "~rate_loss.lmbda"], "rate_loss: crdr.losses.distortion.MseLoss"),
        (
            ["discriminator=module_list", "discriminator.num_levels=3"],
            "discriminator: 3 rate levels, but the model has 5",
        ),
    ],
)
def test_the_modules_refuse_an_object_of_the_wrong_kind(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_module(train_config(tmp_path, overrides))
