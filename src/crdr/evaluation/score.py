"""``crdr score``: the evaluation's metrics and CSVs over any codec's reconstructions.

Inputs: a folder of originals, one folder of reconstructions per rate point (matched to the originals by
file stem, sizes checked), and per rate point the rate of each image: a folder of the coded files (their
sizes, ``rate_source`` "coded") or a CSV with columns ``image`` and ``bytes`` or ``bpp`` ("reported").
Scoring goes through the same :class:`~crdr.evaluation.suite.MetricSuite` and
:class:`~crdr.evaluation.grid.ResultsFolder` as ``crdr evaluate``, so the numbers are comparable.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from crdr.evaluation.grid import ResultsFolder, image_row, run_identity, score_image, summary_row
from crdr.evaluation.suite import MetricSuite
from crdr.io.files import IMAGE_SUFFIXES, expand_paths
from crdr.io.images import from_uint8, image_size, read_image, to_uint8

#: Named rules to bring a reconstruction to its original's size (Pillow filters); "none": a mismatch is an error.
RESIZE_RULES = {"none": None, "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                "lanczos": Image.Resampling.LANCZOS}  # fmt: skip
#: Columns ``crdr score`` adds to those of ``crdr evaluate``.
SCORE_COLUMNS = ["codec", "rate_source"]


@dataclass(frozen=True)
class RatePoint:
    """One rate point of a codec: its reconstructions, their rates (coded files or a CSV) and its labels."""

    reconstructions: Path
    rates: Path
    quality: float | None = None
    beta: float | None = None


@dataclass(frozen=True)
class _Rate:
    bytes: int | None
    bpp: float | None


def find_by_stem(folder: Path, suffixes: Sequence[str] | None = None) -> dict[str, Path]:
    """Files directly in ``folder`` by stem (optionally only those with one of ``suffixes``); a stem shared by
    two files is an error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or (suffixes and path.suffix.lower() not in suffixes):
            continue
        if path.stem in found:
            raise ValueError(f"{folder}: two files for image {path.stem} ({found[path.stem].name}, {path.name})")
        found[path.stem] = path
    return found


def read_rates(source: Path, stems: Sequence[str]) -> tuple[dict[str, _Rate], str]:
    """The rate of every image in ``stems`` and its source: coded files' sizes ("coded") or a CSV ("reported")."""
    if source.is_dir():
        files = find_by_stem(source)
        missing = [s for s in stems if s not in files]
        if missing:
            raise FileNotFoundError(f"{source}: no coded file for image {missing[0]}")
        return {s: _Rate(files[s].stat().st_size, None) for s in stems}, "coded"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such folder or CSV file")
    return _read_rate_csv(source, stems), "reported"


def _read_rate_csv(path: Path, stems: Sequence[str]) -> dict[str, _Rate]:
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
            columns = set(rows[0]) if rows else set()
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a readable CSV table ({err})") from None
    unit = next((c for c in ("bytes", "bpp") if c in columns), None)
    if "image" not in columns or unit is None:
        raise ValueError(f"{path}: needs columns image and bytes or bpp (has: {', '.join(sorted(columns)) or 'none'})")
    rates: dict[str, _Rate] = {}
    for line, row in enumerate(rows, start=2):
        value = _number(row[unit], path, line, unit)
        rate = _Rate(int(value), None) if unit == "bytes" else _Rate(None, value)
        rates[Path(row["image"] or "").stem] = rate
    missing = [s for s in stems if s not in rates]
    if missing:
        raise ValueError(f"{path}: no row for image {missing[0]}")
    return rates


def _number(text: str | None, path: Path, line: int, column: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (column == "bytes" and value != int(value)):
        raise ValueError(f"{path}, line {line}: {column} must be a non-negative number, got {text!r}")
    return value


def _matched(originals: Sequence[Path], point: RatePoint, resize: str) -> dict[str, Path]:
    """The reconstruction of every original, its size checked against the original's (unless resized)."""
    found = find_by_stem(point.reconstructions, IMAGE_SUFFIXES)
    matched = {}
    for original in originals:
        if original.stem not in found:
            raise FileNotFoundError(f"{point.reconstructions}: no reconstruction of {original.name}")
        path = found[original.stem]
        size, expected = image_size(path), image_size(original)
        if size != expected and resize == "none":
            raise ValueError(
                f"{path}: {size[0]}x{size[1]}, its original {original.name} is {expected[0]}x{expected[1]} "
                f"(name a resize rule to resize it: {', '.join(r for r in RESIZE_RULES if r != 'none')})"
            )
        matched[original.stem] = path
    return matched


def _read_resized(path: Path, like: Tensor, resize: str) -> Tensor:
    x_hat = read_image(path)
    if x_hat.shape == like.shape:
        return x_hat
    resized = Image.fromarray(to_uint8(x_hat)).resize((like.shape[-1], like.shape[-2]), RESIZE_RULES[resize])
    return from_uint8(np.array(resized))


def score_codec(
    originals_dir: Path,
    points: Sequence[RatePoint],
    suite: MetricSuite,
    output_dir: Path,
    codec: str,
    dataset: str | None = None,
    resize: str = "none",
    progress: bool = True,
) -> list[dict[str, str]]:
    """Scores every rate point of ``codec``; writes ``results.csv``, ``per_image.csv`` and ``run.json`` into
    ``output_dir`` as ``crdr evaluate`` does (plus ``codec`` and ``rate_source``); returns the summary rows.

    Every input is checked before anything is scored. A rerun into the same folder skips the points done.
    """
    if resize not in RESIZE_RULES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_RULES)}, got {resize!r}")
    originals = expand_paths([originals_dir], IMAGE_SUFFIXES)
    if not originals:
        raise FileNotFoundError(f"no PNG/JPEG images under {originals_dir}")
    labels = [(p.quality, p.beta) for p in points]
    if len(set(labels)) != len(labels):
        raise ValueError("two rate points have the same (quality, beta) labels")
    stems = [p.stem for p in originals]
    plans = [(point, _matched(originals, point, resize), *read_rates(point.rates, stems)) for point in points]
    dataset = dataset or originals_dir.resolve().name
    run = {"codec": codec, "resize": resize, **run_identity(originals, suite, resize)}
    folder = ResultsFolder(output_dir, run, SCORE_COLUMNS)
    plans = [plan for plan in plans if not folder.done(plan[0].quality, plan[0].beta)]
    bar = tqdm(total=len(plans) * len(originals), desc="score", unit="image", disable=not progress)
    for point, reconstructions, rates, source in plans:
        rows, fid = [], suite.new_fid()
        for original in originals:
            x = read_image(original)
            rate = rates[original.stem]
            row = image_row(dataset, original.name, x, point.quality, point.beta, rate.bytes or 0)
            if rate.bytes is None:
                row.update(bytes=None, bpp=rate.bpp)
            row.update(codec=codec, rate_source=source)
            score_image(suite, fid, row, x, _read_resized(reconstructions[original.stem], x, resize))
            rows.append(row)
            bar.update()
        features = None if fid is None else fid.accumulated()
        summary = summary_row(dataset, point.quality, point.beta, rows, features, suite.note, suite.protocol(resize))
        summary.update(codec=codec, rate_source=source)
        folder.add(summary, rows)
        folder.write()
    bar.close()
    return folder.summary
