"""Evaluation metrics: PSNR, MS-SSIM, LPIPS, DISTS, FID/KID on HiFiC patches (two selectable Inception networks), and
offline pretrained-weight loading.

Submodules are imported lazily, so importing one (``crdr.losses`` uses ``crdr.metrics.lpips``) imports no other.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crdr.metrics.dists import Dists
    from crdr.metrics.fid import FidKid, fid_from_features, fid_kid, hific_patches, kid_from_features
    from crdr.metrics.image import ms_ssim, psnr_8bit
    from crdr.metrics.inception import InceptionFeatures
    from crdr.metrics.lpips import Lpips
    from crdr.metrics.weights import pretrained_file

_EXPORTS = {
    "pretrained_file": "weights",
    "psnr_8bit": "image",
    "ms_ssim": "image",
    "Dists": "dists",
    "Lpips": "lpips",
    "hific_patches": "fid",
    "InceptionFeatures": "inception",
    "FidKid": "fid",
    "fid_from_features": "fid",
    "fid_kid": "fid",
    "kid_from_features": "fid",
}

__all__ = [
    "Dists",
    "FidKid",
    "InceptionFeatures",
    "Lpips",
    "fid_from_features",
    "fid_kid",
    "hific_patches",
    "kid_from_features",
    "ms_ssim",
    "pretrained_file",
    "psnr_8bit",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"crdr.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'crdr.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
