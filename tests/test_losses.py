"""Losses: distortion, rate switching, GAN formulas and gradients, LPIPS without network, Hydra configs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from crdr.io.images import read_image
from crdr.losses import (
    GanLoss,
    HificRateLoss,
    HingeGanLoss,
    HrrGanLoss,
    LambdaRateLoss,
    LpipsLoss,
    LsGanLoss,
    MseLoss,
    RaGanLoss,
    RGanLoss,
    VanillaGanLoss,
)
from crdr.package_data import DEMO_IMAGE_DIR

CONF = Path(__file__).resolve().parents[1] / "conf"
ALL_GANS = [VanillaGanLoss, HingeGanLoss, LsGanLoss, RGanLoss, RaGanLoss, HrrGanLoss]


def sp(t: torch.Tensor) -> torch.Tensor:
    return torch.log1p(torch.exp(t))


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real, fake, ref = (torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64) for _ in range(3))
    return real, fake, ref


# --- distortion -------------------------------------------------------------------------------------------------


def test_mse_loss_value() -> None:
    x = torch.zeros(2, 3, 4, 4)
    x_hat = torch.full_like(x, 0.1)
    assert MseLoss()(x, x_hat).item() == pytest.approx(150 * 0.01)
    assert MseLoss(weight=2.0)(x, x).item() == 0.0
    with pytest.raises(ValueError):
        MseLoss()(x, x_hat[:, :, :2])


# --- rate -------------------------------------------------------------------------------------------------------


def test_hific_scalar_switches_at_target() -> None:
    loss = HificRateLoss(lambda_a=0.05, lambda_b=0.015625, target=1.5)
    bpp = torch.tensor([1.0, 3.0], requires_grad=True)
    above = loss(bpp, torch.tensor([1.4, 1.8]), level=None)  # mean qbpp 1.6 > 1.5
    assert above.item() == pytest.approx(0.05 * 2.0)
    at = loss(bpp, torch.tensor([1.5, 1.5]))  # equal to the target is not above it
    assert at.item() == pytest.approx(0.015625 * 2.0)
    assert loss(bpp, torch.tensor([1.0, 1.0]), level=3).item() == pytest.approx(0.015625 * 2.0)  # level ignored
    above.backward()
    assert torch.allclose(bpp.grad, torch.full((2,), 0.05 / 2))


def test_hific_per_level_indexing() -> None:
    loss = HificRateLoss([3.6, 1.8, 0.8, 0.4, 0.1], 0.015625, [0.08, 0.16, 0.36, 0.72, 1.2])
    assert loss.num_levels == 5
    bpp = torch.tensor([0.5, 0.5])
    for level, (lam_a, target) in enumerate(zip(loss.lambda_a, loss.target, strict=True)):
        assert loss(bpp, torch.full((2,), target + 0.01), level).item() == pytest.approx(lam_a * 0.5)
        assert loss(bpp, torch.full((2,), target - 0.01), level).item() == pytest.approx(0.015625 * 0.5)
    with pytest.raises(ValueError, match="level"):
        loss(bpp, bpp, None)
    with pytest.raises(ValueError, match="level"):
        loss(bpp, bpp, 5)


def test_hific_stage3_targets_zero_always_use_lambda_a() -> None:
    loss = HificRateLoss([3.4, 1.3], 0.0, [0.0, 0.0])
    assert loss(torch.tensor([1.0]), torch.tensor([1e-4]), 1).item() == pytest.approx(1.3)


@pytest.mark.parametrize(
    ("lambda_a", "lambda_b", "target", "match"),
    [
        ([1.0, 0.5], 0.1, [0.1, 0.2, 0.3], "one entry per level"),
        ([1.0, 0.5], [0.1], [0.1, 0.2], "one entry per level"),
        ([1.0, 0.5], 0.1, [0.2, 0.1], "ascending"),
        ([0.5, 1.0], 0.1, [0.1, 0.2], "descending"),
        ([1.0, 0.5], [0.1, 0.6], [0.1, 0.2], "exceed"),
        (0.01, 0.05, 1.0, "exceed"),
        (0.5, 0.1, [0.1, 0.2], "lists"),
    ],
)
def test_hific_validation(lambda_a, lambda_b, target, match) -> None:
    with pytest.raises(ValueError, match=match):
        HificRateLoss(lambda_a, lambda_b, target)


def test_lambda_rate_loss() -> None:
    bpp = torch.tensor([0.2, 0.4])
    assert LambdaRateLoss(2.0)(bpp, bpp).item() == pytest.approx(0.6)
    per_level = LambdaRateLoss([3.4, 1.3, 0.4, 0.12, 0.05])
    assert per_level(bpp, None, 2).item() == pytest.approx(0.4 * 0.3)
    with pytest.raises(ValueError):
        per_level(bpp, None, None)
    with pytest.raises(ValueError):
        LambdaRateLoss([1.0, -1.0])


# --- adversarial ------------------------------------------------------------------------------------------------


def test_gan_values_against_formulas(logits) -> None:
    real, fake, ref = logits
    cases = {
        VanillaGanLoss: (sp(-fake).mean(), 0.5 * (sp(-real).mean() + sp(fake).mean())),
        HingeGanLoss: (-fake.mean(), torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()),
        LsGanLoss: (0.5 * ((fake - 1) ** 2).mean(), 0.5 * (((real - 1) ** 2).mean() + (fake**2).mean())),
        RGanLoss: (sp(ref - fake).mean(), sp(fake - real).mean()),
        HrrGanLoss: (sp(ref - fake).mean(), sp(fake - real).mean()),
        RaGanLoss: (
            0.5 * (sp(ref - fake.mean()).mean() + sp(ref.mean() - fake).mean()),
            0.5 * (sp(fake.mean() - real).mean() + sp(fake - real.mean()).mean()),
        ),
    }
    for cls, (g_expected, d_expected) in cases.items():
        loss = cls()
        assert torch.allclose(loss.generator_loss(fake, ref), g_expected), cls
        assert torch.allclose(loss.discriminator_loss(real, fake), d_expected), cls


def test_ragan_matches_bce_form(logits) -> None:
    """The official RaGAN terms written with BCE-with-logits (labels 1 / 0)."""
    real, fake, ref = logits
    bce = F.binary_cross_entropy_with_logits
    g = 0.5 * (bce(ref - fake.mean(), torch.zeros_like(ref)) + bce(fake - ref.mean(), torch.ones_like(fake)))
    d = 0.5 * (bce(real - fake.mean(), torch.ones_like(real)) + bce(fake - real.mean(), torch.zeros_like(fake)))
    loss = RaGanLoss()
    assert torch.allclose(loss.generator_loss(fake, ref), g)
    assert torch.allclose(loss.discriminator_loss(real, fake), d)


@pytest.mark.parametrize("cls", [RGanLoss, HrrGanLoss])
def test_rgan_discriminator_gradient_is_half(cls, logits) -> None:
    real, fake, _ = (t.clone().requires_grad_(True) for t in logits)
    cls().discriminator_loss(real, fake).backward()
    real2, fake2, _ = (t.clone().requires_grad_(True) for t in logits)
    (0.5 * sp(fake2 - real2).mean()).backward()
    assert torch.allclose(real.grad, real2.grad)
    assert torch.allclose(fake.grad, fake2.grad)


def test_ragan_discriminator_gradient_through_mean_is_stopped(logits) -> None:
    real, fake, _ = (t.clone().requires_grad_(True) for t in logits)
    RaGanLoss().discriminator_loss(real, fake).backward()
    r, f = (t.detach() for t in logits[:2])
    # d/d real of 0.5*mean sp(m_f - real) only (the mean of real in the fake term is stopped)
    assert torch.allclose(real.grad, -0.5 * torch.sigmoid(f.mean() - r) / r.numel())
    assert torch.allclose(fake.grad, 0.5 * torch.sigmoid(f - r.mean()) / f.numel())


def test_generator_gradient_flows_only_to_fake(logits) -> None:
    _, fake, ref = (t.clone().requires_grad_(True) for t in logits)
    for cls in (RGanLoss, RaGanLoss, HrrGanLoss):
        cls().generator_loss(fake, ref).backward()
        assert ref.grad is None and fake.grad is not None


@pytest.mark.parametrize("cls", [VanillaGanLoss, HingeGanLoss, LsGanLoss])
def test_non_relativistic_ignore_reference(cls, logits) -> None:
    _, fake, ref = logits
    loss = cls()
    assert not loss.relativistic and not loss.high_rate_reference
    assert torch.equal(loss.generator_loss(fake, ref), loss.generator_loss(fake, None))
    assert torch.equal(loss.generator_loss(fake, ref), loss.generator_loss(fake, ref + 100))


@pytest.mark.parametrize("cls", [RGanLoss, RaGanLoss, HrrGanLoss])
def test_relativistic_need_reference(cls, logits) -> None:
    _, fake, _ = logits
    loss = cls()
    assert loss.relativistic
    assert loss.high_rate_reference is (cls is HrrGanLoss)
    with pytest.raises(ValueError, match="reference"):
        loss.generator_loss(fake, None)


@pytest.mark.parametrize("cls", ALL_GANS)
def test_weight_only_on_generator(cls, logits) -> None:
    real, fake, ref = logits
    plain, weighted = cls(), cls(weight=0.25)
    assert isinstance(weighted, GanLoss) and weighted.weight == 0.25
    assert torch.allclose(weighted.generator_loss(fake, ref), 0.25 * plain.generator_loss(fake, ref))
    assert torch.equal(weighted.discriminator_loss(real, fake), plain.discriminator_loss(real, fake))


# --- configs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(p for group in ("gan_loss", "rate_loss", "distortion_loss") for p in (CONF / group).glob("*.yaml"))
)
def test_loss_configs_instantiate(path: Path) -> None:
    obj = instantiate(OmegaConf.load(path))
    if path.parent.name == "gan_loss":
        assert isinstance(obj, GanLoss) and obj.weight == pytest.approx(0.001 / 2.56)
    elif path.parent.name == "rate_loss":
        bpp = torch.tensor([0.3, 0.5])
        assert obj(bpp, bpp, 2).item() > 0
    else:
        assert isinstance(obj, MseLoss) and obj.weight == 150.0


def test_stage_rate_configs_match_official() -> None:
    stage2 = instantiate(OmegaConf.load(CONF / "rate_loss" / "hific_per_level.yaml"))
    assert stage2.lambda_a == [3.6, 1.8, 0.8, 0.4, 0.1] and stage2.lambda_b == [0.015625] * 5
    stage3 = instantiate(OmegaConf.load(CONF / "rate_loss" / "lambda.yaml"))
    assert stage3.lmbda(0) == 3.4 and stage3.lmbda(4) == 0.05


# --- LPIPS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_lpips() -> LpipsLoss:
    with pytest.warns(UserWarning, match="RANDOM"):
        return LpipsLoss(random_backbone=True)


@pytest.fixture(scope="module")
def kodak_crops() -> tuple[torch.Tensor, torch.Tensor]:
    a = read_image(DEMO_IMAGE_DIR / "kodim03.png")[..., 100:164, 200:264]
    b = read_image(DEMO_IMAGE_DIR / "kodim15.png")[..., 100:164, 200:264]
    return a, b


def test_lpips_random_backbone_values(random_lpips: LpipsLoss, kodak_crops) -> None:
    a, b = kodak_crops
    assert random_lpips.random_backbone
    assert random_lpips(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert random_lpips(a, b).item() > 0
    batch = random_lpips(torch.cat([a, b]), torch.cat([b, a]))
    assert batch.dim() == 0 and batch.item() > 0


def test_lpips_frozen_eval_and_differentiable(random_lpips: LpipsLoss, kodak_crops) -> None:
    a, b = kodak_crops
    assert not any(p.requires_grad for p in random_lpips.parameters())
    wrapper = torch.nn.ModuleDict({"lpips": random_lpips}).train()
    assert wrapper.training
    assert not any(m.training for m in random_lpips.modules())
    x_hat = b.clone().requires_grad_(True)
    random_lpips(a, x_hat).backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in random_lpips.parameters())


def test_lpips_weight_scales(kodak_crops) -> None:
    a, b = kodak_crops
    with pytest.warns(UserWarning):
        torch.manual_seed(0)
        one = LpipsLoss(random_backbone=True)
        torch.manual_seed(0)
        two = LpipsLoss(weight=2.0, random_backbone=True)
    assert two(a, b).item() == pytest.approx(2 * one(a, b).item(), rel=1e-5)


def test_lpips_missing_weights_raise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=re.escape("alexnet-owt-7be5be79.pth")) as info:
        LpipsLoss()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "hub" / "checkpoints") in message


def test_lpips_wrong_file_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bogus)
    with pytest.raises(ValueError, match="SHA-256"):
        LpipsLoss(weights_path=bogus)


def test_lpips_backbone_copy_maps_torchvision_keys(random_lpips: LpipsLoss) -> None:
    import torchvision

    state = torchvision.models.alexnet(weights=None).state_dict()
    loss = LpipsLoss.__new__(LpipsLoss)
    torch.nn.Module.__init__(loss)
    with pytest.warns(UserWarning):
        loss.lpips = LpipsLoss(random_backbone=True).lpips
    loss._copy_backbone(state)
    assert torch.equal(getattr(loss.lpips.net.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(loss.lpips.net.slice5, "10").bias, state["features.10.bias"])
