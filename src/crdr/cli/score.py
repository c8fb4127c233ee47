"""``crdr score``: any codec's reconstructions scored like ``crdr evaluate`` (crdr.evaluation.score), then RD
plots over other results. Its arguments: ``crdr.cli.parser``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from crdr.cli.parser import SCORE_METRICS
from crdr.evaluation.plots import PUBLISHED_LABEL, load_results, official_results, plot_rd_curves, published_results
from crdr.evaluation.score import RatePoint, score_codec
from crdr.evaluation.suite import MetricConfig, MetricSuite

if TYPE_CHECKING:
    import pandas as pd

    from crdr.evaluation.tracking import WandbGrid


def _points(args: argparse.Namespace) -> list[RatePoint]:
    n = len(args.reconstructions)
    qualities = args.quality if args.quality is not None else [float(i) for i in range(n)]
    betas = args.beta if args.beta is not None else [None]
    betas = betas * n if len(betas) == 1 else betas
    if len(args.rates) != n or len(qualities) != n or len(betas) != n:
        raise ValueError(
            f"{n} --reconstructions folders need as many --rates and --quality labels "
            f"(got {len(args.rates)} and {len(qualities)}) and one or {n} --beta labels"
        )
    return [
        RatePoint(Path(r), Path(rate), q, b)
        for r, rate, q, b in zip(args.reconstructions, args.rates, qualities, betas, strict=True)
    ]


def _suite(args: argparse.Namespace) -> MetricSuite:
    unknown = sorted(set(args.metrics) - set(SCORE_METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(SCORE_METRICS)}")
    on = set(args.metrics)
    config = MetricConfig(
        psnr="PSNR" in on,
        ms_ssim="MS-SSIM" in on,
        lpips="LPIPS" in on,
        dists="DISTS" in on,
        fid="FID" in on,
        fid_protocol=args.fid_protocol,
        fid_network=args.fid_network,
        patch_size=args.patch_size,
        reconstruction_8bit=args.reconstruction_8bit,
        weights_dir=args.weights_dir,
        random_backbones=args.random_backbones,
    )
    return MetricSuite(config, device=args.device)


def _overlays(args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    """The tables drawn beside the scored codec (read before scoring, so a bad one fails at once): other
    ``results.csv`` labelled by their codec (or folder), the official and other papers' as published."""
    tables = {}
    for path in map(Path, args.overlay):  # label: the scored codec, or the folder of a results.csv
        table = load_results(path)
        codecs = table["codec"].dropna().unique() if "codec" in table.columns else []
        tables[str(codecs[0]) if len(codecs) == 1 else path.parent.name or path.stem] = table
    if args.with_official:
        official = official_results(args.with_official)
        tables[f"official CRDR {official.attrs['dataset']} ({PUBLISHED_LABEL})"] = official
    for path in args.published:
        tables.update(published_results(path))
    return tables


def run(args: argparse.Namespace) -> int:
    points, overlays, suite, output = _points(args), _overlays(args), _suite(args), Path(args.output)
    summary = score_codec(
        Path(args.originals), points, suite, output, args.codec, args.dataset, args.resize, args.progress
    )
    tables = {args.codec: load_results(output / "results.csv"), **overlays}
    tracker = _tracker(args, output)
    title = f"{args.dataset or Path(args.originals).resolve().name}" + (f"\n({suite.note})" if suite.note else "")
    plots = plot_rd_curves(tables, output=output / "rd_curves", title=title)
    if tracker is not None:
        tracker.finish(summary, plots)
    for path in [output / "results.csv", *plots]:
        print(path)
    return 0


def _tracker(args: argparse.Namespace, output: Path) -> WandbGrid | None:
    """The W&B run of ``--wandb PROJECT`` (None without it), with crdr evaluate's mode rules."""
    if not args.wandb:
        return None
    from omegaconf import OmegaConf

    from crdr.evaluation.tracking import WandbGrid
    from crdr.io.wandb_mode import PROBE_TIMEOUT

    wandb = {
        "project": args.wandb,
        "entity": None,
        "tags": ["score", args.codec],
        "offline": None,
        "probe_timeout": PROBE_TIMEOUT,
    }
    return WandbGrid(OmegaConf.create({"output_dir": str(output), "wandb": wandb}), vars(args))
