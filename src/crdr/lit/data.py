"""The training DataModule: endless, resumable random crops of image folders or tar shards.

Training crops (``crdr.data.crops``) come from ``ResumableShuffleSampler`` (``crdr.data.sampling``):
which image, which crop and which flip are a function of (seed, position in the stream) only, so runs
are reproducible with any number of workers and a resumed run continues with the very batches it
would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from crdr.data.crops import SMALL_IMAGE_MODES, CroppedImages, ImageFolderDataset, TarShardDataset, as_str_list
from crdr.data.sampling import ResumableShuffleSampler
from crdr.lit.workers import StopSignalSafeDataLoader, worker_init_fn


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
        permute_channels: bool = False,
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
        self.train_dirs = as_str_list(train_dirs) if train_dirs is not None else None
        self.train_shards = as_str_list(train_shards) if train_shards is not None else None
        self.val_dirs = as_str_list(val_dirs) if val_dirs is not None else None
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
        self.permute_channels = permute_channels
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
                permute_channels=self.permute_channels,
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
