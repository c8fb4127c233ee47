"""The q x beta evaluation grid: real bitstreams, per-image metrics, set-level FID/KID, resumable CSVs."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from crdr.codec import Codec
from crdr.evaluation.suite import MetricSuite, mean
from crdr.files import write_csv_atomic, write_text_atomic
from crdr.io import read_image

#: Columns of the official ``rd_results_*.csv``, then ours.
SUMMARY_COLUMNS = [
    "dataset",
    "quality",
    "beta",
    "bpp",
    "PSNR",
    "FID",
    "LPIPS",
    "DISTS",
    "MS-SSIM",
    "KID",
    "KID_std",
    "bpp_estimate",
    "num_images",
    "fid_patches",
    "note",
    "protocol",
]
IMAGE_COLUMNS = ["dataset", "image", "height", "width", "quality", "beta", "bytes", "bpp", "bpp_estimate"]
IMAGE_METRICS = ["PSNR", "MS-SSIM", "LPIPS", "DISTS"]
SUMMARY_FILE, IMAGES_FILE, RUN_FILE = "results.csv", "per_image.csv", "run.json"


def paper_q_grid() -> list[float]:
    """The paper's 17 rate points q = 0, 0.25, ..., 4."""
    return [i / 4 for i in range(17)]


def _key(q: float | None, beta: float | None) -> tuple[str, str]:
    """How a grid point appears in ``results.csv``."""
    return (_fmt(q), _fmt(beta))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return "" if value is None else str(value)


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def evaluate_grid(
    codec: Codec,
    images: Sequence[Path],
    qs: Sequence[float | None],
    betas: Sequence[float | None],
    suite: MetricSuite,
    output_dir: Path,
    dataset: str,
    progress: bool = True,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, str]]:
    """Evaluates every (q, beta) and returns the summary rows (as written to ``results.csv``).

    Per q, each image is compressed once (real bitstream: ``bpp`` = bytes * 8 / pixels, with the
    likelihood estimate in ``bpp_estimate``), entropy-decoded once, and synthesised at every beta.
    ``results.csv`` (one row per grid point) and ``per_image.csv`` are rewritten atomically after
    each q; a rerun into the same folder skips the grid points already in ``results.csv``
    (``run.json`` must match: same model fingerprint, images, metric settings, networks and protocol).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    _check_or_write_run(output_dir, codec, images, suite)
    summary = _read_rows(output_dir / SUMMARY_FILE)
    per_image = _read_rows(output_dir / IMAGES_FILE)
    done = {(row["quality"], row["beta"]) for row in summary}
    todo = {q: [b for b in betas if _key(q, b) not in done] for q in qs}
    bar = tqdm(total=sum(map(len, todo.values())) * len(images), desc="evaluate", unit="image", disable=not progress)
    for q in qs:
        if not todo[q]:
            continue
        rows, fids = _evaluate_rate(codec, images, q, todo[q], suite, dataset, bar)
        for beta in todo[q]:
            row = _summary_row(dataset, q, beta, rows[beta], fids[beta], suite)
            summary.append({k: _fmt(v) for k, v in row.items()})
            per_image.extend({k: _fmt(v) for k, v in r.items()} for r in rows[beta])
            if on_point is not None:
                on_point(row)
        image_columns = IMAGE_COLUMNS + IMAGE_METRICS
        write_csv_atomic(output_dir / IMAGES_FILE, image_columns, _as_lists(per_image, image_columns))
        write_csv_atomic(output_dir / SUMMARY_FILE, SUMMARY_COLUMNS, _as_lists(summary, SUMMARY_COLUMNS))
    bar.close()
    order = {_key(q, b): i for i, (q, b) in enumerate((q, b) for q in qs for b in betas)}
    return sorted(summary, key=lambda r: order.get((r["quality"], r["beta"]), len(order)))


def _evaluate_rate(codec, images, q, betas, suite, dataset, bar):
    model = codec.model
    rows: dict[Any, list[dict[str, Any]]] = {beta: [] for beta in betas}
    fids = {beta: suite.new_fid() for beta in betas}
    for path in images:
        x = read_image(path)
        height, width = x.shape[-2:]
        data = codec.compress(x, q)
        stream = codec.parse(data)
        y_hat, information = codec.decode_latents_and_bits(stream)
        estimate = information / (height * width)
        for beta in betas:
            x_hat = codec.synthesize(y_hat, stream, model.beta_tensor(beta, 1))
            row = {
                "dataset": dataset,
                "image": path.name,
                "height": height,
                "width": width,
                "quality": q,
                "beta": beta,
                "bytes": len(data),
                "bpp": len(data) * 8 / (height * width),
                "bpp_estimate": estimate,
            }
            row.update(suite.score(x, x_hat))
            rows[beta].append(row)
            if fids[beta] is not None:
                fids[beta].update(x, suite.to_8bit(x_hat), real_key=str(path))
            bar.update()
    return rows, fids


def _summary_row(dataset, q, beta, rows, fid, suite) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": dataset, "quality": q, "beta": beta, "num_images": len(rows)}
    row.update(note=suite.note, protocol=suite.protocol())
    for column in ["bpp", "bpp_estimate", *IMAGE_METRICS]:
        values = [r[column] for r in rows if column in r]
        row[column] = mean(values) if values else None
    if fid is not None:
        result = fid.compute()
        row.update(FID=result["fid"], KID=result["kid"], KID_std=result["kid_std"], fid_patches=result["num_patches"])
    return row


def _as_lists(rows: list[dict[str, str]], columns: list[str]) -> list[list[str]]:
    return [[row.get(c, "") for c in columns] for row in rows]


def _check_or_write_run(output_dir: Path, codec: Codec, images: Sequence[Path], suite: MetricSuite) -> None:
    """Refuses to resume into a folder evaluated with another model, image set, metric setting, network
    (weight file or random seed) or protocol."""
    run = {
        "model_fingerprint": codec.fingerprint.hex(),
        "images": [p.name for p in images],
        "metrics": vars(suite.config),
        "networks": suite.networks,
        "protocol": suite.protocol(),
    }
    path = output_dir / RUN_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        different = [k for k in run if previous.get(k) != run[k]]
        if different:
            raise ValueError(
                f"{output_dir} holds an evaluation with other {', '.join(different)}; "
                "use another output_dir (or delete it) to start over"
            )
        return
    write_text_atomic(path, json.dumps(run, indent=2) + "\n")
