"""Training data: random crops of image folders (official CRDR pipeline, range [0, 1]) and a LightningDataModule.

The official transform is ``convert('RGB')`` -> ``RandomCrop(256, pad_if_needed=True, padding_mode='reflect')``
-> ``RandomHorizontalFlip(0.5)``; images here stay in [0, 1] (the model maps them to [-1, 1] itself).
Training crops come from ``ResumableShuffleSampler``: which image, which crop and which flip are a
function of (seed, position in the stream) only, so runs are reproducible with any number of
workers and a resumed run continues with the very batches it would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from crdr.io.files import IMAGE_SUFFIXES, PathLike, expand_paths
from crdr.io.images import ImageReadError, image_size, read_image
from crdr.lit.sampling import ResumableShuffleSampler
from crdr.lit.shards import TarShardReader
from crdr.lit.workers import StopSignalSafeDataLoader, worker_init_fn

SMALL_IMAGE_MODES = ("pad", "upsample", "skip")
#: With ``skip_unreadable``, this many unreadable images in a row (from one index on) are an error.
MAX_UNREADABLE_IN_A_ROW = 16

log = logging.getLogger(__name__)


def _as_list(paths: PathLike | Sequence[PathLike]) -> list[str]:
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
    when ``random_crop=False``), horizontally flipped with probability 0.5 when ``horizontal_flip``.
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
    ) -> None:
        super().__init__(crop_size, small_images, horizontal_flip, random_crop, skip_unreadable, max_images)
        self.roots = [Path(r) for r in _as_list(roots)]
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
    ``crdr.lit.shards``), cropped as ``CroppedImages`` describes. ``small_images="skip"`` is not
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
    ) -> None:
        super().__init__(crop_size, small_images, horizontal_flip, random_crop, skip_unreadable, max_images)
        if small_images == "skip":
            raise ValueError("small_images='skip' is not available for tar shards; use 'pad' or 'upsample'")
        self.reader = TarShardReader(_as_list(shards))

    def __len__(self) -> int:
        return len(self.reader) if self.max_images is None else min(self.max_images, len(self.reader))

    def _read(self, index: int) -> Tensor:
        return self.reader.read(index)


class ImageDataModule(LightningDataModule):
    """Random training crops from ``train_dirs`` (image folders) or ``train_shards`` (uncompressed tar shards:
    paths, folders or glob patterns) and (optionally) deterministic validation images from ``val_dirs``.

    Training batches are (batch_size, 3, crop_size, crop_size) in [0, 1] from an endless shuffled stream
    (``ResumableShuffleSampler``: per rank under DDP, so the Trainer runs with ``use_distributed_sampler=False``).
    The number of training batches consumed is part of the checkpoint (``state_dict``): a resumed run
    continues the stream where it stopped. An unreadable training image is logged and replaced by the
    next readable one (``CroppedImages``), validation images must all be readable.
    Validation batches are (1, 3, H, W): whole images (``val_crop_size=None``) or center crops, never flipped.
    ``root``/``val_root`` are the layout keys of ``conf/data/openimages.yaml`` (already interpolated into the
    dirs); they are accepted only so that config instantiates, and are recorded in the hyperparameters.
    """

    def __init__(
        self,
        train_dirs: Sequence[str] | None = None,
        val_dirs: Sequence[str] | None = None,
        batch_size: int = 8,
        crop_size: int = 256,
        val_crop_size: int | None = None,
        small_images: str = "pad",
        num_workers: int = 4,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        val_max_images: int | None = None,
        train_max_images: int | None = None,
        horizontal_flip: bool = True,
        seed: int = 0,
        train_shards: Sequence[str] | None = None,
        *,
        root: str | None = None,
        val_root: str | None = None,
    ) -> None:
        super().__init__()
        if small_images not in SMALL_IMAGE_MODES:
            raise ValueError(f"small_images must be one of {SMALL_IMAGE_MODES}, got {small_images!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if (train_dirs is None) == (train_shards is None):
            raise ValueError("give exactly one of train_dirs (image folders) and train_shards (tar shards)")
        self.train_dirs = _as_list(train_dirs) if train_dirs is not None else None
        self.train_shards = _as_list(train_shards) if train_shards is not None else None
        self.val_dirs = _as_list(val_dirs) if val_dirs is not None else None
        self.batch_size = batch_size
        self.crop_size = crop_size
        self.val_crop_size = val_crop_size
        self.small_images = small_images
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.val_max_images = val_max_images
        self.train_max_images = train_max_images
        self.horizontal_flip = horizontal_flip
        self.seed = seed
        #: Training batches the training loop has taken so far (checkpointed).
        self.train_batches_consumed = 0
        self.save_hyperparameters()
        self.train_dataset: CroppedImages | None = None
        self.val_dataset: ImageFolderDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Builds the datasets (once): training for ``fit`` (or None), validation when ``val_dirs`` is set."""
        if self.train_dataset is None and stage in (None, "fit"):
            source, dataset_class = (
                (self.train_dirs, ImageFolderDataset)
                if self.train_dirs is not None
                else (self.train_shards, TarShardDataset)
            )
            self.train_dataset = dataset_class(
                source,
                crop_size=self.crop_size,
                small_images=self.small_images,
                horizontal_flip=self.horizontal_flip,
                max_images=self.train_max_images,
                skip_unreadable=True,
            )
        if self.val_dataset is None and self.val_dirs is not None and stage in (None, "fit", "validate"):
            self.val_dataset = ImageFolderDataset(
                self.val_dirs,
                crop_size=self.val_crop_size,
                small_images=self.small_images,
                horizontal_flip=False,
                max_images=self.val_max_images,
                random_crop=False,
            )

    def _loader(self, dataset: CroppedImages, batch_size: int, sampler: Sampler | None = None) -> DataLoader:
        return StopSignalSafeDataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            # workers' base seed from their own generator: creating a loader leaves the global RNG alone
            generator=torch.Generator().manual_seed(self.seed),
            # stop signals sent to the whole process group are the main process's to handle
            worker_init_fn=worker_init_fn(self.trainer.global_rank if self.trainer is not None else 0),
        )

    def train_dataloader(self) -> DataLoader:
        """Endless (batch_size, 3, crop_size, crop_size) batches, this rank's share of the stream."""
        if self.train_dataset is None:
            self.setup("fit")
        assert self.train_dataset is not None
        if len(self.train_dataset) < self.batch_size:
            raise ValueError(
                f"{len(self.train_dataset)} training images in {self.train_dirs or self.train_shards} is fewer than "
                f"batch_size={self.batch_size}: a batch would repeat images"
            )
        trainer = self.trainer
        sampler = ResumableShuffleSampler(
            len(self.train_dataset),
            self.batch_size,
            seed=self.seed,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            start_batch=self.train_batches_consumed,
        )
        return self._loader(self.train_dataset, self.batch_size, sampler)

    def on_after_batch_transfer(self, batch: Tensor, dataloader_idx: int) -> Tensor:
        if self.trainer is not None and self.trainer.training:
            self.train_batches_consumed += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"train_batches_consumed": self.train_batches_consumed}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.train_batches_consumed = int(state_dict["train_batches_consumed"])

    def val_dataloader(self) -> DataLoader | list:
        """(1, 3, H, W) batches in a fixed order; an empty list (no validation) when ``val_dirs`` is None."""
        if self.val_dirs is None:
            return []
        if self.val_dataset is None:
            self.setup("validate")
        assert self.val_dataset is not None
        return self._loader(self.val_dataset, 1)
