"""Sharded evaluation: which images a shard scores, and what it keeps for ``crdr merge`` beyond its CSVs.

A shard of ``count`` takes image ``i`` of the sorted list when ``i % count == index`` and writes into
``output_dir/shard-INDEX-of-COUNT`` (conf/evaluate.yaml's ``hydra.sweep.subdir`` names the same folder). FID
and KID are statistics of the whole set, not sums over images, so every shard keeps their inputs under
``pooled/``: the Inception features of every patch of every original (``real.safetensors``) and, per grid
point, those of every reconstruction and the per-image rows at full precision (``q{q}_beta{beta}.safetensors``,
the rows as JSON in its metadata). safetensors holds plain tensors: loading runs no code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from crdr.io.errors import ConfigError
from crdr.io.files import atomic_path

T = TypeVar("T")
#: The shard's record in ``run.json`` and the report inputs ``crdr merge`` reads (``shard.json``).
SHARD_KEY, SHARD_FILE, POOLED_DIR = "shard", "shard.json", "pooled"
_REAL, _ROWS = "real", "rows"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count); ``Shard(0, 1)`` is the whole set."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and isinstance(self.index, int) and 0 <= self.index < self.count):
            raise ConfigError(f"shard.index must be in 0..shard.count-1, got index {self.index} of {self.count}")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def folder(self, output_dir: Path) -> Path:
        """Where this shard writes: ``output_dir`` itself for the whole set."""
        return output_dir / self.name if self.sharded else output_dir

    def select(self, items: Sequence[T]) -> list[T]:
        """The items of this shard: every ``count``-th from ``index`` (none may be empty)."""
        chosen = list(items[self.index :: self.count])
        if not chosen:
            raise ConfigError(f"{self.name} has no images: the set has {len(items)} (use shard.count <= {len(items)})")
        return chosen


def _compact(features: Tensor) -> Tensor:
    """float32 when that is exact (Inception features are float32, accumulated as float64), else as given."""
    single = features.float()
    return single if torch.equal(single.double(), features.double()) else features


class PooledInputs:
    """The ``pooled/`` folder of one shard: per image, its rows and patch features, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / POOLED_DIR

    def _path(self, point: str) -> Path:
        return self.folder / f"{point}.safetensors"

    def save(
        self, point: str, rows: Sequence[dict[str, Any]], real: Sequence[Tensor] | None, fake: Sequence[Tensor] | None
    ) -> None:
        """Keeps grid point ``point``'s per-image ``rows`` and, with FID on, the per-image patch features
        (``real`` are written once: the same originals at every point)."""
        names = [row["image"] for row in rows]
        if real is not None and not self._path(_REAL).is_file():
            self._write(_REAL, dict(zip(names, real, strict=True)), {})
        fakes = {} if fake is None else dict(zip(names, fake, strict=True))
        self._write(point, fakes, {_ROWS: json.dumps(list(rows))})

    def _write(self, point: str, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
        with atomic_path(self._path(point)) as tmp:
            save_file({k: _compact(v).contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)

    def load(self, point: str, names: Sequence[str], features: bool) -> tuple[list[dict[str, Any]], list[Tensor]]:
        """The rows of ``names`` at ``point`` and (with ``features``) their reconstructions' patch features."""
        tensors, metadata = self._read(point, names if features else ())
        try:
            rows = json.loads(metadata.get(_ROWS, ""))
        except json.JSONDecodeError:
            raise ValueError(f"{self._path(point)}: no per-image rows in its metadata") from None
        if not isinstance(rows, list) or [r.get("image") if isinstance(r, dict) else None for r in rows] != list(names):
            raise ValueError(f"{self._path(point)}: its rows are not those of this shard's images")
        return rows, tensors

    def load_real(self, names: Sequence[str]) -> list[Tensor]:
        """The originals' patch features, in the order of ``names``."""
        return self._read(_REAL, names)[0]

    def _read(self, point: str, names: Sequence[str]) -> tuple[list[Tensor], dict[str, str]]:
        path = self._path(point)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (rerun the shard: it resumes and writes it)")
        try:
            with safe_open(str(path), framework="pt") as f:
                missing = [n for n in names if n not in f.keys()]  # noqa: SIM118 (safe_open has no __contains__)
                if missing:
                    raise ValueError(f"{path}: no features of image {missing[0]}")
                return [f.get_tensor(n) for n in names], f.metadata() or {}
        except SafetensorError as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
