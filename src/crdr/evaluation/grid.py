"""The q x beta evaluation grid: real bitstreams, per-image metrics, set-level FID/KID, resumable CSVs."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor
from tqdm import tqdm

from crdr.codec import Codec, bits_per_pixel
from crdr.evaluation.shards import PooledInputs
from crdr.evaluation.suite import MetricSuite, mean
from crdr.io.files import write_bytes_atomic, write_csv_atomic, write_text_atomic
from crdr.io.images import read_image, write_image
from crdr.metrics import FidKid, fid_kid

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
#: Where ``evaluate_grid(..., save=True)`` writes the streams and reconstructions.
STREAMS_DIR, RECONSTRUCTIONS_DIR = "streams", "reconstructions"


def point_key(q: float | None, beta: float | None) -> tuple[str, str]:
    """How a grid point appears in ``results.csv``: its (quality, beta) cells."""
    return (_fmt(q), _fmt(beta))


def point_name(q: float | None, beta: float | None) -> str:
    """A grid point in file and folder names: ``q{q}_beta{beta}``."""
    return f"q{_fmt(q)}_beta{_fmt(beta)}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return "" if value is None else str(value)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV written here (none when the file does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class ResultsFolder:
    """The CSVs of one evaluation folder: ``run.json`` checked (or written), the rows already there read back,
    new grid points added and ``results.csv`` / ``per_image.csv`` rewritten atomically.

    ``run`` identifies what is scored (model or codec, images, metric settings, networks, protocol); a folder
    holding another ``run`` is refused, so a resumed evaluation never mixes two setups.
    """

    def __init__(self, output_dir: Path, run: dict[str, Any], extra_columns: Sequence[str] = ()) -> None:
        self.output_dir = output_dir
        self.summary_columns = SUMMARY_COLUMNS + list(extra_columns)
        self.image_columns = IMAGE_COLUMNS + IMAGE_METRICS + list(extra_columns)
        output_dir.mkdir(parents=True, exist_ok=True)
        _check_or_write_run(output_dir, run)
        self.summary = read_rows(output_dir / SUMMARY_FILE)
        self.per_image = read_rows(output_dir / IMAGES_FILE)

    def done(self, q: float | None, beta: float | None) -> bool:
        """Whether ``results.csv`` already has this grid point."""
        return point_key(q, beta) in {(row["quality"], row["beta"]) for row in self.summary}

    def add(self, summary: dict[str, Any], images: list[dict[str, Any]]) -> None:
        """Adds a grid point's summary row and its per-image rows (written by :meth:`write`)."""
        self.summary.append({k: _fmt(v) for k, v in summary.items()})
        self.per_image.extend({k: _fmt(v) for k, v in r.items()} for r in images)

    def write(self) -> None:
        write_csv_atomic(
            self.output_dir / IMAGES_FILE, self.image_columns, _as_lists(self.per_image, self.image_columns)
        )
        write_csv_atomic(
            self.output_dir / SUMMARY_FILE, self.summary_columns, _as_lists(self.summary, self.summary_columns)
        )


def run_identity(images: Sequence[Path], suite: MetricSuite, resize: str = "none") -> dict[str, Any]:
    """What ``run.json`` records of an evaluation besides the model: images, metric settings, networks, protocol."""
    return {
        "images": [p.name for p in images],
        "metrics": vars(suite.config),
        "networks": suite.networks,
        "protocol": suite.protocol(resize),
    }


def image_row(dataset: str, name: str, x: Tensor, q: float | None, beta: float | None, size: int) -> dict[str, Any]:
    """The rate columns of one image at one grid point: ``size`` bytes -> ``bpp`` over its pixels."""
    height, width = x.shape[-2:]
    return {
        "dataset": dataset,
        "image": name,
        "height": height,
        "width": width,
        "quality": q,
        "beta": beta,
        "bytes": size,
        "bpp": bits_per_pixel(size, height, width),
    }


def score_image(suite: MetricSuite, fid: FidKid | None, row: dict[str, Any], x: Tensor, x_hat: Tensor) -> int:
    """Adds the per-image metrics of original ``x`` and reconstruction ``x_hat`` to ``row``, and the pair to ``fid``
    (the original's features are cached by image name across grid points); returns the FID patch pairs added."""
    row.update(suite.score(x, x_hat))
    return 0 if fid is None else fid.update(x, suite.to_8bit(x_hat), real_key=row["image"])


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
    save: bool = False,
    run_extra: Mapping[str, Any] | None = None,
    pooled: PooledInputs | None = None,
) -> list[dict[str, str]]:
    """Evaluates every (q, beta) and returns the summary rows (as written to ``results.csv``).

    Per q, each image is compressed once (real bitstream: ``bpp`` = bytes * 8 / pixels, with the
    likelihood estimate in ``bpp_estimate``), entropy-decoded once, and synthesised at every beta.
    ``results.csv`` (one row per grid point) and ``per_image.csv`` are rewritten atomically after
    each q; a rerun into the same folder skips the grid points already in ``results.csv``
    (``run.json`` must match: same model fingerprint, entropy-parameter mode, images, metric settings, networks and
    protocol).
    ``save``: also writes each stream to ``streams/q{q}/NAME.crdr`` and each reconstruction, as the 8-bit
    image the metrics saw, to ``reconstructions/q{q}_beta{beta}/NAME.png`` (inputs for ``crdr score``).
    ``run_extra``: more of ``run.json`` (a shard's record); ``pooled``: where each point's per-image rows and FID
    patch features are kept (a shard's inputs to ``crdr merge``), written before the CSVs list the point; the
    shard's own ``results.csv`` then leaves FID/KID empty.
    """
    run = {
        "model_fingerprint": codec.fingerprint.hex(),
        "entropy_parameters": codec.entropy_device or "portable",  # the device type, or "portable"
        **run_identity(images, suite),
        **(run_extra or {}),
    }
    folder = ResultsFolder(output_dir, run)
    todo = {q: [b for b in betas if not folder.done(q, b)] for q in qs}
    bar = tqdm(total=sum(map(len, todo.values())) * len(images), desc="evaluate", unit="image", disable=not progress)
    for q in qs:
        if not todo[q]:
            continue
        rows, fids, patches = _evaluate_rate(
            codec, images, q, todo[q], suite, dataset, bar, output_dir if save else None
        )
        for beta in todo[q]:
            features = None if fids[beta] is None else fids[beta].accumulated()
            if pooled is not None:
                per_image = None if features is None else [f.split(patches[beta]) for f in features]
                pooled.save(point_name(q, beta), rows[beta], *(per_image or (None, None)))
                features = None  # a shard's FID/KID would be of its images alone: crdr merge pools them
            row = summary_row(dataset, q, beta, rows[beta], features, suite.note, suite.protocol())
            folder.add(row, rows[beta])
            if on_point is not None:
                on_point(row)
        folder.write()
    bar.close()
    return in_grid_order(folder.summary, qs, betas)


def in_grid_order(
    summary: list[dict[str, str]], qs: Sequence[float | None], betas: Sequence[float | None]
) -> list[dict[str, str]]:
    """Summary rows sorted as the grid runs (q, then beta); rows of other points last."""
    order = {point_key(q, b): i for i, (q, b) in enumerate((q, b) for q in qs for b in betas)}
    return sorted(summary, key=lambda r: order.get((r["quality"], r["beta"]), len(order)))


def _evaluate_rate(codec, images, q, betas, suite, dataset, bar, save_to):
    model = codec.model
    rows: dict[Any, list[dict[str, Any]]] = {beta: [] for beta in betas}
    fids = {beta: suite.new_fid() for beta in betas}
    patches: dict[Any, list[int]] = {beta: [] for beta in betas}
    for path in images:
        x = read_image(path)
        height, width = x.shape[-2:]
        data = codec.compress(x, q)
        stream = codec.parse(data)
        y_hat, information = codec.decode_latents_and_bits(stream)
        if save_to is not None:
            write_bytes_atomic(save_to / STREAMS_DIR / f"q{_fmt(q)}" / f"{path.stem}.crdr", data)
        for beta in betas:
            x_hat = codec.synthesize(y_hat, stream, model.beta_tensor(beta, 1))
            row = image_row(dataset, path.name, x, q, beta, len(data))
            row["bpp_estimate"] = information / (height * width)
            patches[beta].append(score_image(suite, fids[beta], row, x, x_hat))
            if save_to is not None:
                folder = save_to / RECONSTRUCTIONS_DIR / point_name(q, beta)
                write_image(suite.to_8bit(x_hat), folder / f"{path.stem}.png")
            rows[beta].append(row)
            bar.update()
    return rows, fids, patches


def summary_row(
    dataset: str,
    q: float | None,
    beta: float | None,
    rows: Sequence[Mapping[str, Any]],
    features: tuple[Tensor, Tensor] | None,
    note: str,
    protocol: str,
) -> dict[str, Any]:
    """A grid point's ``results.csv`` row: means of the per-image ``rows``, FID/KID of the (real, fake) patch
    ``features`` of all its images (None: FID off), note, protocol. A single run, ``crdr score`` and ``crdr merge``
    all compute their rows here."""
    row: dict[str, Any] = {"dataset": dataset, "quality": q, "beta": beta, "num_images": len(rows)}
    row.update(note=note, protocol=protocol)
    for column in ["bpp", "bpp_estimate", *IMAGE_METRICS]:
        values = [r[column] for r in rows if column in r]
        row[column] = mean(values) if values else None
    if features is not None:
        if len(features[0]) < 2:
            raise ValueError(
                f"FID/KID need at least 2 patches, got {len(features[0])} from {len(rows)} image(s) "
                "(images smaller than a patch have none; metrics.fid=false turns FID/KID off)"
            )
        result = fid_kid(*features)
        row.update(FID=result["fid"], KID=result["kid"], KID_std=result["kid_std"], fid_patches=result["num_patches"])
    return row


def _as_lists(rows: list[dict[str, str]], columns: list[str]) -> list[list[str]]:
    return [[row.get(c, "") for c in columns] for row in rows]


def _check_or_write_run(output_dir: Path, run: dict[str, Any]) -> None:
    """Refuses to resume into a folder evaluated with another model, image set, metric setting, network
    (weight file or random seed) or protocol."""
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
