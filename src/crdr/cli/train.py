"""``crdr-train``: the Hydra app that composes conf/train.yaml and runs Lightning.

After ``fit`` the run folder holds ``checkpoints/`` (Lightning, resumable), ``config.yaml`` (the
fully resolved config, also beside the checkpoints), ``generator.safetensors`` (for ``crdr
compress`` and ``crdr.load_model``), ``csv/metrics.csv`` and, when ``demo_images`` are given,
their ``.crdr`` streams and decoded PNGs under ``demo/``.
"""

from __future__ import annotations

import inspect
import logging
import signal
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from crdr.cli.hydra_app import run_hydra_app
from crdr.io.errors import ConfigError
from crdr.io.files import IMAGE_SUFFIXES, expand_paths, write_bytes_atomic, write_text_atomic
from crdr.io.images import read_image, write_image
from crdr.io.wandb_mode import PROBE_TIMEOUT, wandb_mode
from crdr.lit.callbacks import CheckpointOnSignal
from crdr.loading.checkpoints import save_generator

log = logging.getLogger("crdr.train")

#: Exit status of a run stopped by SIGTERM (or SIGUSR2) after saving last.ckpt (128 + 15, as for SIGTERM).
STOPPED_EXIT_CODE = 143
#: Exit status of a run stopped by SIGINT (Ctrl-C) after saving last.ckpt (128 + 2, as for SIGINT).
INTERRUPTED_EXIT_CODE = 130

#: Lightning warnings that describe intended behaviour here: LPIPS is frozen in eval mode, checkpoints
#: are taken after the iteration's updates, tiny datasets have fewer batches than the log interval.
EXPECTED_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode",
    r"Using ModelCheckpoint with manual optimization",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Checkpoint directory .* exists and is not empty",  # config.yaml is there; stale checkpoints: see run()
)


def build_module(cfg: DictConfig) -> L.LightningModule:
    """The LightningModule of ``cfg.module`` with plain-dict arguments (so checkpoints stay tensor-only)."""
    module_cfg: dict[str, Any] = OmegaConf.to_container(cfg.module, resolve=True, throw_on_missing=True)
    cls = get_class(module_cfg.pop("_target_"))
    accepted = _init_keys(cls)
    unknown = sorted(set(module_cfg) - accepted)
    if unknown:
        raise ConfigError(f"module: unknown key(s) {unknown} for {cls.__name__}; it takes {sorted(accepted)}")
    return cls(**module_cfg)


def _init_keys(cls: type) -> set[str]:
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the MRO."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__:
            continue
        parameters = inspect.signature(klass.__dict__["__init__"]).parameters.values()
        keys |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return keys


def build_loggers(cfg: DictConfig) -> list:
    """The loggers of ``cfg.logger``; W&B's mode is chosen first, on rank 0 (see crdr.io.wandb_mode: offline
    without credentials or when the service does not answer within ``probe_timeout`` seconds)."""
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if name == "wandb":
            node = OmegaConf.to_container(node, resolve=True)
            timeout = node.pop("probe_timeout", PROBE_TIMEOUT)
            root_dir = Path(node.get("save_dir") or node.get("dir") or ".")
            # only rank 0 logs to W&B (WandbLogger): the other DDP ranks neither probe nor print the line
            on_rank_zero = rank_zero_only.rank == 0
            mode = wandb_mode(node.get("offline"), root_dir, timeout, "logger.wandb") if on_rank_zero else "offline"
            # WandbLogger's offline=True only sets WANDB_MODE, which wandb ignores (with a warning) once its
            # settings are loaded, as wandb_mode loads them: the mode goes to wandb.init itself.
            node.update(offline=False, mode=mode)
        loggers.append(instantiate(node))
    return loggers


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    """``cfg.data`` with plain containers (Lightning checkpoints its hyper-parameters; tensors and primitives
    only); the run's ``seed`` also seeds the training stream (sample order, crops, flips)."""
    return instantiate(cfg.data, seed=cfg.seed, _convert_="all")


def build_trainer(cfg: DictConfig) -> L.Trainer:
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]
    return instantiate(cfg.trainer, logger=build_loggers(cfg), callbacks=callbacks)


def resume_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``ckpt_path`` as Lightning takes it: "last" is <output_dir>/checkpoints/last.ckpt (which must
    exist), "auto" is that file when it exists and a fresh start otherwise (requeued jobs)."""
    if ckpt_path not in ("last", "auto"):
        return ckpt_path
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("resuming from %s", last)
        return str(last)
    if ckpt_path == "last":
        raise FileNotFoundError(f"ckpt_path=last: {last} does not exist (nothing to resume in this output dir)")
    return None


def run(cfg: DictConfig) -> dict[str, float]:
    """Trains as configured; returns the last logged metrics (floats)."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resume_path(cfg.get("ckpt_path"), output_dir)
    if ckpt_path is None and any((output_dir / "checkpoints").glob("*.ckpt")):
        log.warning("%s already holds checkpoints of another run; resume it with ckpt_path=last", output_dir)
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    for path in (output_dir / "config.yaml", output_dir / "checkpoints" / "config.yaml"):
        write_text_atomic(path, resolved)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    trainer = build_trainer(cfg)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        log.warning("stopped by a signal at step %d; resume with ckpt_path=last", trainer.global_step)
        received = {cb.received for cb in trainer.callbacks if isinstance(cb, CheckpointOnSignal)}
        raise SystemExit(INTERRUPTED_EXIT_CODE if signal.SIGINT in received else STOPPED_EXIT_CODE) from None
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
    from crdr.codec import Codec, bits_per_pixel

    codec = Codec(generator)
    q = cfg.demo_q if generator.num_rate_levels is not None else None
    betas = list(cfg.demo_betas) if generator.max_beta is not None else [None]
    for path in expand_paths(cfg.demo_images, IMAGE_SUFFIXES):
        image = read_image(path)
        data = codec.compress(image, q)
        write_bytes_atomic(folder / f"{path.stem}.crdr", data)
        for beta, decoded in zip(betas, codec.decompress_many(data, betas), strict=True):
            name = path.stem if beta is None else f"{path.stem}_beta{beta:g}"
            write_image(decoded, folder / f"{name}.png")
        bpp = bits_per_pixel(len(data), *image.shape[-2:])
        log.info("demo: %s -> %d bytes (%.3f bpp)", path.name, len(data), bpp)


def main() -> None:
    run_hydra_app("train", run, log)


if __name__ == "__main__":
    main()
