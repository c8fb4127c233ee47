"""``crdr merge``: the shards of a sharded ``crdr evaluate`` (``shard.count`` > 1) as one evaluation folder.

Every grid point's row is computed by :func:`~crdr.evaluation.grid.summary_row`, as in a single run, from the
shards' per-image rows (kept at full precision) and the Inception features of every patch, concatenated in the
order of the whole sorted image list: the inputs of FID/KID are the single run's, bit for bit, so FID, KID and
every mean equal its values exactly (same arrays, same code, same summation order). ``results.csv``,
``per_image.csv`` and ``run.json`` are those a single run writes; the RD curves and W&B run follow, and the
image grid is the shard's that holds the first image. Shards that do not fit together are refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from crdr.evaluation.grid import (
    RUN_FILE,
    SUMMARY_FILE,
    ResultsFolder,
    in_grid_order,
    point_key,
    point_name,
    read_rows,
    summary_row,
)
from crdr.evaluation.pipeline import report
from crdr.evaluation.shards import SHARD_FILE, SHARD_KEY, PooledInputs, Shard
from crdr.evaluation.tracking import WandbGrid
from crdr.io.files import write_bytes_atomic

#: What shards must share in ``shard.json`` (its ``config`` may differ: device, progress, paths).
_SHARED_RECORD = ("dataset", "official", "title", "grid")
GRID_FILES = ("grid.png", "grid.svg")


@dataclass
class _ShardFolder:
    folder: Path
    run: dict[str, Any]
    record: dict[str, Any]

    @property
    def shard(self) -> Shard:
        return Shard(self.run[SHARD_KEY]["index"], self.run[SHARD_KEY]["count"])


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: no {path.name} ({what})")
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a JSON object")
    return value


def _read_shard(folder: Path) -> _ShardFolder:
    run = _read_json(folder / RUN_FILE, "not an evaluation folder")
    shard = run.get(SHARD_KEY)
    if not isinstance(shard, dict) or not {"index", "count", "images"} <= set(shard):
        raise ValueError(f"{folder}: not a shard (its run.json has no shard: evaluate with shard.count > 1)")
    record = _read_json(folder / SHARD_FILE, "not a shard of crdr evaluate, or one not finished: rerun it")
    grid = record.get("grid")
    if not set(_SHARED_RECORD) <= set(record) or not (isinstance(grid, dict) and {"q", "beta"} <= set(grid)):
        raise ValueError(f"{folder / SHARD_FILE}: needs {', '.join(_SHARED_RECORD)} (grid: q and beta)")
    return _ShardFolder(folder, run, record)


def _check_fit(shards: list[_ShardFolder]) -> list[_ShardFolder]:
    """The shards sorted by index, after checking that they are all of one evaluation and all there."""
    first = shards[0]
    for other in shards[1:]:
        keys = dict.fromkeys([*first.run, *other.run])
        differ = [k for k in keys if k not in ("images", SHARD_KEY) and first.run.get(k) != other.run.get(k)]
        if first.shard.count != other.shard.count or first.run[SHARD_KEY]["images"] != other.run[SHARD_KEY]["images"]:
            differ.append("shard count or image set")
        differ += [k for k in _SHARED_RECORD if first.record.get(k) != other.record.get(k)]
        if differ:
            raise ValueError(f"{first.folder} and {other.folder} are not shards of one evaluation: {', '.join(differ)}")
    by_index: dict[int, _ShardFolder] = {}
    for item in shards:
        if item.shard.index in by_index:
            raise ValueError(f"{by_index[item.shard.index].folder} and {item.folder} are both {item.shard.name}")
        by_index[item.shard.index] = item
    count = first.shard.count
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise ValueError(f"{Shard(missing[0], count).name} is missing ({len(shards)} of {count} shards given)")
    all_images = first.run[SHARD_KEY]["images"]
    for item in shards:
        if item.run["images"] != item.shard.select(all_images):
            raise ValueError(f"{item.folder}: its images are not those of {item.shard.name} of the set")
    return [by_index[i] for i in range(count)]


def _finished(shards: list[_ShardFolder], grid: list[tuple[Any, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    """The first shard's ``results.csv`` rows by grid point, after checking that every shard has every point."""
    rows = {}
    for item in shards:
        done = {(r["quality"], r["beta"]): r for r in read_rows(item.folder / SUMMARY_FILE)}
        for q, beta in grid:
            if point_key(q, beta) not in done:
                raise ValueError(
                    f"{item.folder}: grid point q={q} beta={beta} not finished (rerun the shard: it resumes)"
                )
        rows = rows or done
    return rows


def merge_shards(folders: Sequence[Path], output_dir: Path) -> list[dict[str, str]]:
    """Merges the shard folders of one sharded evaluation into ``output_dir``; returns the summary rows."""
    if not folders:
        raise ValueError("no shard folders given")
    shards = _check_fit([_read_shard(Path(f)) for f in folders])
    first = shards[0]
    all_images: list[str] = first.run[SHARD_KEY]["images"]
    run = {k: all_images if k == "images" else v for k, v in first.run.items() if k != SHARD_KEY}
    qs, betas = first.record["grid"]["q"], first.record["grid"]["beta"]
    grid = [(q, beta) for q in qs for beta in betas]
    shard_rows = _finished(shards, grid)
    folder = ResultsFolder(output_dir, run)
    tracker = _tracker(first, output_dir, folders)
    fid = bool(run["metrics"].get("fid"))
    real = None
    if fid:  # the originals' features, in the order of the whole set (float64, as a single run accumulates them)
        real = torch.cat(_in_set_order([PooledInputs(s.folder).load_real(s.run["images"]) for s in shards])).double()
    for q, beta in grid:
        if folder.done(q, beta):
            continue
        loaded = [PooledInputs(s.folder).load(point_name(q, beta), s.run["images"], fid) for s in shards]
        rows = _in_set_order([rows for rows, _ in loaded])
        features = None if real is None else (real, torch.cat(_in_set_order([f for _, f in loaded])).double())
        done = shard_rows[point_key(q, beta)]
        row = summary_row(first.record["dataset"], q, beta, rows, features, done["note"], done["protocol"])
        folder.add(row, rows)
        if tracker is not None:
            tracker.log_point(row)
    folder.write()
    grid_plots = []
    for name in GRID_FILES:  # the image grid of the first image, drawn by the shard holding it
        if (first.folder / name).is_file():
            grid_plots.append(write_bytes_atomic(output_dir / name, (first.folder / name).read_bytes()))
    summary = in_grid_order(folder.summary, qs, betas)
    record = first.record
    report(output_dir, summary, record["dataset"], record["official"], record["title"], grid_plots, tracker)
    return summary


def _in_set_order(per_shard: list[list[Any]]) -> list[Any]:
    """Items of shards 0..n-1 (shard k holds images k, k + n, ...) back in the order of the whole set."""
    n, total = len(per_shard), sum(map(len, per_shard))
    return [per_shard[i % n][i // n] for i in range(total)]


def _tracker(first: _ShardFolder, output_dir: Path, folders: Sequence[Path]) -> WandbGrid | None:
    """The W&B run of the merged evaluation when the shards were run with ``wandb.enabled`` (else None)."""
    config = dict(first.record.get("config") or {})
    if not config.get("wandb", {}).get("enabled"):
        return None
    count = first.shard.count
    config.update(output_dir=str(output_dir), shard={"count": count, "merged_from": [str(f) for f in folders]})
    return WandbGrid(OmegaConf.create(config), config)
