"""Image files <-> tensors, with explicit colour handling and atomic writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from crdr.io.errors import ImageReadError
from crdr.io.files import PathLike, atomic_path

#: 16-bit (and 32-bit integer) grayscale modes, which PIL's convert("RGB") would clip at 255.
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")

#: What PIL raises for unreadable input: not an image, truncated, corrupt, or a decompression bomb.
_PIL_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)


def image_size(path: PathLike) -> tuple[int, int]:
    """(width, height) from the file header only (nothing decoded, nothing large allocated)."""
    try:
        with Image.open(path) as img:
            return img.size
    except _PIL_ERRORS as err:
        raise ImageReadError(f"{path}: not a readable image ({err})") from None


def read_image(path: PathLike) -> Tensor:
    """Reads an image as (1, 3, H, W) float32 in [0, 1].

    EXIF orientation is applied; every mode is converted to 8-bit RGB: alpha is dropped (the
    stored colour of transparent pixels is kept), grayscale replicated, palettes expanded, CMYK
    converted by PIL's naive formula (no ICC profile), and 16-bit samples scaled to 8 bits
    (round(v / 257)) rather than clipped as PIL's own conversion would.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    return _decode(path, str(path))


def decode_image(data: bytes, name: str) -> Tensor:
    """``read_image`` for an encoded image held in memory (e.g. a tar-shard member called ``name``)."""
    return _decode(io.BytesIO(data), name)


def _decode(source: Path | io.BytesIO, name: str) -> Tensor:
    try:
        with Image.open(source) as img:
            img.load()
            array = _rgb8(ImageOps.exif_transpose(img), name)
    except ImageReadError:
        raise  # already names the file (an ImageReadError is also a ValueError, caught below)
    except _PIL_ERRORS as err:
        raise ImageReadError(f"{name}: not a readable image ({err})") from None
    return from_uint8(array)


def _rgb8(img: Image.Image, name: str) -> np.ndarray:
    """(H, W, 3) uint8 of any PIL image (see ``read_image`` for the conversions)."""
    if img.mode in _WIDE_GRAY_MODES:
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageReadError(f"{name}: {img.mode} samples outside the 16-bit range are not supported")
        gray = ((values * 2 + 257) // 514).astype(np.uint8)  # round(v / 257)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def from_uint8(array: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1] (the inverse of :func:`to_uint8`)."""
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255.0


def quantize_8bit(x: Tensor) -> Tensor:
    """[0, 1] floats (unclamped allowed) -> the 8-bit values ``round(clamp(x, 0, 1) * 255)``, as float: the one
    8-bit rounding of the package (PSNR, Inception inputs, written images, the Laplacian of the controls)."""
    return (x.detach().clamp(0, 1) * 255).round()


def to_uint8(x: Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded (not truncated)."""
    x = x.detach().cpu()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]
    return quantize_8bit(x).to(torch.uint8).permute(1, 2, 0).numpy()


def write_image(x: Tensor, path: PathLike) -> Path:
    """Writes an image tensor in [0, 1] as PNG (atomically: temp file, then rename)."""
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(x)).save(tmp, format="PNG")
    return Path(path)
