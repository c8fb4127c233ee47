"""Per-image distortion metrics: PSNR of the 8-bit images and MS-SSIM."""

from __future__ import annotations

import torch
from pytorch_msssim import ms_ssim as _pytorch_ms_ssim
from torch import Tensor

from crdr.io.images import quantize_8bit

#: MS-SSIM with the default 11x11 window and 5 scales needs both sides > (11 - 1) * 2**4 = 160.
MS_SSIM_MIN_SIDE = 161


def _check_pair(x: Tensor, x_hat: Tensor) -> None:
    if x.shape != x_hat.shape:
        raise ValueError(f"shape mismatch: x {tuple(x.shape)} vs x_hat {tuple(x_hat.shape)}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")


@torch.no_grad()
def psnr_8bit(x: Tensor, x_hat: Tensor) -> Tensor:
    """PSNR in dB of the 8-bit roundings: x, x_hat (B, 3, H, W) on [0, 1] -> (B,) float32.

    ``10 * log10(255**2 / max(mse, 1e-10))`` with the MSE on the 0..255 integer scale, so identical images give a
    finite 148.13 dB instead of infinity.
    """
    _check_pair(x, x_hat)
    diff = quantize_8bit(x).double() - quantize_8bit(x_hat).double()
    mse = diff.square().flatten(1).mean(1)
    return (10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).float()


@torch.no_grad()
def ms_ssim(x: Tensor, x_hat: Tensor) -> Tensor:
    """MS-SSIM per image (pytorch_msssim, as CompressAI): x, x_hat (B, 3, H, W) on [0, 1] -> (B,), data range 1.

    ``x_hat`` is clamped to [0, 1] (no 8-bit rounding). Images with a side below :data:`MS_SSIM_MIN_SIDE`
    (161 for the default 11x11 window and 5 scales) get NaN instead of an error.
    """
    _check_pair(x, x_hat)
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return torch.full((x.shape[0],), float("nan"), dtype=torch.float32, device=x.device)
    return _pytorch_ms_ssim(x.float().clamp(0, 1), x_hat.float().clamp(0, 1), data_range=1.0, size_average=False)
