"""Result tables (CSV) and rate-distortion-realism plots: RD curves per metric and q x beta image grids.

Figures are built on a bare :class:`~matplotlib.figure.Figure` with the Agg canvas (no pyplot, no windows)
and saved as PNG and SVG atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from crdr.evaluation.names import DEFAULT_METRICS, OFFICIAL_DATASETS
from crdr.io.files import PathLike, atomic_path

if TYPE_CHECKING:
    from torch import Tensor

REQUIRED_COLUMNS = ("quality", "beta", "bpp")
METRICS = ("PSNR", "MS-SSIM", "FID", "KID", "LPIPS", "DISTS")
LOWER_IS_BETTER = frozenset({"FID", "KID", "LPIPS", "DISTS"})
NUMERIC_COLUMNS = (*REQUIRED_COLUMNS, *METRICS, "bpp_estimate")
FORMATS = ("png", "svg")
_UNITS = {"PSNR": "PSNR [dB]"}
_GRID_CELL_WIDTH = 3.2  # inches per grid column
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def load_results(path: PathLike) -> pd.DataFrame:
    """Reads a results CSV (``quality,beta,bpp`` plus metric columns); empty cells become NaN.

    Raises FileNotFoundError for a missing file and ValueError naming the file for missing columns or
    non-numeric values.
    """
    path = Path(path)
    return _check_table(_read_csv(path), str(path))


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV table at ``path``; FileNotFoundError or a one-line ValueError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV table ({err})") from None


def official_results(dataset: str) -> pd.DataFrame:
    """The official CRDR results for "kodak", "CLIC", "CLIC_reproduce" or "DIV2K" (case-insensitive).

    The table's ``attrs`` carry ``official=True`` and the dataset name; :func:`plot_rd_curves` draws it dashed.
    """
    key = dataset.strip().lower()
    if key not in OFFICIAL_DATASETS:
        choices = ", ".join(OFFICIAL_DATASETS.values())
        raise ValueError(f"no official results for dataset {dataset!r}; choose one of {choices}")
    name = f"rd_results_{OFFICIAL_DATASETS[key]}.csv"
    resource = resources.files(__package__).joinpath("reference", name)
    with resources.as_file(resource) as path:
        table = load_results(path)
    table.attrs.update(official=True, dataset=OFFICIAL_DATASETS[key])
    return table


#: Columns of a published table (``crdr score --published``): ``bpp`` and metric columns, optionally
#: ``method`` (one curve each; default: the file's stem), ``beta`` and ``quality``.
PUBLISHED_LABEL = "as published"


def published_results(path: PathLike) -> dict[str, pd.DataFrame]:
    """Another paper's numbers: a CSV with ``bpp``, metric columns and optionally ``method``, ``beta``,
    ``quality``; one table per method, labelled "METHOD (as published)" and drawn dashed."""
    path = Path(path)
    table = _read_csv(path).rename(columns=lambda c: str(c).strip())
    for column in ("quality", "beta"):
        if column not in table.columns:
            table[column] = np.nan
    if "method" not in table.columns:
        table["method"] = path.stem
    tables = {}
    for method, group in table.groupby("method", sort=False):
        checked = _check_table(group.reset_index(drop=True), str(path))
        checked.attrs.update(official=True)
        tables[f"{method} ({PUBLISHED_LABEL})"] = checked
    return tables


def _check_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    table = table.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)} (has: {', '.join(map(str, table.columns))})"
        )
    for column in NUMERIC_COLUMNS:
        if column not in table.columns:
            continue
        raw = table[column]
        if raw.dtype == object:
            raw = raw.astype("string").str.strip().replace("", pd.NA)
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        bad = values.isna() & raw.notna()
        if bad.any():
            examples = ", ".join(repr(str(v)) for v in raw[bad].unique()[:3])
            raise ValueError(f"{source}: non-numeric value(s) in column {column}: {examples}")
        table[column] = values
    return table


def metric_label(metric: str) -> str:
    """Axis label with the metric's direction, e.g. ``"LPIPS (lower is better)"``."""
    name = _UNITS.get(metric, metric)
    if metric in LOWER_IS_BETTER:
        return f"{name} (lower is better)"
    if metric in METRICS:
        return f"{name} (higher is better)"
    return name


def _is_official(label: str, table: pd.DataFrame) -> bool:
    return bool(table.attrs.get("official")) or label.lower().startswith("official")


def _present(metric: str, results: Mapping[str, pd.DataFrame]) -> bool:
    return any(metric in t.columns and t[metric].notna().any() for t in results.values())


def _betas(table: pd.DataFrame) -> list[float | None]:
    """The table's realism levels, sorted; None for rows without one (a codec with no beta, e.g. JPEG)."""
    betas: list[float | None] = sorted(table["beta"].dropna().unique())
    return [*betas, None] if table["beta"].isna().any() else betas


def rd_figure(
    results: Mapping[str, pd.DataFrame],
    metrics: Sequence[str] = DEFAULT_METRICS,
    title: str | None = None,
) -> Figure:
    """Builds the RD figure: one subplot per metric present in any table, bpp on x, one line per
    (label, beta) sorted by bpp (one per label for rows without beta); official tables
    (``attrs["official"]`` or a label starting with "official") are dashed. Raises ValueError when no
    table has any of ``metrics``."""
    if not results:
        raise ValueError("no result tables to plot")
    for label, table in results.items():
        _check_table(table, label)
    shown = [m for m in dict.fromkeys(metrics) if _present(m, results)]
    if not shown:
        raise ValueError(f"none of the metrics {', '.join(metrics)} has values in the tables {', '.join(results)}")

    ncols = min(len(shown), 2 if len(shown) == 4 else 3)
    nrows = math.ceil(len(shown) / ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.8 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()

    # One color per (label, beta) curve, the same in every subplot; one marker per beta.
    curves = [(label, beta) for label, table in results.items() for beta in _betas(table)]
    colors = {curve: f"C{i % 10}" for i, curve in enumerate(curves)}
    all_betas = sorted({beta for _, beta in curves if beta is not None})
    handles: dict[str, object] = {}
    for ax, metric in zip(axes, shown, strict=False):
        for label, table in results.items():
            if metric not in table.columns:
                continue
            official = _is_official(label, table)
            for beta in _betas(table):
                group = table[table["beta"].isna()] if beta is None else table[table["beta"] == beta]
                points = group[["bpp", metric]].dropna().sort_values("bpp")
                if points.empty:
                    continue
                name = label if beta is None else f"{label}, beta={beta:g}"
                (line,) = ax.plot(
                    points["bpp"].to_numpy(),
                    points[metric].to_numpy(),
                    linestyle="--" if official else "-",
                    marker=_MARKERS[all_betas.index(beta) % len(_MARKERS)] if beta is not None else "x",
                    markersize=4,
                    color=colors[(label, beta)],
                    label=name,
                )
                handles.setdefault(name, line)
        ax.set_xlabel("bpp")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 4))
    if title:
        fig.suptitle(title)
    return fig


def _output_paths(output: PathLike) -> list[Path]:
    output = Path(output)
    if output.suffix.lower() in {f".{fmt}" for fmt in FORMATS}:
        output = output.with_suffix("")
    return [output.with_name(f"{output.name}.{fmt}") for fmt in FORMATS]


def save_figure(fig: Figure, output: PathLike, dpi: float = 150) -> list[Path]:
    """Writes ``OUTPUT.png`` (at ``dpi``) and ``OUTPUT.svg`` atomically (a trailing .png/.svg on ``output`` is
    dropped); returns the paths."""
    paths = _output_paths(output)
    with rc_context({"svg.hashsalt": "crdr"}):
        for path in paths:
            fmt = path.suffix[1:]
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
    return paths


def plot_rd_curves(
    results: Mapping[str, pd.DataFrame],
    metrics: Sequence[str] = DEFAULT_METRICS,
    output: PathLike | None = None,
    title: str | None = None,
) -> list[Path]:
    """Plots RD curves (see :func:`rd_figure`) to ``OUTPUT.png`` and ``OUTPUT.svg``; returns the paths."""
    if output is None:
        raise TypeError("plot_rd_curves() needs an output path prefix")
    return save_figure(rd_figure(results, metrics, title), output)


def _to_hwc(image: Tensor, key: tuple[float, float]) -> np.ndarray:
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image for (q, beta)={key}: expected (1, 3, H, W) or (3, H, W), got {tuple(image.shape)}")
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def grid_figure(
    images: Mapping[tuple[float, float], Tensor],
    bpp: Mapping[tuple[float, float], float] | Mapping[float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Builds a q (rows) x beta (columns) grid of reconstructions, titled ``q=.. beta=..`` (+ bpp).

    ``bpp`` may be keyed by (q, beta) or by q alone (the rate depends on q only).
    """
    if not images:
        raise ValueError("no images to plot")
    qs = sorted({q for q, _ in images})
    betas = sorted({beta for _, beta in images})
    arrays = {key: _to_hwc(image, key) for key, image in images.items()}
    h, w = next(iter(arrays.values())).shape[:2]
    cell_w = _GRID_CELL_WIDTH
    cell_h = cell_w * h / w + 0.45
    fig = Figure(figsize=(cell_w * len(betas), cell_h * len(qs) + (0.4 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(qs), len(betas), squeeze=False)
    for r, q in enumerate(qs):
        for c, beta in enumerate(betas):
            ax = axes[r, c]
            ax.set_axis_off()
            if (q, beta) not in arrays:
                continue
            ax.imshow(arrays[(q, beta)], interpolation="none")
            text = f"q={q:g} beta={beta:g}"
            if bpp is not None:
                rate = bpp.get((q, beta), bpp.get(q))  # type: ignore[call-overload]
                if rate is not None and not math.isnan(rate):
                    text += f"\n{rate:.3f} bpp"
            ax.set_title(text, fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_grid(
    images: Mapping[tuple[float, float], Tensor],
    output: PathLike,
    bpp: Mapping[tuple[float, float], float] | Mapping[float, float] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Saves the q x beta grid (see :func:`grid_figure`) as ``OUTPUT.png`` and ``OUTPUT.svg``; returns the paths.

    The PNG's resolution keeps the images at (about) their native pixel size; the SVG embeds them unscaled.
    """
    fig = grid_figure(images, bpp, title)
    width = max(image.shape[-1] for image in images.values())
    return save_figure(fig, output, dpi=max(150.0, math.ceil(width / (_GRID_CELL_WIDTH * 0.95))))
