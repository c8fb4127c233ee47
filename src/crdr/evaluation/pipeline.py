"""What ``crdr evaluate`` runs (crdr.cli.evaluate is its light Hydra entry point): the q x beta grid
over a dataset, its CSVs, RD plots against the official results, and an image grid."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from crdr.codec import Codec, bits_per_pixel
from crdr.codec.codec import entropy_parameters_for
from crdr.evaluation.grid import SUMMARY_FILE, evaluate_grid
from crdr.evaluation.names import OFFICIAL_DATASETS
from crdr.evaluation.plots import load_results, official_results, plot_grid, plot_rd_curves
from crdr.evaluation.shards import SHARD_FILE, SHARD_KEY, PooledInputs, Shard
from crdr.evaluation.suite import MetricConfig, MetricSuite
from crdr.evaluation.tracking import WandbGrid
from crdr.io.errors import ConfigError
from crdr.io.files import IMAGE_SUFFIXES, expand_paths, write_text_atomic
from crdr.io.images import read_image
from crdr.loading.model import load_model

log = logging.getLogger("crdr.evaluate")


def _floats(values: Sequence[Any] | None, used: bool) -> list[float | None]:
    return [float(v) for v in values] if used and values else [None]


def evaluate_dataset(cfg: DictConfig, folder: Path, official_name: str | None) -> list[dict[str, str]]:
    """Evaluates the grid over the images in ``folder``, writes CSVs and plots into ``cfg.output_dir``;
    returns the summary rows. ``official_name``: the set's name in the official CSVs, if it has one.

    With ``shard.count`` > 1 it scores only shard ``shard.index`` of the images, into
    ``output_dir/shard-INDEX-of-COUNT``, and keeps what ``crdr merge`` needs (crdr.evaluation.shards); the
    merge then writes the RD plots and logs to W&B, the shards do not."""
    all_images = expand_paths([folder], IMAGE_SUFFIXES)
    if not all_images:
        raise FileNotFoundError(f"no PNG/JPEG images under {folder}")
    all_images = all_images[: cfg.max_images] if cfg.max_images else all_images
    shard = Shard(cfg.shard.index, cfg.shard.count)
    images = shard.select(all_images)
    # The picture grid's input (the first image, or its plots.grid_crop), checked before the long evaluation.
    grid_input = grid_region(read_image(all_images[0]), cfg.plots.grid_crop, all_images[0].name)
    output_dir = shard.folder(Path(cfg.output_dir))
    model = load_model(cfg.checkpoint, device="cpu")
    codec = Codec(
        model, device=cfg.device, entropy_parameters=entropy_parameters_for(cfg.codec.entropy_parameters, cfg.device)
    )
    qs = _floats(cfg.grid.q, model.num_rate_levels is not None)
    betas = _floats(cfg.grid.beta, model.max_beta is not None)
    suite = MetricSuite(MetricConfig(**OmegaConf.to_container(cfg.metrics)), device=cfg.device)
    dataset = cfg.dataset_name or official_name or folder.resolve().name
    official = cfg.plots.official
    if official == "auto":  # the named set's, or that of a folder labelled with an official name
        official = official_name or (dataset if dataset.lower() in OFFICIAL_DATASETS else None)
    title = f"{dataset}: {Path(cfg.checkpoint).name}" + (f"\n({suite.note})" if suite.note else "")
    config = OmegaConf.to_container(cfg, resolve=True)
    tracker = WandbGrid(cfg, config) if cfg.wandb.enabled and not shard.sharded else None
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
        run_extra={SHARD_KEY: {**asdict(shard), "images": [p.name for p in all_images]}} if shard.sharded else None,
        pooled=PooledInputs(output_dir) if shard.sharded else None,
    )
    grid = _image_grid(codec, grid_input, cfg, betas, output_dir / "grid") if images[0] == all_images[0] else []
    if shard.sharded:  # what the merge needs to report, written once the shard has finished its grid
        record = {"dataset": dataset, "official": official, "title": title, "grid": {"q": qs, "beta": betas}}
        write_text_atomic(output_dir / SHARD_FILE, json.dumps({**record, "config": config}, indent=2) + "\n")
        log.info("%s done: %s (merge the shards with crdr merge)", shard.name, output_dir)
        return summary
    report(output_dir, summary, dataset, official, title, grid, tracker)
    return summary


def report(
    output_dir: Path,
    summary: list[dict[str, str]],
    dataset: str,
    official: str | None,
    title: str,
    plots: list[Path],
    tracker: WandbGrid | None,
) -> list[Path]:
    """The RD curves of ``output_dir/results.csv`` (beside the ``official`` results), then W&B's table and
    figures; ``plots``: the figures drawn already (the image grid). A single run and ``crdr merge`` end here."""
    tables = {dataset: load_results(output_dir / SUMMARY_FILE)}
    if official:
        tables[f"official {official}"] = official_results(official)
    plots = plot_rd_curves(tables, output=output_dir / "rd_curves", title=title) + plots
    if tracker is not None:
        tracker.finish(summary, plots)
    for path in plots:
        log.info("wrote %s", path)
    log.info("results: %s", output_dir / SUMMARY_FILE)
    return plots


def reconstruction_grid(
    codec: Codec, x: Tensor, qs: Sequence[float], betas: Sequence[float]
) -> tuple[dict[tuple[float, float], Tensor], dict[float, float]]:
    """x (1, 3, H, W) compressed once per q and decoded at every beta through real bitstreams:
    ``{(q, beta): reconstruction}`` and ``{q: bpp}``, the inputs of :func:`plot_grid`."""
    images, bpp = {}, {}
    for q in map(float, qs):
        data = codec.compress(x, q)
        bpp[q] = bits_per_pixel(len(data), *x.shape[-2:])
        for beta, decoded in zip(betas, codec.decompress_many(data, betas), strict=True):
            images[(q, beta)] = decoded
    return images, bpp


@dataclass(frozen=True)
class GridInput:
    """What the q x beta picture grid shows: ``image`` (1, 3, H, W) in [0, 1] and its title."""

    image: Tensor
    title: str


def grid_region(image: Tensor, box: Sequence[int] | None, name: str) -> GridInput:
    """The region ``box = [top, left, height, width]`` (pixels) of ``image`` (1, 3, H, W), or all of it for
    None: a crop shown at its native size makes beta's texture visible. ConfigError for a box that is
    not four integers, is empty or reaches outside the image."""
    if box is None:
        return GridInput(image, name)
    values = list(box) if isinstance(box, Sequence) and not isinstance(box, str) else [box]
    if len(values) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"plots.grid_crop must be [top, left, height, width] in pixels, got {values}")
    top, left, height, width = values
    full_height, full_width = image.shape[-2:]
    if min(top, left) < 0 or min(height, width) < 1 or top + height > full_height or left + width > full_width:
        raise ConfigError(
            f"plots.grid_crop={values} is empty or outside {name} ({full_width}x{full_height}, width x height)"
        )
    region = image[..., top : top + height, left : left + width]
    return GridInput(region, f"{name}, rows {top}-{top + height - 1}, columns {left}-{left + width - 1}")


def _image_grid(
    codec: Codec, grid_input: GridInput, cfg: DictConfig, betas: list[float | None], output: Path
) -> list[Path]:
    """The q x beta reconstructions of one image from real bitstreams (realism control at a glance)."""
    if None in betas or codec.model.num_rate_levels is None:
        return []
    images, bpp = reconstruction_grid(codec, grid_input.image, cfg.plots.grid_q, betas)
    return plot_grid(images, output, bpp=bpp, title=grid_input.title)
