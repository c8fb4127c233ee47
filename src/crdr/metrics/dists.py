"""DISTS (Ding et al. 2020) with its VGG16 built once and loaded offline."""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor, nn
from torchmetrics.functional.image.dists import _PATH_WEIGHT_DISTS, L2pooling
from torchvision.models.vgg import cfgs, make_layers

from crdr.metrics.weights import VGG16_FILE, pretrained_file

#: torchvision VGG16 ``features`` indices of each DISTS stage; the max-pools at 4, 9, 16, 23 become L2 pooling.
_STAGES = (range(0, 4), range(5, 9), range(10, 16), range(17, 23), range(24, 30))
_CHANNELS = (3, 64, 128, 256, 512, 512)


def _vgg16_features() -> nn.Sequential:
    """The (randomly initialised) ``features`` part of torchvision's VGG16, without its classifier."""
    return make_layers(cfgs["D"], batch_norm=False)


class Dists(nn.Module):
    """DISTS distance per image: ``forward(x, x_hat)`` with (B, 3, H, W) on [0, 1] -> (B,), 0 for identical images.

    The VGG16 backbone is built once at construction; its ImageNet weights come from ``weights_path`` or
    ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` (SHA-256 checked, never downloaded), the learned
    alpha/beta from the file bundled with torchmetrics. Frozen and always in eval mode. ``random_backbone=True``
    uses a seeded random VGG16 instead (for tests): values are then not DISTS, see ``self.random_backbone``.
    Inputs are not resized (the DISTS authors resize so that the short side is 256 before calling the metric).
    """

    alpha: Tensor
    beta: Tensor
    mean: Tensor
    std: Tensor

    def __init__(self, weights_path: str | os.PathLike | None = None, random_backbone: bool = False) -> None:
        super().__init__()
        self.random_backbone = bool(random_backbone)
        if self.random_backbone:
            warnings.warn(
                "Dists uses a RANDOM VGG16 backbone: values are not DISTS; label results accordingly", stacklevel=2
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                features = _vgg16_features()
        else:
            path = pretrained_file(*VGG16_FILE, weights_path, purpose="torchvision VGG16 ImageNet weights, for DISTS")
            state = torch.load(path, map_location="cpu", weights_only=True)
            features = _vgg16_features()
            prefix = "features."
            features.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        self.stages = nn.ModuleList()
        for k, indices in enumerate(_STAGES):
            stage = nn.Sequential()
            if k > 0:
                stage.add_module(str(indices[0] - 1), L2pooling(channels=_CHANNELS[k]))
            for i in indices:
                stage.add_module(str(i), features[i])
            self.stages.append(stage)
        heads = torch.load(_PATH_WEIGHT_DISTS, map_location="cpu", weights_only=True)
        self.register_buffer("alpha", heads["alpha"].float().clone())
        self.register_buffer("beta", heads["beta"].float().clone())
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Dists:
        """Ignored: DISTS always stays in eval mode."""
        return super().train(False)

    def features(self, x: Tensor) -> list[Tensor]:
        """The six DISTS feature maps of x (B, 3, H, W) on [0, 1]: the input itself, then the five VGG stages."""
        feats = [x]
        h = (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """DISTS per image: x, x_hat (B, 3, H, W) on [0, 1] -> (B,) (gradients flow to the inputs if enabled)."""
        if x.shape != x_hat.shape:
            raise ValueError(f"shape mismatch: x {tuple(x.shape)} vs x_hat {tuple(x_hat.shape)}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        c1 = c2 = 1e-6
        w_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w_sum, list(_CHANNELS), dim=1)
        betas = torch.split(self.beta / w_sum, list(_CHANNELS), dim=1)
        mean_term = cov_term = x.new_zeros(x.shape[0])
        for f0, f1, alpha, beta in zip(self.features(x), self.features(x_hat), alphas, betas, strict=True):
            m0, m1 = f0.mean((2, 3), keepdim=True), f1.mean((2, 3), keepdim=True)
            s1 = (2 * m0 * m1 + c1) / (m0**2 + m1**2 + c1)
            v0 = (f0 - m0).square().mean((2, 3), keepdim=True)
            v1 = (f1 - m1).square().mean((2, 3), keepdim=True)
            cov = (f0 * f1).mean((2, 3), keepdim=True) - m0 * m1
            s2 = (2 * cov + c2) / (v0 + v1 + c2)
            mean_term = mean_term + (alpha * s1).sum((1, 2, 3))
            cov_term = cov_term + (beta * s2).sum((1, 2, 3))
        return 1 - (mean_term + cov_term)

    def extra_repr(self) -> str:
        return f"random_backbone={self.random_backbone}"
