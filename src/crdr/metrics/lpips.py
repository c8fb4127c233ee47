"""LPIPS (Zhang et al. 2018), frozen and loaded without any network access: the metric, and the network
under the perceptual loss (``crdr.losses.LpipsLoss``)."""

from __future__ import annotations

import os
import warnings

import lpips
import torch
from torch import Tensor, nn

from crdr.metrics.weights import ALEXNET_FILE, VGG16_FILE, pretrained_file

#: ``net`` choices -> their torchvision ImageNet backbone file (name in the torch hub cache, SHA-256 prefix).
BACKBONE_FILES: dict[str, tuple[str, str]] = {"alex": ALEXNET_FILE, "vgg": VGG16_FILE}


class Lpips(nn.Module):
    """LPIPS distance per image: ``distance(x, x_hat)`` (also ``forward``) with (B, 3, H, W) on [0, 1] -> (B,).

    Every parameter is frozen and the network stays in eval mode (``train()`` cannot switch it back).
    The torchvision backbone is never downloaded: its ImageNet weights are read from ``weights_path`` or the
    torch hub cache and checked by SHA-256. ``random_backbone=True`` keeps a randomly initialised backbone
    (the learned linear heads still come from the lpips wheel); values are then not real LPIPS, so results
    must be labelled with ``self.random_backbone``. The random backbone is drawn from ``seed`` (the global
    RNG is left as it was), so every process builds the same network.
    """

    def __init__(
        self,
        net: str = "alex",
        random_backbone: bool = False,
        weights_path: str | os.PathLike | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if net not in BACKBONE_FILES:
            raise ValueError(f"net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
        self.net = net
        self.random_backbone = bool(random_backbone)
        state = None
        if self.random_backbone:
            warnings.warn(
                f"{type(self).__name__} uses a RANDOM {net} backbone: values are not LPIPS; label results accordingly",
                stacklevel=2,
            )
        else:
            state = self._load_backbone(net, weights_path)
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore", UserWarning)  # torchvision's notices for lpips' `pretrained=` call
            torch.manual_seed(seed)
            self.lpips = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        if state is not None:
            self._copy_backbone(state)
        for p in self.lpips.parameters():
            p.requires_grad_(False)
        super().train(False)

    @staticmethod
    def _load_backbone(net: str, weights_path: str | os.PathLike | None) -> dict[str, Tensor]:
        name, sha_prefix = BACKBONE_FILES[net]
        path = pretrained_file(name, sha_prefix, weights_path, purpose=f"LPIPS ({net}) backbone weights")
        return torch.load(path, map_location="cpu", weights_only=True)

    def _copy_backbone(self, state: dict[str, Tensor]) -> None:
        # lpips slices keep torchvision's `features` indices: slice{k}.{i}.weight <- features.{i}.weight
        backbone = self.lpips.net
        with torch.no_grad():
            for name, param in backbone.named_parameters():
                _, index, kind = name.split(".")
                key = f"features.{index}.{kind}"
                if key not in state or state[key].shape != param.shape:
                    raise ValueError(f"backbone state has no matching {key} for {name}")
                param.copy_(state[key])

    def train(self, mode: bool = True) -> Lpips:
        """Ignored: LPIPS always stays in eval mode."""
        return super().train(False)

    def compile_units(self) -> list[nn.Module]:
        """What ``torch.compile`` compiles: the LPIPS network (used by ``forward`` and ``distance``)."""
        return [self.lpips]

    def distance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Unweighted LPIPS per image: x, x_hat (B, 3, H, W) on [0, 1] (x_hat may be unclamped) -> (B,)."""
        if x.shape != x_hat.shape:
            raise ValueError(f"shape mismatch: x {tuple(x.shape)} vs x_hat {tuple(x_hat.shape)}")
        return self.lpips(x * 2 - 1, x_hat * 2 - 1, normalize=False).flatten()

    def forward(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """:meth:`distance`: (B,)."""
        return self.distance(x, x_hat)

    def extra_repr(self) -> str:
        return f"net={self.net!r}, random_backbone={self.random_backbone}"
