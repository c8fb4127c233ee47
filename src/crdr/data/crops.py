"""Training items: random crops of image folders and tar shards (official CRDR pipeline, range [0, 1]).

The official transform is ``convert('RGB')`` -> ``RandomCrop(256, pad_if_needed=True, padding_mode='reflect')``
-> ``RandomHorizontalFlip(0.5)``; images here stay in [0, 1] (the model maps them to [-1, 1] itself).
An item's crop and flip come from the seed in its key (``crdr.data.sampling.ResumableShuffleSampler``
yields them), so the training stream is reproducible with any number of workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from crdr.data.shards import TarShardReader
from crdr.io.files import IMAGE_SUFFIXES, PathLike, expand_paths
from crdr.io.images import ImageReadError, image_size, read_image

SMALL_IMAGE_MODES = ("pad", "upsample", "skip")
#: With ``skip_unreadable``, this many unreadable images in a row (from one index on) are an error.
MAX_UNREADABLE_IN_A_ROW = 16

log = logging.getLogger(__name__)


def as_str_list(paths: PathLike | Sequence[PathLike]) -> list[str]:
    """A single path or a sequence of paths (e.g. a Hydra ListConfig) -> list of str."""
    if isinstance(paths, str | Path):
        return [str(paths)]
    return [str(p) for p in paths]


def _pad_axis(x: Tensor, pad: int, dim: int) -> Tensor:
    """Pads (C, H, W) ``x`` by ``pad`` on both sides of ``dim`` (-1 width, -2 height): reflect, or replicate
    when the image is too small to reflect (reflect needs ``pad < size``)."""
    if pad <= 0:
        return x
    pads = (pad, pad, 0, 0) if dim == -1 else (0, 0, pad, pad)
    mode = "reflect" if pad < x.shape[dim] else "replicate"
    return F.pad(x[None], pads, mode=mode)[0]


def pad_to_crop(x: Tensor, size: int) -> Tensor:
    """(3, H, W) -> (3, H', W') with H', W' >= size, like torchvision ``RandomCrop(pad_if_needed=True,
    padding_mode='reflect')``: each short axis is padded on both sides by its full shortfall."""
    x = _pad_axis(x, size - x.shape[-1], -1)
    return _pad_axis(x, size - x.shape[-2], -2)


def upsample_to_crop(x: Tensor, size: int) -> Tensor:
    """(3, H, W) in [0, 1] -> bicubic resize so that min(H, W) == size (aspect kept), clamped to [0, 1]."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    out_hw = (max(size, round(h * scale)), max(size, round(w * scale)))
    return F.interpolate(x[None], size=out_hw, mode="bicubic", align_corners=False)[0].clamp_(0, 1)


class CroppedImages(Dataset[Tensor]):
    """Training items from any image source: ``_read(index)`` gives the whole image, this class crops.

    Items are float32 (3, crop_size, crop_size) tensors in [0, 1]: a uniformly random crop (a center crop
    when ``random_crop=False``), horizontally flipped with probability 0.5 when ``horizontal_flip``, its RGB
    channels in a uniformly random order when ``permute_channels`` (not official: colour augmentation for
    small training sets that lack some hues, e.g. crdr-tiny's photographs have no saturated greens).
    ``crop_size=None`` returns whole images (3, H, W). Images smaller than the crop are reflect-padded
    (``small_images="pad"``, the official behaviour) or bicubic-upsampled (``"upsample"``).
    ``max_images`` keeps the first images of the source only.
    The key is an index (randomness from torch's global RNG) or ``(index, seed)`` (randomness from a
    generator seeded with ``seed``, as ``ResumableShuffleSampler`` yields). With ``skip_unreadable``
    (training), an unreadable image (corrupt, truncated, not an image) is logged once and replaced
    by the next readable one, deterministically; otherwise it raises ``ImageReadError``.
    """

    def __init__(
        self,
        crop_size: int | None = 256,
        small_images: str = "pad",
        horizontal_flip: bool = True,
        random_crop: bool = True,
        skip_unreadable: bool = False,
        max_images: int | None = None,
        permute_channels: bool = False,
    ) -> None:
        if max_images is not None and max_images <= 0:
            raise ValueError(f"max_images must be positive or None, got {max_images}")
        if small_images not in SMALL_IMAGE_MODES:
            raise ValueError(f"small_images must be one of {SMALL_IMAGE_MODES}, got {small_images!r}")
        if crop_size is not None and crop_size <= 0:
            raise ValueError(f"crop_size must be positive or None, got {crop_size}")
        self.crop_size = crop_size
        self.small_images = small_images
        self.horizontal_flip = horizontal_flip
        self.random_crop = random_crop
        self.skip_unreadable = skip_unreadable
        self.max_images = max_images
        self.permute_channels = permute_channels
        self._reported: set[int] = set()

    def _read(self, index: int) -> Tensor:
        """Image ``index`` as (3, H, W) float32 in [0, 1]."""
        raise NotImplementedError

    def _read_or_next(self, index: int) -> Tensor:
        if not self.skip_unreadable:
            return self._read(index)
        for offset in range(min(MAX_UNREADABLE_IN_A_ROW, len(self))):
            candidate = (index + offset) % len(self)
            try:
                return self._read(candidate)
            except ImageReadError as err:
                if candidate not in self._reported:
                    self._reported.add(candidate)
                    log.warning("skipping an unreadable training image: %s", err)
        raise ImageReadError(
            f"{min(MAX_UNREADABLE_IN_A_ROW, len(self))} training images in a row from index {index} are unreadable"
        )

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        """(3, crop_size, crop_size) float32 in [0, 1], or (3, H, W) when crop_size is None."""
        index, generator = key, None
        if isinstance(key, tuple):
            index, seed = key
            generator = torch.Generator().manual_seed(seed)
        x = self._read_or_next(index)
        size = self.crop_size
        if size is not None:
            if min(x.shape[-2:]) < size:
                x = upsample_to_crop(x, size) if self.small_images == "upsample" else pad_to_crop(x, size)
            h, w = x.shape[-2:]
            if self.random_crop:
                top = int(torch.randint(0, h - size + 1, (), generator=generator).item())
                left = int(torch.randint(0, w - size + 1, (), generator=generator).item())
            else:
                top, left = (h - size) // 2, (w - size) // 2
            x = x[:, top : top + size, left : left + size]
        if self.horizontal_flip and torch.rand((), generator=generator).item() < 0.5:
            x = x.flip(-1)
        if self.permute_channels:  # drawn last: the crop and flip streams match a run without it
            x = x[torch.randperm(3, generator=generator)]
        return x.contiguous()


class ImageFolderDataset(CroppedImages):
    """Every JPEG/PNG file below ``roots`` (recursively; sorted within each root, roots in the given order),
    cropped as ``CroppedImages`` describes. ``small_images="skip"`` leaves images smaller than the crop
    out at construction (reading only the headers).
    """

    def __init__(
        self,
        roots: Sequence[PathLike] | PathLike,
        crop_size: int | None = 256,
        small_images: str = "pad",
        horizontal_flip: bool = True,
        max_images: int | None = None,
        *,
        random_crop: bool = True,
        skip_unreadable: bool = False,
        permute_channels: bool = False,
    ) -> None:
        super().__init__(
            crop_size, small_images, horizontal_flip, random_crop, skip_unreadable, max_images, permute_channels
        )
        self.roots = [Path(r) for r in as_str_list(roots)]
        if not self.roots:
            raise ValueError("no image roots given")
        files: list[Path] = []
        for root in self.roots:
            if not root.exists():
                raise FileNotFoundError(
                    f"image root {root}: no such file or directory (the paper's sets: crdr data fetch NAME --root DIR)"
                )
            found = expand_paths([root], IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"image root {root}: no {'/'.join(IMAGE_SUFFIXES)} files found (recursively)")
            files.extend(found)
        if small_images == "skip" and crop_size is not None:
            kept = [p for p in files if min(image_size(p)) >= crop_size]
            if not kept:
                raise ValueError(
                    f"small_images='skip': none of the {len(files)} images under {[str(r) for r in self.roots]} "
                    f"is at least {crop_size}x{crop_size}"
                )
            self.num_skipped = len(files) - len(kept)
            files = kept
        else:
            self.num_skipped = 0
        self.files = files[:max_images]

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int) -> Tensor:
        return read_image(self.files[index])[0]


class TarShardDataset(CroppedImages):
    """Image members of uncompressed tar shards (paths, folders of ``*.tar`` or glob patterns; see
    ``crdr.data.shards``), cropped as ``CroppedImages`` describes. ``small_images="skip"`` is not
    available (it would decode every image up front)."""

    def __init__(
        self,
        shards: Sequence[str] | str,
        crop_size: int | None = 256,
        small_images: str = "pad",
        horizontal_flip: bool = True,
        max_images: int | None = None,
        *,
        random_crop: bool = True,
        skip_unreadable: bool = False,
        permute_channels: bool = False,
    ) -> None:
        super().__init__(
            crop_size, small_images, horizontal_flip, random_crop, skip_unreadable, max_images, permute_channels
        )
        if small_images == "skip":
            raise ValueError("small_images='skip' is not available for tar shards; use 'pad' or 'upsample'")
        self.reader = TarShardReader(as_str_list(shards))

    def __len__(self) -> int:
        return len(self.reader) if self.max_images is None else min(self.max_images, len(self.reader))

    def _read(self, index: int) -> Tensor:
        return self.reader.read(index)
