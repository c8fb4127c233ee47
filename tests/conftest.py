"""Shared fixtures: the real model configs shrunk to tiny widths, and real Kodak images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from crdr.config import build_generator, compose_model_config, config_dir
from crdr.io import read_image

# One intra-op thread per xdist worker: OpenMP threads of several workers sharing the same cores
# spin against each other and slow the suite down several-fold.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    torch.set_num_threads(1)

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


ROOT = Path(__file__).resolve().parents[1]

#: ``crdr-train`` overrides that shrink any experiment to tiny widths and one-second steps.
TINY_TRAIN_OVERRIDES = [
    "data=kodak",
    f"data.train_dirs=[{DATA}]",
    f"data.val_dirs=[{DATA}]",
    "init_from=null",
    "perceptual_loss.random_backbone=true",
    "trainer.accelerator=cpu",
    "data.crop_size=64",
    "data.batch_size=2",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "demo_images=[]",
]


def tiny_train_overrides(experiment: str = "quickstart") -> list[str]:
    """``crdr-train`` overrides that run ``experiment`` at tiny widths (model keys it lacks are left out)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        full = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    model = OmegaConf.to_container(full.model)
    tiny = [f"model.{k}={_hydra_value(v)}" for k, v in TINY_OVERRIDES.items() if _lookup(model, k) is not None]
    if full.get("discriminator", {}).get("channels") is not None:
        tiny.append("discriminator.channels=4")
    return [f"experiment={experiment}", *tiny, *TINY_TRAIN_OVERRIDES]


def train_config(output_dir: Path, overrides: Sequence[str] = (), experiment: str = "quickstart") -> DictConfig:
    """conf/train.yaml composed as ``crdr-train experiment=...`` would, at tiny widths, writing into output_dir."""
    all_overrides = [*tiny_train_overrides(experiment), *overrides]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=all_overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # an app's task function sees the config without its hydra node
    return cfg
