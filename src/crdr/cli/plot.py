"""``crdr plot``: rate-distortion-realism curves from result CSVs, optionally over the official CRDR results.
Its arguments: ``crdr.cli.parser``."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from crdr.evaluation.plots import load_results, official_results, plot_rd_curves


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
