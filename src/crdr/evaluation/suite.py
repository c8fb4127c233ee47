"""The metrics of an evaluation: per-image scores and the set-level FID/KID of one grid point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from crdr.io.errors import ConfigError
from crdr.io.images import quantize_8bit
from crdr.metrics import Dists, FidKid, InceptionFeatures, Lpips, ms_ssim, psnr_8bit
from crdr.metrics.inception import FID_NETWORKS, INCEPTION_FILES, NETWORK_LABELS
from crdr.metrics.lpips import BACKBONE_FILES
from crdr.metrics.weights import VGG16_FILE, weight_identity

#: ``fid_protocol`` choices -> the HiFiC patch protocol's shifted-set policy.
FID_PROTOCOLS = {
    # Official CRDR CSVs (pytorch-fid features): 256x256 patches plus the set shifted by 128, always.
    "crdr": "always",
    # MS-ILLM / NeuralCompression: the shifted set only for images of at least 384 px per side.
    "ms_illm": "min_side_384",
}
#: The seed of every random backbone (LPIPS AlexNet, DISTS VGG16, Inception-v3): the same networks in every process.
RANDOM_SEED = 0
#: How ``protocol`` names each shift policy.
_SHIFTS = {"always": "always", "min_side_384": "for images of at least 1.5 patches per side"}


@dataclass
class MetricConfig:
    """Which metrics run and where their pretrained weights are (default: the torch hub cache)."""

    psnr: bool = True
    ms_ssim: bool = True
    lpips: bool = True
    dists: bool = True
    fid: bool = True
    fid_protocol: str = "crdr"
    #: The FID/KID Inception-v3: "torch-fidelity" or "pytorch-fid" (that of the official CRDR CSVs).
    fid_network: str = "torch-fidelity"
    patch_size: int = 256
    #: How reconstructions become the 8-bit images every metric sees: "round" (what ``crdr decompress``
    #: writes) or "truncate" (the official CRDR scripts: ``astype(uint8)``; reproduces their CSVs).
    reconstruction_8bit: str = "round"
    weights_dir: str | None = None
    #: Random LPIPS/DISTS/Inception backbones: for tests and offline demos only; results say so.
    random_backbones: bool = False


class MetricSuite:
    """Builds every backbone once; scores images and accumulates FID/KID per grid point."""

    def __init__(self, config: MetricConfig, device: str | torch.device = "cpu") -> None:
        if config.reconstruction_8bit not in ("round", "truncate"):
            raise ConfigError(f"reconstruction_8bit must be 'round' or 'truncate', got {config.reconstruction_8bit!r}")
        if config.fid_protocol not in FID_PROTOCOLS:
            raise ConfigError(f"fid_protocol must be one of {sorted(FID_PROTOCOLS)}, got {config.fid_protocol!r}")
        if config.fid_network not in FID_NETWORKS:
            raise ConfigError(f"fid_network must be one of {', '.join(FID_NETWORKS)}, got {config.fid_network!r}")
        self.config = config
        self.device = torch.device(device)
        random = config.random_backbones
        weights = Path(config.weights_dir) if config.weights_dir else None
        alex = BACKBONE_FILES["alex"]
        self.lpips = (
            Lpips(net="alex", random_backbone=random, weights_path=_file(weights, alex[0]), seed=RANDOM_SEED)
            if config.lpips
            else None
        )
        self.dists = Dists(weights_path=_file(weights, VGG16_FILE[0]), random_backbone=random) if config.dists else None
        inception = INCEPTION_FILES[config.fid_network]
        self.inception = (
            InceptionFeatures(_file(weights, inception[0]), random, RANDOM_SEED, network=config.fid_network)
            if config.fid
            else None
        )
        used = {"LPIPS": (config.lpips, alex), "DISTS": (config.dists, VGG16_FILE), "FID": (config.fid, inception)}
        #: Which network each metric ran: a weight file and its SHA-256, or the seed of a random backbone.
        self.networks = {
            metric: f"random, seed {RANDOM_SEED}" if random else weight_identity(*file, _file(weights, file[0]))
            for metric, (enabled, file) in used.items()
            if enabled
        }
        self._real_features: dict = {}  # Inception features of the originals, shared by every grid point
        for module in (self.lpips, self.dists, self.inception):
            if module is not None:
                module.to(self.device)

    @property
    def note(self) -> str:
        """A remark stored with every result row (empty for real backbones)."""
        if self.config.random_backbones:
            return "random backbones: LPIPS, DISTS, FID and KID are not comparable with published values"
        return ""

    def protocol(self, resize: str = "none") -> str:
        """The scoring protocol in one line, recorded with every result row: FID/KID patches and their shifted
        second cut, the 8-bit rule of the reconstructions, the Inception features, the resize rule applied."""
        c = self.config
        shift = _SHIFTS[FID_PROTOCOLS[c.fid_protocol]]
        return (
            f"FID/KID {c.fid_protocol}: {c.patch_size}px patches + grid shifted by {c.patch_size // 2} {shift}; "
            f"8-bit {c.reconstruction_8bit}; Inception {NETWORK_LABELS[c.fid_network]}; resize {resize}"
        )

    def new_fid(self) -> FidKid | None:
        """A fresh FID/KID accumulator for one grid point (None when FID is off)."""
        if self.inception is None:
            return None
        policy = FID_PROTOCOLS[self.config.fid_protocol]
        return FidKid(
            self.inception, patch_size=self.config.patch_size, shift_policy=policy, real_cache=self._real_features
        )

    def to_8bit(self, x_hat: Tensor) -> Tensor:
        """x_hat in [0, 1] as the 8-bit image a user gets (values k / 255), per ``reconstruction_8bit``."""
        if self.config.reconstruction_8bit == "round":
            return quantize_8bit(x_hat) / 255
        return torch.floor(x_hat.clamp(0, 1) * 255) / 255

    @torch.no_grad()
    def score(self, x: Tensor, x_hat: Tensor) -> dict[str, float]:
        """Per-image metrics of x and the 8-bit x_hat: (1, 3, H, W) in [0, 1] -> {PSNR, MS-SSIM, LPIPS, DISTS}."""
        x, x_hat = x.to(self.device), self.to_8bit(x_hat.to(self.device))
        scores: dict[str, float] = {}
        if self.config.psnr:
            scores["PSNR"] = float(psnr_8bit(x, x_hat)[0])
        if self.config.ms_ssim:
            scores["MS-SSIM"] = float(ms_ssim(x, x_hat)[0])
        if self.lpips is not None:
            scores["LPIPS"] = float(self.lpips.distance(x, x_hat)[0])
        if self.dists is not None:
            scores["DISTS"] = float(self.dists(x, x_hat)[0])
        return scores


def _file(folder: Path | None, name: str) -> Path | None:
    return None if folder is None else folder / name


def mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none, e.g. MS-SSIM of images that are all too small)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")
