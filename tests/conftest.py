"""Shared fixtures: the real model configs shrunk to tiny widths, and real Kodak images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crdr.config import build_generator, compose_model_config
from crdr.io import read_image

DATA = Path(__file__).parent / "data"
GOLDEN_TINY = DATA / "golden_tiny"
KODAK = sorted(DATA.glob("kodim*.png"))

#: Overrides that shrink any conf/model config to the widths of the official golden_tiny model.
TINY_OVERRIDES = {
    "encoder.channels": 12,
    "encoder.latent_channels": 20,
    "encoder.mid_channels": 6,
    "decoder.channels": 16,
    "decoder.mid_channels": 8,
    "decoder.beta_channels": 32,
    "hyper_channels": 12,
    "hyperencoder.conv1_out": 20,
    "hyperencoder.conv2_out": 16,
    "hyperdecoder.conv1_out": 12,
    "hyperdecoder.conv2_out": 16,
    "context_model.hidden": [10, 8],
}


def tiny_config(name: str = "crdr") -> dict:
    """``conf/model/<name>.yaml`` composed with Hydra and shrunk to tiny widths."""
    full = compose_model_config(name)
    overrides = [f"{k}={_hydra_value(v)}" for k, v in TINY_OVERRIDES.items() if _lookup(full, k) is not None]
    return compose_model_config(name, overrides)


def _lookup(cfg: dict, dotted: str):
    node = cfg
    for key in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _hydra_value(value) -> str:
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def tiny_model(name: str = "crdr", seed: int = 0):
    """An untrained tiny model of a conf/model variant, in eval mode with its tables built."""
    torch.manual_seed(seed)
    model = build_generator(tiny_config(name))
    model.update_entropy_tables()
    return model.eval()


@pytest.fixture(scope="session")
def kodak() -> list[torch.Tensor]:
    """The bundled Kodak images, each (1, 3, 512, 768) in [0, 1]."""
    return [read_image(p) for p in KODAK]


@pytest.fixture(scope="session")
def golden() -> dict:
    """Official CRDR outputs for tests/data/golden_tiny/official_ckpt.pth (see its README)."""
    return torch.load(GOLDEN_TINY / "golden.pt", weights_only=True)
