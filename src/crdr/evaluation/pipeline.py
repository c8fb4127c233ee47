"""What ``crdr evaluate`` runs (crdr.evaluation.app is its light Hydra entry point): the q x beta grid
over a dataset, its CSVs, RD plots against the official results, and an image grid."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from crdr.api import load_model
from crdr.codec import Codec
from crdr.codec.codec import entropy_parameters_for
from crdr.evaluation.grid import evaluate_grid
from crdr.evaluation.names import OFFICIAL_DATASETS
from crdr.evaluation.plots import load_results, official_results, plot_grid, plot_rd_curves
from crdr.evaluation.suite import MetricConfig, MetricSuite
from crdr.files import IMAGE_SUFFIXES, expand_paths
from crdr.io import read_image
from crdr.tracking import WandbGrid

log = logging.getLogger("crdr.evaluate")


def _floats(values: Sequence[Any] | None, used: bool) -> list[float | None]:
    return [float(v) for v in values] if used and values else [None]


def evaluate_dataset(cfg: DictConfig, folder: Path, official_name: str | None) -> list[dict[str, str]]:
    """Evaluates the grid over the images in ``folder``, writes CSVs and plots into ``cfg.output_dir``;
    returns the summary rows. ``official_name``: the set's name in the official CSVs, if it has one."""
    output_dir = Path(cfg.output_dir)
    images = expand_paths([folder], IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no PNG/JPEG images under {folder}")
    model = load_model(cfg.checkpoint, device="cpu")
    codec = Codec(
        model, device=cfg.device, entropy_parameters=entropy_parameters_for(cfg.codec.entropy_parameters, cfg.device)
    )
    images = images[: cfg.max_images] if cfg.max_images else images
    qs = _floats(cfg.grid.q, model.num_rate_levels is not None)
    betas = _floats(cfg.grid.beta, model.max_beta is not None)
    suite = MetricSuite(MetricConfig(**OmegaConf.to_container(cfg.metrics)), device=cfg.device)
    dataset = cfg.dataset_name or official_name or folder.resolve().name
    tracker = WandbGrid(cfg, OmegaConf.to_container(cfg, resolve=True)) if cfg.wandb.enabled else None
    summary = evaluate_grid(
        codec,
        images,
        qs,
        betas,
        suite,
        output_dir,
        dataset,
        progress=cfg.progress,
        on_point=None if tracker is None else tracker.log_point,
        save=cfg.save_reconstructions,
    )
    tables = {dataset: load_results(output_dir / "results.csv")}
    official = cfg.plots.official
    if official == "auto":  # the named set's, or that of a folder labelled with an official name
        official = official_name or (dataset if dataset.lower() in OFFICIAL_DATASETS else None)
    if official:
        tables[f"official {official}"] = official_results(official)
    title = f"{dataset}: {Path(cfg.checkpoint).name}" + (f"\n({suite.note})" if suite.note else "")
    plots = plot_rd_curves(tables, output=output_dir / "rd_curves", title=title)
    plots += _image_grid(codec, images[0], cfg, betas, output_dir / "grid")
    if tracker is not None:
        tracker.finish(summary, plots)
    for path in plots:
        log.info("wrote %s", path)
    log.info("results: %s", output_dir / "results.csv")
    return summary


def _image_grid(codec: Codec, path: Path, cfg: DictConfig, betas: list[float | None], output: Path) -> list[Path]:
    """The q x beta reconstructions of one image from real bitstreams (realism control at a glance)."""
    if None in betas or codec.model.num_rate_levels is None:
        return []
    x = read_image(path)
    images, bpp = {}, {}
    for q in cfg.plots.grid_q:
        data = codec.compress(x, float(q))
        bpp[float(q)] = len(data) * 8 / (x.shape[-1] * x.shape[-2])
        for beta, decoded in zip(betas, codec.decompress_many(data, betas), strict=True):
            images[(float(q), beta)] = decoded
    return plot_grid(images, output, bpp=bpp, title=path.name)
