"""The discriminator zoo: official key layout, Hydra configs, per-level routing, conditioning."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from crdr.discriminators import (
    GvaeDiscriminator,
    HificDiscriminator,
    ModuleListDiscriminator,
    MultirateGvaeDiscriminator,
)
from crdr.io.images import read_image
from crdr.package_data import demo_images

DATA = Path(__file__).parent / "data"
CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "discriminator"
CONFIGS = sorted(p for p in CONF_DIR.glob("*.yaml") if p.stem != "none")
SMALL = 8


def _images(batch: int = 3, height: int = 64, width: int = 96) -> torch.Tensor:
    """Real Kodak crops scaled to [-1, 1], (batch, 3, height, width)."""
    crops = [read_image(p)[..., :height, :width] for p in demo_images()]
    x = torch.cat([crops[i % len(crops)] for i in range(batch)])
    return x * 2 - 1


def _latent(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    return torch.randn(batch, channels, -(-height // 16), -(-width // 16), generator=torch.Generator().manual_seed(0))


def test_module_list_state_dict_matches_official_manifest():
    with (DATA / "crdr_discriminator_state_dict.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    expected = [(r["key"], tuple(json.loads(r["shape"]))) for r in rows]
    state = ModuleListDiscriminator().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == expected
    assert all(v.dtype == torch.float32 for v in state.values())


def test_gvae_layout_and_generalisation():
    d = GvaeDiscriminator(channels=4, num_downscale=2)
    widths = [m.out_channels for m in d.model if isinstance(m, torch.nn.Conv2d)]
    assert widths == [4, 4, 8, 8, 1]
    assert d(torch.zeros(2, 3, 32, 20)).shape == (2, 1, 8, 5)


def test_none_config_means_no_discriminator():
    cfg = OmegaConf.load(CONF_DIR / "none.yaml")
    assert list(cfg.keys()) == ["_target_"]
    assert cfg._target_ is None


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_configs_instantiate_and_score(path: Path):
    cfg = OmegaConf.load(path)
    cfg.channels = SMALL
    if "latent_channels" in cfg:
        cfg.latent_channels = 6
    disc = instantiate(cfg)
    x = _images()
    assert x.min() >= -1 and x.max() <= 1
    latent = _latent(3, 6, 64, 96)
    out = disc(x, torch.tensor([2]), latent=latent)
    assert out.shape == (3, 1, 4, 6)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out_b = disc(x, torch.tensor([0, 4, 1]), latent=latent)
    assert out_b.shape == (3, 1, 4, 6)


def test_module_list_routes_each_image_to_its_level():
    torch.manual_seed(0)
    disc = ModuleListDiscriminator(num_levels=3, channels=4)
    x = _images(batch=5, height=48, width=32)
    levels = torch.tensor([2, 0, 2, 1, 0])
    out = disc(x, levels)
    for i, lv in enumerate(levels.tolist()):
        torch.testing.assert_close(out[i : i + 1], disc.subD_list[lv](x[i : i + 1]), rtol=1e-5, atol=1e-6)
    # a single level, broadcast or repeated, uses one sub-network for the whole batch
    torch.testing.assert_close(disc(x, torch.tensor([1])), disc.subD_list[1](x))
    torch.testing.assert_close(disc(x, torch.full((5,), 1)), disc.subD_list[1](x))
    # gradients reach only the sub-networks that were used
    disc.zero_grad()
    disc(x, torch.tensor([0, 0, 2, 2, 0])).sum().backward()
    assert disc.subD_list[1].model[0].weight.grad is None
    assert disc.subD_list[0].model[0].weight.grad.abs().sum() > 0
    assert disc.subD_list[2].model[0].weight.grad.abs().sum() > 0


def test_multirate_gvae_depends_on_level():
    torch.manual_seed(0)
    disc = MultirateGvaeDiscriminator(num_levels=5, channels=4)
    assert disc.model.model[0].in_channels == 3 + 5
    x = _images(batch=2)
    outs = [disc(x, torch.tensor([lv])) for lv in range(5)]
    for a, b in itertools.pairwise(outs):
        assert not torch.allclose(a, b)
    mixed = disc(x, torch.tensor([3, 1]))
    torch.testing.assert_close(mixed[0], outs[3][0])
    torch.testing.assert_close(mixed[1], outs[1][1])


def test_hific_detaches_latent_and_requires_it():
    torch.manual_seed(0)
    disc = HificDiscriminator(latent_channels=6, channels=4)
    x = _images(batch=2).requires_grad_(True)
    latent = _latent(2, 6, 64, 96).requires_grad_(True)
    out = disc(x, torch.tensor([0]), latent=latent)
    assert out.shape == (2, 1, 4, 6)
    out.sum().backward()
    assert latent.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert disc.latent_embed[0].weight.grad.abs().sum() > 0
    # the latent actually conditions the output
    disc.eval()  # freeze spectral-norm power iteration so only the latent differs between the two calls
    with torch.no_grad():
        ref = disc(x, torch.tensor([0]), latent=latent)
        torch.testing.assert_close(disc(x, torch.tensor([0]), latent=latent), ref)
        assert not torch.allclose(disc(x, torch.tensor([0]), latent=latent * 0), ref)
    with pytest.raises(ValueError, match="latent"):
        disc(x, torch.tensor([0]))
    with pytest.raises(ValueError, match="too small"):
        disc(x, torch.tensor([0]), latent=latent[..., :2, :])


@pytest.mark.parametrize("cls", [ModuleListDiscriminator, MultirateGvaeDiscriminator])
@pytest.mark.parametrize(
    "level",
    [torch.tensor([5]), torch.tensor([-1]), torch.tensor([0, 7]), torch.tensor([0, 1, 2]), torch.tensor([1.0])],
    ids=["too_high", "negative", "one_bad_in_batch", "wrong_length", "float"],
)
def test_bad_level_raises(cls, level):
    disc = cls(num_levels=5, channels=4)
    with pytest.raises(ValueError, match="level"):
        disc(torch.zeros(2, 3, 32, 32), level)
