"""``crdr plot``: rate-distortion-realism curves from result CSVs, optionally over the official CRDR results."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from crdr.evaluation.plots import DEFAULT_METRICS, OFFICIAL_DATASETS, load_results, official_results, plot_rd_curves


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated metric names, got {text!r}")
    return names


def add_parsers(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "plot",
        help="plot RD curves (bpp vs. PSNR/FID/LPIPS/DISTS, one line per beta) from result CSVs",
        description="Reads CSVs with columns quality,beta,bpp and metric columns; writes OUTPUT.png and OUTPUT.svg.",
    )
    p.add_argument("inputs", nargs="+", metavar="CSV", help="result tables; each is labelled by its file name")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT_PREFIX", help="writes OUTPUT_PREFIX.png/.svg")
    p.add_argument(
        "--with-official",
        metavar="DATASET",
        help=f"overlay the official CRDR results (dashed): {', '.join(OFFICIAL_DATASETS.values())}",
    )
    p.add_argument(
        "--metrics",
        type=_names,
        default=list(DEFAULT_METRICS),
        help=f"comma-separated metrics, one subplot each where present (default {','.join(DEFAULT_METRICS)})",
    )
    p.add_argument("--title", help="figure title")
    p.set_defaults(run=run_plot)


def _labels(paths: list[Path]) -> list[str]:
    """File stems; where stems clash, the parent folder is prepended."""
    counts = Counter(p.stem for p in paths)
    labels = [p.stem if counts[p.stem] == 1 else f"{p.parent.name}/{p.stem}" for p in paths]
    if len(set(labels)) != len(labels):
        labels = [str(p.with_suffix("")) for p in paths]
    return labels


def run_plot(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.inputs]
    results = {label: load_results(path) for label, path in zip(_labels(paths), paths, strict=True)}
    if args.with_official:
        official = official_results(args.with_official)
        results[f"official {official.attrs['dataset']}"] = official
    for path in plot_rd_curves(results, args.metrics, Path(args.output), args.title):
        print(path)
    return 0
