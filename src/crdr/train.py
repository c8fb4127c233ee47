"""``crdr-train``: the Hydra app that composes conf/train.yaml and runs Lightning.

After ``fit`` the run folder holds ``checkpoints/`` (Lightning, resumable), ``config.yaml`` (the
fully resolved config, also beside the checkpoints), ``generator.safetensors`` (for ``crdr
compress`` and ``crdr.load_model``), ``csv/metrics.csv`` and, when ``demo_images`` are given,
their ``.crdr`` streams and decoded PNGs under ``demo/``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from crdr.checkpoints import save_generator
from crdr.config import config_dir
from crdr.files import atomic_path, expand_paths, write_text_atomic
from crdr.io import IMAGE_SUFFIXES, read_image, write_image
from crdr.tracking import wandb_has_credentials

log = logging.getLogger("crdr.train")

#: Lightning warnings that describe intended behaviour here: LPIPS is frozen in eval mode, checkpoints
#: are taken after the iteration's updates, tiny datasets have fewer batches than the log interval.
EXPECTED_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode",
    r"Using ModelCheckpoint with manual optimization",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def build_module(cfg: DictConfig) -> L.LightningModule:
    """The LightningModule of ``cfg.module`` with plain-dict arguments (so checkpoints stay tensor-only)."""
    module_cfg: dict[str, Any] = OmegaConf.to_container(cfg.module, resolve=True, throw_on_missing=True)
    cls = get_class(module_cfg.pop("_target_"))
    return cls(**module_cfg)


def build_loggers(cfg: DictConfig) -> list:
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        overrides = {}
        if name == "wandb":
            offline = node.get("offline")
            if offline is None:
                offline = not wandb_has_credentials()
                if offline:
                    log.info("W&B: no API key configured, logging offline (upload later with `wandb sync`)")
            # WandbLogger goes offline through WANDB_MODE, which wandb reads only when it is first set up in a
            # process; wandb.init's own `mode` argument holds however the process used wandb before.
            overrides = {"offline": offline, **({"mode": "offline"} if offline else {})}
        loggers.append(instantiate(node, **overrides))
    return loggers


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    """``cfg.data`` with plain containers (Lightning checkpoints its hyper-parameters; tensors and primitives only)."""
    return instantiate(cfg.data, _convert_="all")


def build_trainer(cfg: DictConfig) -> L.Trainer:
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]
    return instantiate(cfg.trainer, logger=build_loggers(cfg), callbacks=callbacks)


def run(cfg: DictConfig) -> dict[str, float]:
    """Trains as configured; returns the last logged metrics (floats)."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    for path in (output_dir / "config.yaml", output_dir / "checkpoints" / "config.yaml"):
        write_text_atomic(path, resolved)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    trainer = build_trainer(cfg)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        ckpt_path = str(output_dir / "checkpoints" / "last.ckpt")
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        wandb.finish()  # Lightning leaves the W&B run open: flush and close it (no-op where none runs)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        generator = module.generator.cpu().eval()
        generator.update_entropy_tables()
        save_generator(generator, output_dir / "generator.safetensors")
        if cfg.demo_images:
            compress_demo(generator, cfg, output_dir / "demo")
    return metrics


def compress_demo(generator, cfg: DictConfig, folder: Path) -> None:
    """Compresses ``cfg.demo_images`` at ``demo_q`` and decodes each stream at ``demo_betas``."""
    from crdr.codec import Codec

    codec = Codec(generator)
    q = cfg.demo_q if generator.num_rate_levels is not None else None
    betas = list(cfg.demo_betas) if generator.max_beta is not None else [None]
    for path in expand_paths(cfg.demo_images, IMAGE_SUFFIXES):
        image = read_image(path)
        data = codec.compress(image, q)
        with atomic_path(folder / f"{path.stem}.crdr") as tmp:
            tmp.write_bytes(data)
        for beta, decoded in zip(betas, codec.decompress_many(data, betas), strict=True):
            name = path.stem if beta is None else f"{path.stem}_beta{beta:g}"
            write_image(decoded, folder / f"{name}.png")
        bpp = len(data) * 8 / (image.shape[-1] * image.shape[-2])
        log.info("demo: %s -> %d bytes (%.3f bpp)", path.name, len(data), bpp)


def main() -> None:
    hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(run)()


if __name__ == "__main__":
    main()
