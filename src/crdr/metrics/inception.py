"""The FID/KID feature networks, offline: torch-fidelity's or pytorch-fid's Inception-v3 (2048-d pool3 features).

Both run the TF FID Inception weights; they differ in the implementation around them (torch-fidelity resizes the
8-bit input TF1-compatibly, pytorch-fid resizes [0, 1] floats with ``F.interpolate``), so their features, and the
FID/KID computed from them, differ slightly. The official CRDR CSVs were computed with pytorch-fid.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import pytorch_fid.inception
import torch
from torch import Tensor, nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from crdr.io.images import quantize_8bit
from crdr.metrics.weights import FIDELITY_INCEPTION_FILE, PYTORCH_FID_INCEPTION_FILE, pretrained_file

#: ``network`` choices -> their weight file (its name in the torch hub cache) and its SHA-256 prefix.
INCEPTION_FILES = {"torch-fidelity": FIDELITY_INCEPTION_FILE, "pytorch-fid": PYTORCH_FID_INCEPTION_FILE}
FID_NETWORKS: tuple[str, ...] = tuple(INCEPTION_FILES)
#: How the scoring protocol names each network.
NETWORK_LABELS = {"torch-fidelity": "torch-fidelity inception-v3-compat", "pytorch-fid": "pytorch-fid InceptionV3"}


class _UnloadedInception(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 that ignores the state dict it is given: keeps its random initialisation."""

    def load_state_dict(self, state_dict, strict=True, assign=False):  # type: ignore[override]
        return None


def _random_inception_file(folder: Path, seed: int) -> Path:
    """Writes a seeded random state dict of the FID Inception-v3 to ``folder``; never touches the network.

    Both networks have the same parameter names and shapes, so both load this file: the same random weights.
    """
    empty = folder / "empty.pth"
    torch.save({}, empty)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shell = _UnloadedInception("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
        for module in shell.modules():  # variance-preserving init, so the 2048-d pool features are not ~0
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = folder / "random-inception.pth"
    torch.save(shell.state_dict(), path)
    return path


def _torch_fidelity(path: Path) -> nn.Module:
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))


def _pytorch_fid(path: Path) -> nn.Module:
    """pytorch-fid's InceptionV3 up to the pool3 block, with the state dict of ``path`` (loaded with
    ``weights_only=True``) handed to it where it would download its weights."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    with mock.patch.object(pytorch_fid.inception, "load_state_dict_from_url", lambda url, **kwargs: state):
        return pytorch_fid.inception.InceptionV3([pytorch_fid.inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])


_BUILDERS = {"torch-fidelity": _torch_fidelity, "pytorch-fid": _pytorch_fid}


class InceptionFeatures(nn.Module):
    """2048-d pool features of an FID Inception-v3: (B, 3, H, W) on [0, 1] -> (B, 2048) float32.

    ``network``: ``"torch-fidelity"`` (TF1-compatible bilinear resize of the uint8 input to 299x299) or
    ``"pytorch-fid"`` (the network of the official CRDR CSVs: ``F.interpolate`` bilinear resize of [0, 1] floats).
    Inputs are rounded to 8 bits (``round(clamp(x, 0, 1) * 255)``) for both. The weights come from
    ``weights_path`` or ``$TORCH_HOME/hub/checkpoints/`` (the network's file in :data:`INCEPTION_FILES`, SHA-256
    checked, never downloaded). ``random_backbone=True`` builds the network with seeded random weights (for tests,
    the same weights for both networks): values are then not FID/KID, see ``self.random_backbone``. Frozen,
    always in eval mode.
    """

    dim = 2048

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        random_backbone: bool = False,
        seed: int = 0,
        network: str = "torch-fidelity",
    ) -> None:
        super().__init__()
        if network not in INCEPTION_FILES:
            raise ValueError(f"FID network must be one of {', '.join(FID_NETWORKS)}, got {network!r}")
        self.network = network
        self.random_backbone = bool(random_backbone)
        if self.random_backbone:
            warnings.warn(
                f"InceptionFeatures uses a RANDOM {network} Inception-v3: values are not FID/KID; "
                "label results accordingly",
                stacklevel=2,
            )
            with tempfile.TemporaryDirectory() as tmp:
                self.net = _BUILDERS[network](_random_inception_file(Path(tmp), seed))
        else:
            self.net = _BUILDERS[network](pretrained_file(*INCEPTION_FILES[network], weights_path))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Ignored: the feature extractor always stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 3, H, W) on [0, 1] -> (B, 2048) float32 pool features."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        device = next(self.net.parameters()).device
        pixels = quantize_8bit(x).to(torch.uint8).to(device)  # the uint8 input torch-fidelity expects
        if self.network == "pytorch-fid":  # its input: [0, 1] floats, as torchvision's ToTensor reads a PNG
            (pool,) = self.net(pixels.float() / 255)
            return pool.flatten(1)
        (features,) = self.net(pixels)
        return features

    def extra_repr(self) -> str:
        return f"network={self.network!r}, random_backbone={self.random_backbone}"
