"""``crdr evaluate``: the Hydra app over conf/evaluate.yaml (see that file for every option)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from crdr.api import load_model
from crdr.codec import Codec
from crdr.config import config_dir
from crdr.evaluation.grid import evaluate_grid
from crdr.evaluation.plots import load_results, official_results, plot_grid, plot_rd_curves
from crdr.evaluation.suite import MetricConfig, MetricSuite
from crdr.files import expand_paths
from crdr.io import IMAGE_SUFFIXES, read_image
from crdr.tracking import WandbGrid

log = logging.getLogger("crdr.evaluate")


def _floats(values: Sequence[Any] | None, used: bool) -> list[float | None]:
    return [float(v) for v in values] if used and values else [None]


def run(cfg: DictConfig) -> list[dict[str, str]]:
    """Evaluates the grid, writes CSVs and plots into ``cfg.output_dir``; returns the summary rows."""
    output_dir = Path(cfg.output_dir)
    model = load_model(cfg.checkpoint, device="cpu")
    codec = Codec(model, device=cfg.device)
    images = expand_paths([cfg.dataset], IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no PNG/JPEG images under {cfg.dataset}")
    images = images[: cfg.max_images] if cfg.max_images else images
    qs = _floats(cfg.grid.q, model.num_rate_levels is not None)
    betas = _floats(cfg.grid.beta, model.max_beta is not None)
    suite = MetricSuite(MetricConfig(**OmegaConf.to_container(cfg.metrics)), device=cfg.device)
    dataset = cfg.dataset_name or Path(cfg.dataset).resolve().name
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
    )
    tables = {dataset: load_results(output_dir / "results.csv")}
    if cfg.plots.official:
        tables[f"official {cfg.plots.official}"] = official_results(cfg.plots.official)
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


def main(overrides: Sequence[str] | None = None) -> None:
    """Runs the app; ``overrides`` replace the command-line arguments (``crdr evaluate`` passes its own)."""
    if overrides is not None:
        sys.argv = [f"{Path(sys.argv[0]).name} evaluate", *overrides]
    hydra.main(config_path=str(config_dir()), config_name="evaluate", version_base="1.3")(run)()


if __name__ == "__main__":
    main()
