"""Training images in uncompressed tar shards (the WebDataset layout), read by random access.

A cluster file system serves a few hundred 1 GB files far better than OpenImages' 1.7 million small
ones. Any member named ``*.png``, ``*.jpg`` or ``*.jpeg`` is an image (WebDataset's ``key.jpg``
members included; other members are ignored). The shards are indexed once (member offsets, from the
tar headers only) and read by seeking, so the endless, resumable training stream of
``crdr.data.sampling`` applies unchanged: exact resume works with shards too. ``write_tar_shards`` packs
image files into shards.
"""

from __future__ import annotations

import glob
import os
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from torch import Tensor

from crdr.io.files import IMAGE_SUFFIXES, PathLike, atomic_path
from crdr.io.images import ImageReadError, decode_image

#: Larger members are refused (a hostile or corrupt shard must not make a worker allocate without bound).
MAX_MEMBER_BYTES = 256 << 20


def expand_shards(patterns: Sequence[str]) -> list[Path]:
    """Shard files from paths, folders (their ``*.tar``) and glob patterns, in the given order."""
    shards: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(path.glob("*.tar"))
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(pattern))
        if not found:
            raise FileNotFoundError(f"tar shards {pattern}: no such file, folder of .tar files or matching pattern")
        shards.extend(found)
    return shards


class TarShardReader:
    """Image members of tar shards by index, as (3, H, W) float32 in [0, 1] (``crdr.data.crops.TarShardDataset``
    crops them)."""

    def __init__(self, shards: Sequence[str]) -> None:
        self.shards = expand_shards(shards)
        self.members: list[tuple[int, int, int, str]] = []  # (shard, data offset, size, name)
        for shard_index, shard in enumerate(self.shards):
            try:
                with tarfile.open(shard, "r:") as tar:
                    for member in tar:
                        if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                            self.members.append((shard_index, member.offset_data, member.size, member.name))
            except tarfile.ReadError as err:
                raise ImageReadError(f"{shard}: not an uncompressed tar file ({err})") from None
        if not self.members:
            raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} members in the tar shards {self.shards}")
        self._handles: dict[int, BinaryIO] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.members)

    def read(self, index: int) -> Tensor:
        shard_index, offset, size, name = self.members[index]
        label = f"{self.shards[shard_index]}:{name}"
        if size > MAX_MEMBER_BYTES:
            raise ImageReadError(f"{label}: {size} bytes is larger than the {MAX_MEMBER_BYTES} bytes allowed")
        handle = self._handle(shard_index)
        handle.seek(offset)
        data = handle.read(size)
        if len(data) != size:
            raise ImageReadError(f"{label}: truncated shard ({len(data)} of {size} bytes)")
        return decode_image(data, label)[0]

    def _handle(self, shard_index: int) -> BinaryIO:
        """One open file per shard and process (data-loader workers do not share file positions)."""
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if shard_index not in self._handles:
            self._handles[shard_index] = open(self.shards[shard_index], "rb")  # noqa: SIM115 - kept open
        return self._handles[shard_index]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}}


def write_tar_shards(images: Iterable[PathLike], out_dir: PathLike, images_per_shard: int = 1000) -> list[Path]:
    """Packs image files into ``out_dir/shard-000000.tar``, ... (members ``000000000.jpg`` etc.);
    each shard is written atomically. Returns the shard paths."""
    if images_per_shard <= 0:
        raise ValueError(f"images_per_shard must be positive, got {images_per_shard}")
    out_dir = Path(out_dir)
    files = [Path(p) for p in images]
    shards = []
    for start in range(0, len(files), images_per_shard):
        path = out_dir / f"shard-{start // images_per_shard:06d}.tar"
        with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for number, file in enumerate(files[start : start + images_per_shard], start):
                tar.add(file, arcname=f"{number:09d}{file.suffix.lower()}")
        shards.append(path)
    return shards
