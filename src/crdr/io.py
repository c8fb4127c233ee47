"""Image files <-> tensors, with explicit colour handling and atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from crdr.files import PathLike, atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageReadError(ValueError):
    """An input file is missing, unreadable or not an image."""


def read_image(path: PathLike) -> Tensor:
    """Reads an image as (1, 3, H, W) float32 in [0, 1].

    EXIF orientation is applied; every mode is converted to 8-bit RGB (alpha is dropped,
    grayscale replicated, palettes expanded, CMYK converted by PIL).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: not a readable image ({err})") from None
    array = np.asarray(rgb, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255.0


def to_uint8(x: Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded (not truncated)."""
    x = x.detach().cpu()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def write_image(x: Tensor, path: PathLike) -> Path:
    """Writes an image tensor in [0, 1] as PNG (atomically: temp file, then rename)."""
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(x)).save(tmp, format="PNG")
    return Path(path)
