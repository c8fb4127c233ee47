"""FID/KID on HiFiC-style 256x256 patches (Mentzer et al. 2020), of the features of crdr.metrics.inception."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from crdr.metrics.inception import InceptionFeatures

ShiftPolicy = Literal["always", "min_side_384"]
SHIFT_POLICIES: tuple[str, ...] = ("always", "min_side_384")
ArrayLike = Tensor | np.ndarray


# --- patches ----------------------------------------------------------------------------------------------------


def _grid(image: Tensor, p: int) -> Tensor:
    """(3, H, W) -> (rows * cols, 3, p, p): the non-overlapping p x p grid from the top-left, row-major."""
    rows, cols = image.shape[-2] // p, image.shape[-1] // p
    if rows == 0 or cols == 0:
        return image.new_zeros((0, image.shape[0], p, p))
    grid = image[:, : rows * p, : cols * p].reshape(image.shape[0], rows, p, cols, p)
    return grid.permute(1, 3, 0, 2, 4).reshape(rows * cols, image.shape[0], p, p)


def hific_patches(image: Tensor, patch_size: int = 256, shifted: bool = True) -> Tensor:
    """HiFiC FID/256 patches of one image: (1, 3, H, W) or (3, H, W) -> (N, 3, p, p), same dtype and values.

    The non-overlapping ``p x p`` grid of the image (row-major, the right/bottom remainder dropped), then, when
    ``shifted``, the same grid of ``image[..., p//2:, p//2:]``. An image smaller than one patch gives N = 0;
    the shifted grid is empty unless both sides are at least ``p + p//2``.
    """
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3:
        raise ValueError(f"expected a (1, 3, H, W) or (3, H, W) image, got {tuple(image.shape)}")
    if patch_size < 2:
        raise ValueError(f"patch_size must be at least 2, got {patch_size}")
    patches = [_grid(image, patch_size)]
    if shifted:
        half = patch_size // 2
        patches.append(_grid(image[:, half:, half:], patch_size))
    return torch.cat(patches)


def uses_shifted_patches(height: int, width: int, patch_size: int = 256, shift_policy: ShiftPolicy = "always") -> bool:
    """Whether ``shift_policy`` adds the shifted patch set for an image of this size.

    ``"always"``: official CRDR / HiFiC evaluation. ``"min_side_384"``: MS-ILLM / NeuralCompression, only when both
    sides are at least ``1.5 * patch_size`` (384 for 256). For even patch sizes both give the same patches, since
    the shifted grid is empty below ``1.5 * patch_size`` anyway.
    """
    if shift_policy == "always":
        return True
    if shift_policy == "min_side_384":
        return min(height, width) >= 1.5 * patch_size
    raise ValueError(f"shift_policy must be one of {SHIFT_POLICIES}, got {shift_policy!r}")


# --- FID / KID math ---------------------------------------------------------------------------------------------


def _as_float64(features: ArrayLike, name: str) -> np.ndarray:
    array = features.detach().cpu().double().numpy() if isinstance(features, Tensor) else np.asarray(features)
    array = array.astype(np.float64, copy=False)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"{name}: expected (N, D) features with N >= 2, got shape {array.shape}")
    return array


def fid_from_features(
    real: ArrayLike, fake: ArrayLike, eps: float = 1e-6, method: Literal["auto", "sqrtm", "svd"] = "auto"
) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D) (N, M >= 2).

    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))``. ``method="sqrtm"``: ``scipy.linalg.sqrtm`` of the
    D x D product (as pytorch-fid); if it gives non-finite values or a non-negligible imaginary part, ``eps * I``
    is added to both covariances; tiny imaginary parts are discarded. ``method="svd"``: the exact low-rank
    identity ``tr(sqrtm(S1 S2)) = ||A B^T||_* / sqrt((N-1)(M-1))`` with A, B the centred features (cheap and exact
    when N or M <= D, where the covariances are singular and sqrtm is slow and inaccurate). ``"auto"`` picks
    ``"svd"`` when ``min(N, M) <= D``, else ``"sqrtm"``.
    """
    a, b = _as_float64(real, "real"), _as_float64(fake, "fake")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if method not in ("auto", "sqrtm", "svd"):
        raise ValueError(f"method must be 'auto', 'sqrtm' or 'svd', got {method!r}")
    (n, d), m = a.shape, b.shape[0]
    mu1, mu2 = a.mean(0), b.mean(0)
    a_c, b_c = a - mu1, b - mu2
    trace_s1, trace_s2 = np.square(a_c).sum() / (n - 1), np.square(b_c).sum() / (m - 1)
    if method == "svd" or (method == "auto" and min(n, m) <= d):
        trace_covmean = np.linalg.svd(a_c @ b_c.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    else:
        s1, s2 = a_c.T @ a_c / (n - 1), b_c.T @ b_c / (m - 1)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all() or not _negligible_imag(covmean):
            offset = np.eye(d) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
        if not _negligible_imag(covmean):
            raise ValueError(
                f"sqrtm of the covariance product has a large imaginary part ({np.abs(covmean.imag).max():g})"
            )
        trace_covmean = np.trace(np.real(covmean))
    diff = mu1 - mu2
    return float(diff @ diff + trace_s1 + trace_s2 - 2 * trace_covmean)


def _negligible_imag(matrix: np.ndarray, atol: float = 1e-3) -> bool:
    return not np.iscomplexobj(matrix) or np.allclose(np.diagonal(matrix).imag, 0, atol=atol)


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 with the kernel ``(gamma <x, y> + coef0) ** degree``; x, y: (m, D)."""
    m = x.shape[0]
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid_from_features(
    real: ArrayLike,
    fake: ArrayLike,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and std (ddof 0) over ``num_subsets`` random subsets of the unbiased polynomial-kernel MMD^2.

    real, fake: (N, D), (M, D) features; each subset draws ``min(subset_size, N, M)`` rows of each set without
    replacement (numpy generator seeded with ``seed``); ``gamma`` defaults to ``1 / D``.
    """
    a, b = _as_float64(real, "real"), _as_float64(fake, "fake")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be positive, got {num_subsets}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples, got subset_size={subset_size}")
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    rng = np.random.default_rng(seed)
    mmds = [
        _polynomial_mmd2(
            a[rng.choice(a.shape[0], m, replace=False)],
            b[rng.choice(b.shape[0], m, replace=False)],
            degree,
            gamma,
            coef0,
        )
        for _ in range(num_subsets)
    ]
    return float(np.mean(mmds)), float(np.std(mmds))


def fid_kid(
    real: ArrayLike, fake: ArrayLike, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0
) -> dict[str, float | int]:
    """``{fid, kid, kid_std, num_patches}`` of paired patch features (N, D) (N >= 2): what :meth:`FidKid.compute`
    reports, also for features accumulated elsewhere (the shards of an evaluation, merged)."""
    kid, kid_std = kid_from_features(real, fake, kid_subsets, kid_subset_size, seed=seed)
    return {"fid": fid_from_features(real, fake), "kid": kid, "kid_std": kid_std, "num_patches": len(real)}


# --- accumulator ------------------------------------------------------------------------------------------------


class FidKid:
    """Accumulates Inception features of HiFiC patches of real/fake image pairs; ``compute()`` gives FID and KID.

    ``update(real, fake)`` takes (B, 3, H, W) images on [0, 1] (usually B = 1: an original and its
    reconstruction), cuts each into :func:`hific_patches` (shifted set per ``shift_policy``) and stores the
    features as float64 on the CPU. Images smaller than ``patch_size`` contribute no patches; they are counted in
    ``num_images_without_patches``.
    """

    def __init__(
        self,
        features: InceptionFeatures,
        patch_size: int = 256,
        shift_policy: ShiftPolicy = "always",
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        batch_size: int = 32,
        seed: int = 0,
        real_cache: dict[Hashable, Tensor] | None = None,
    ) -> None:
        uses_shifted_patches(patch_size, patch_size, patch_size, shift_policy)  # validates the policy
        #: Features of real images by key, shared between accumulators (a grid scores the same originals
        #: at every point): ``update(..., real_key=name)`` computes them once.
        self.real_cache = {} if real_cache is None else real_cache
        self.features = features
        self.patch_size = int(patch_size)
        self.shift_policy = shift_policy
        self.kid_subsets = int(kid_subsets)
        self.kid_subset_size = int(kid_subset_size)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.reset()

    def reset(self) -> None:
        """Forgets every accumulated feature."""
        self._real: list[Tensor] = []
        self._fake: list[Tensor] = []
        self.num_images = 0
        self.num_images_without_patches = 0

    @property
    def num_patches(self) -> int:
        """Number of patch pairs accumulated so far."""
        return sum(f.shape[0] for f in self._real)

    def _features(self, patches: Tensor) -> Tensor:
        chunks = [self.features(chunk).double().cpu() for chunk in patches.split(self.batch_size)]
        return torch.cat(chunks)

    @torch.no_grad()
    def update(self, real: Tensor, fake: Tensor, real_key: Hashable | None = None) -> int:
        """Adds the patches of real/fake images (B, 3, H, W) on [0, 1]; returns the number of patch pairs added.

        With ``real_key`` (B = 1 only), the real image's features are taken from / stored in ``real_cache``.
        """
        if real_key is not None and real.shape[0] != 1:
            raise ValueError("real_key identifies one image: give a batch of 1")
        if real.shape != fake.shape:
            raise ValueError(f"shape mismatch: real {tuple(real.shape)} vs fake {tuple(fake.shape)}")
        if real.dim() != 4 or real.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(real.shape)}")
        shifted = uses_shifted_patches(real.shape[-2], real.shape[-1], self.patch_size, self.shift_policy)
        added = 0
        for r, f in zip(real, fake, strict=True):
            self.num_images += 1
            real_patches = hific_patches(r, self.patch_size, shifted)
            if real_patches.shape[0] == 0:
                self.num_images_without_patches += 1
                continue
            if real_key is None:
                self._real.append(self._features(real_patches))
            else:
                if real_key not in self.real_cache:
                    self.real_cache[real_key] = self._features(real_patches)
                self._real.append(self.real_cache[real_key])
            self._fake.append(self._features(hific_patches(f, self.patch_size, shifted)))
            added += real_patches.shape[0]
        return added

    def accumulated(self) -> tuple[Tensor, Tensor]:
        """The accumulated (real, fake) patch features, (N, D) float64 each, rows in the order of the updates."""
        empty = torch.zeros((0, InceptionFeatures.dim), dtype=torch.float64)
        return (torch.cat(self._real), torch.cat(self._fake)) if self._real else (empty, empty.clone())

    def compute(self) -> dict[str, float | int | bool]:
        """``{fid, kid, kid_std, num_patches, num_images, num_images_without_patches, random_backbone}``."""
        n = self.num_patches
        if n < 2:
            raise ValueError(
                f"FID/KID need at least 2 patches, got {n} from {self.num_images} image(s) "
                f"({self.num_images_without_patches} smaller than {self.patch_size}x{self.patch_size})"
            )
        return {
            **fid_kid(*self.accumulated(), self.kid_subsets, self.kid_subset_size, self.seed),
            "num_images": self.num_images,
            "num_images_without_patches": self.num_images_without_patches,
            "random_backbone": bool(getattr(self.features, "random_backbone", False)),
        }
