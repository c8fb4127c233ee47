"""``crdr evaluate``: the Hydra app over conf/evaluate.yaml (see that file for every option)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from crdr.api import load_model
from crdr.checkpoints import CheckpointError
from crdr.codec import Codec
from crdr.config import ConfigError, run_hydra_app
from crdr.datasets import ManifestError, dataset_folder, find_manifest, verify
from crdr.evaluation.grid import evaluate_grid
from crdr.evaluation.plots import OFFICIAL_DATASETS, load_results, official_results, plot_grid, plot_rd_curves
from crdr.evaluation.suite import MetricConfig, MetricSuite
from crdr.files import IMAGE_SUFFIXES, expand_paths
from crdr.io import ImageReadError, read_image
from crdr.tracking import WandbGrid
from crdr.wandb_mode import WandbUnreachableError

log = logging.getLogger("crdr.evaluate")

#: Mistakes in the command line or the inputs: one log line and exit status 2, no traceback.
USER_ERRORS = (
    FileNotFoundError,
    CheckpointError,
    ConfigError,
    ImageReadError,
    MissingMandatoryValue,
    WandbUnreachableError,
)


def _floats(values: Sequence[Any] | None, used: bool) -> list[float | None]:
    return [float(v) for v in values] if used and values else [None]


def resolve_dataset(dataset: str, data_root: str | Path) -> tuple[Path, str | None]:
    """The folder of ``dataset`` and its name in the official CSVs (None for a folder of one's own).

    ``dataset`` is an existing folder, or a set fetched by ``crdr data fetch`` into ``data_root``, named as
    in the official CSVs (``kodak``, ``CLIC``, ``DIV2K``) or as for ``crdr data`` (``clic2020-test``, ...).
    A named set must be complete (every image present with its recorded size): results on a partial set
    would not be comparable with published ones.
    """
    if Path(dataset).exists():
        return Path(dataset), None
    try:
        manifest = find_manifest(dataset)
    except ManifestError:
        raise FileNotFoundError(f"dataset {dataset!r}: no such folder, and not a known set") from None
    if manifest.evaluation_name is None:
        raise ConfigError(f"{manifest.name} is a training set; evaluate on kodak, CLIC or DIV2K")
    problems = verify(manifest, data_root, full=False)
    if problems:
        raise FileNotFoundError(
            f"dataset {dataset}: {problems[0]} (run: crdr data fetch {manifest.name} --root {data_root})"
        )
    return dataset_folder(manifest, Path(data_root)), manifest.evaluation_name


def run(cfg: DictConfig) -> list[dict[str, str]]:
    """Evaluates the grid, writes CSVs and plots into ``cfg.output_dir``; returns the summary rows."""
    output_dir = Path(cfg.output_dir)
    folder, official_name = resolve_dataset(str(cfg.dataset), cfg.data_root)
    images = expand_paths([folder], IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no PNG/JPEG images under {folder}")
    model = load_model(cfg.checkpoint, device="cpu")
    codec = Codec(model, device=cfg.device)
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


def main(overrides: Sequence[str] | None = None) -> None:
    """Runs the app; ``overrides`` replace the command-line arguments (``crdr evaluate`` passes its own)."""
    if overrides is not None:
        sys.argv = [f"{Path(sys.argv[0]).name} evaluate", *overrides]
    run_hydra_app("evaluate", run, USER_ERRORS, log)


if __name__ == "__main__":
    main()
