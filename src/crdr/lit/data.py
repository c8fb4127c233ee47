"""Training data: random crops of image folders (official CRDR pipeline, range [0, 1]) and a LightningDataModule.

The official transform is ``convert('RGB')`` -> ``RandomCrop(256, pad_if_needed=True, padding_mode='reflect')``
-> ``RandomHorizontalFlip(0.5)``; images here stay in [0, 1] (the model maps them to [-1, 1] itself).
All randomness comes from torch's RNG, so ``lightning.seed_everything(seed, workers=True)`` makes it reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from crdr.files import PathLike, expand_paths
from crdr.io import IMAGE_SUFFIXES, ImageReadError, read_image

SMALL_IMAGE_MODES = ("pad", "upsample", "skip")


def _as_list(paths: PathLike | Sequence[PathLike]) -> list[str]:
    """A single path or a sequence of paths (e.g. a Hydra ListConfig) -> list of str."""
    if isinstance(paths, str | Path):
        return [str(paths)]
    return [str(p) for p in paths]


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only (no decoding)."""
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: not a readable image ({err})") from None


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


class ImageFolderDataset(Dataset[Tensor]):
    """Every JPEG/PNG file below ``roots`` (recursively; sorted within each root, roots in the given order).

    Items are float32 (3, crop_size, crop_size) tensors in [0, 1]: a uniformly random crop (a center crop
    when ``random_crop=False``), horizontally flipped with probability 0.5 when ``horizontal_flip``.
    ``crop_size=None`` returns whole images (3, H, W). Images smaller than the crop are reflect-padded
    (``small_images="pad"``, the official behaviour), bicubic-upsampled (``"upsample"``) or left out at
    construction (``"skip"``, which reads only the headers).
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
    ) -> None:
        if small_images not in SMALL_IMAGE_MODES:
            raise ValueError(f"small_images must be one of {SMALL_IMAGE_MODES}, got {small_images!r}")
        if crop_size is not None and crop_size <= 0:
            raise ValueError(f"crop_size must be positive or None, got {crop_size}")
        if max_images is not None and max_images <= 0:
            raise ValueError(f"max_images must be positive or None, got {max_images}")
        self.roots = [Path(r) for r in _as_list(roots)]
        if not self.roots:
            raise ValueError("no image roots given")
        self.crop_size = crop_size
        self.small_images = small_images
        self.horizontal_flip = horizontal_flip
        self.random_crop = random_crop

        files: list[Path] = []
        for root in self.roots:
            if not root.exists():
                raise FileNotFoundError(f"image root {root}: no such file or directory")
            found = expand_paths([root], IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"image root {root}: no {'/'.join(IMAGE_SUFFIXES)} files found (recursively)")
            files.extend(found)
        if small_images == "skip" and crop_size is not None:
            kept = [p for p in files if min(_image_size(p)) >= crop_size]
            if not kept:
                raise ValueError(
                    f"small_images='skip': none of the {len(files)} images under {[str(r) for r in self.roots]} "
                    f"is at least {crop_size}x{crop_size}"
                )
            self.num_skipped = len(files) - len(kept)
            files = kept
        else:
            self.num_skipped = 0
        self.files = files[:max_images] if max_images is not None else files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        """(3, crop_size, crop_size) float32 in [0, 1], or (3, H, W) when crop_size is None."""
        x = read_image(self.files[index])[0]
        size = self.crop_size
        if size is not None:
            if min(x.shape[-2:]) < size:
                x = upsample_to_crop(x, size) if self.small_images == "upsample" else pad_to_crop(x, size)
            h, w = x.shape[-2:]
            if self.random_crop:
                top = int(torch.randint(0, h - size + 1, ()).item())
                left = int(torch.randint(0, w - size + 1, ()).item())
            else:
                top, left = (h - size) // 2, (w - size) // 2
            x = x[:, top : top + size, left : left + size]
        if self.horizontal_flip and torch.rand(()).item() < 0.5:
            x = x.flip(-1)
        return x.contiguous()


class ImageDataModule(LightningDataModule):
    """Random training crops from ``train_dirs`` and (optionally) deterministic validation images from ``val_dirs``.

    Training batches are (batch_size, 3, crop_size, crop_size) in [0, 1], shuffled, last partial batch dropped.
    Validation batches are (1, 3, H, W): whole images (``val_crop_size=None``) or center crops, never flipped.
    ``root``/``val_root`` are the layout keys of ``conf/data/openimages.yaml`` (already interpolated into the
    dirs); they are accepted only so that config instantiates, and are recorded in the hyperparameters.
    """

    def __init__(
        self,
        train_dirs: Sequence[str],
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
        *,
        root: str | None = None,
        val_root: str | None = None,
    ) -> None:
        super().__init__()
        if small_images not in SMALL_IMAGE_MODES:
            raise ValueError(f"small_images must be one of {SMALL_IMAGE_MODES}, got {small_images!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.train_dirs = _as_list(train_dirs)
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
        self.save_hyperparameters()
        self.train_dataset: ImageFolderDataset | None = None
        self.val_dataset: ImageFolderDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Builds the datasets (once): training for ``fit`` (or None), validation when ``val_dirs`` is set."""
        if self.train_dataset is None and stage in (None, "fit"):
            self.train_dataset = ImageFolderDataset(
                self.train_dirs,
                crop_size=self.crop_size,
                small_images=self.small_images,
                horizontal_flip=self.horizontal_flip,
                max_images=self.train_max_images,
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

    def _loader(self, dataset: ImageFolderDataset, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (batch_size, 3, crop_size, crop_size) batches; the last partial batch is dropped."""
        if self.train_dataset is None:
            self.setup("fit")
        assert self.train_dataset is not None
        if len(self.train_dataset) < self.batch_size:
            raise ValueError(
                f"{len(self.train_dataset)} training images under {self.train_dirs} is fewer than "
                f"batch_size={self.batch_size}; with drop_last there would be no batch at all"
            )
        return self._loader(self.train_dataset, self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        """(1, 3, H, W) batches in a fixed order; an empty list (no validation) when ``val_dirs`` is None."""
        if self.val_dirs is None:
            return []
        if self.val_dataset is None:
            self.setup("validate")
        assert self.val_dataset is not None
        return self._loader(self.val_dataset, 1, shuffle=False, drop_last=False)
