"""Shared fixtures: the real configs shrunk by conf/widths/tiny.yaml and conf/debug/tiny.yaml, and real Kodak
images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from crdr.config import build_generator, config_dir, resolve
from crdr.io.images import read_image, write_image
from crdr.package_data import demo_images

ROOT = Path(__file__).resolve().parents[1]

# One intra-op thread per xdist worker: OpenMP threads of several workers sharing the same cores
# spin against each other and slow the suite down several-fold.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    torch.set_num_threads(1)

DATA = Path(__file__).parent / "data"
GOLDEN_TINY = DATA / "golden_tiny"
KODAK = demo_images()  # the three Kodak images shipped as package data
# What docs/bitstream.md promises for a stream decoded in another process, at another thread count, on
# another CPU or conv backend: the same symbols (the symbols checksum enforces it), latents and pixels
# within these (measured: latents 1e-6, pixels 4e-7 apart).
LATENT_TOLERANCE = {"rtol": 1e-6, "atol": 1e-5}
PIXEL_TOLERANCE = 1e-5


def tiny_config(name: str = "crdr") -> dict:
    """``conf/model/<name>.yaml`` as ``crdr-train model=<name> widths=tiny`` composes it: at golden_tiny widths."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return resolve(compose("train", overrides=[f"model={name}", "widths=tiny"]).model)


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


@pytest.fixture(scope="module")
def crops(kodak, tmp_path_factory) -> Path:
    """A folder of two real 256x384 Kodak crops, a.png and b.png (one FID patch each)."""
    folder = tmp_path_factory.mktemp("crops")
    write_image(kodak[0][:, :, 100:356, 200:584], folder / "a.png")
    write_image(kodak[2][:, :, 0:256, 0:384], folder / "b.png")
    return folder


@pytest.fixture(scope="session")
def golden() -> dict:
    """Official CRDR outputs for tests/data/golden_tiny/official_ckpt.pth (see its README)."""
    return torch.load(GOLDEN_TINY / "golden.pt", weights_only=True)


def tiny_train_overrides(experiment: str = "stage3_from_scratch") -> list[str]:
    """``crdr-train`` overrides that run ``experiment`` from scratch shrunk by ``debug=tiny`` (golden_tiny widths,
    2 iterations on 64 px crops of the bundled images)."""
    return [f"experiment={experiment}", "init_from=null", "debug=tiny"]


def train_config(
    output_dir: Path, overrides: Sequence[str] = (), experiment: str = "stage3_from_scratch"
) -> DictConfig:
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
