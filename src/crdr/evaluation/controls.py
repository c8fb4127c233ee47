"""Does a model obey its controls? Real bitstreams over q x beta, JPEG beside them, and the checks a
working CRDR passes: q sets the rate (strictly increasing file size and PSNR), beta trades distortion
for realism (lower PSNR, high-frequency energy closer to the original's), and it beats JPEG at equal
size. What ``docs/models/crdr-tiny.md`` reports and ``tests/test_crdr_tiny.py`` guards.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from crdr.codec import Codec, bits_per_pixel
from crdr.io.images import from_uint8, quantize_8bit, read_image, to_uint8
from crdr.metrics.image import ms_ssim, psnr_8bit

#: ITU-R BT.601 luma weights of R, G, B.
_LUMA = (0.299, 0.587, 0.114)
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_energy(x: Tensor) -> float:
    """Mean |Laplacian| of the luma of the 8-bit rounding of x (1, 3, H, W) on [0, 1], on the 0..255
    scale: the high-frequency energy (texture, grain) that blurry reconstructions lose."""
    pixels = quantize_8bit(x.float())
    luma = sum(w * pixels[:, c : c + 1] for c, w in enumerate(_LUMA))
    return F.conv2d(luma, _LAPLACIAN.view(1, 1, 3, 3)).abs().mean().item()


@dataclass(frozen=True)
class Reconstruction:
    """What one (image, rate) point gives: its size, and the reconstruction's quality."""

    image: str
    codec: str
    q: float | None
    beta: float | None
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    laplacian: float
    original_laplacian: float


def _row(name: str, codec: str, q, beta, size: int, x: Tensor, x_hat: Tensor) -> Reconstruction:
    return Reconstruction(
        name, codec, q, beta, size, bits_per_pixel(size, *x.shape[-2:]),
        psnr_8bit(x, x_hat).item(), ms_ssim(x, x_hat).item(), laplacian_energy(x_hat), laplacian_energy(x),
    )  # fmt: skip


def code_grid(codec: Codec, images: Sequence[Path], qs: Iterable[float], betas: Sequence[float]) -> pd.DataFrame:
    """Each image compressed at each q and decoded at each beta through real bitstreams; one row each."""
    rows = []
    qs = list(qs)
    for path in images:
        x = read_image(path)
        for q in qs:
            stream = codec.compress(x, q=q)
            for beta, x_hat in zip(betas, codec.decompress_many(stream, betas), strict=True):
                rows.append(_row(path.name, "crdr", q, beta, len(stream), x, x_hat.clamp(0, 1)))
    return pd.DataFrame(rows)


def _pil_encode(image: Image.Image, format: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, quality=quality)
    return buffer.getvalue()


def pillow_grid(images: Sequence[Path], format: str, qualities: Iterable[int]) -> pd.DataFrame:
    """Each image through Pillow's ``format`` (``"JPEG"``, ``"WEBP"``) at each quality; one row each."""
    rows = []
    qualities = list(qualities)
    for path in images:
        x = read_image(path)
        image = Image.fromarray(to_uint8(x))
        for quality in qualities:
            data = _pil_encode(image, format, quality)
            x_hat = from_uint8(np.array(Image.open(io.BytesIO(data)).convert("RGB")))
            rows.append(_row(path.name, format, float(quality), None, len(data), x, x_hat))
    return pd.DataFrame(rows)


def best_no_larger(reference: pd.DataFrame, max_bytes: int, image: str) -> pd.Series | None:
    """The reference codec's best-PSNR row of ``image`` whose file is at most ``max_bytes``, or None."""
    rows = reference[(reference.image == image) & (reference.bytes <= max_bytes)]
    return None if rows.empty else rows.loc[rows.psnr.idxmax()]


def _at_beta_zero(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows.beta == 0].sort_values("q")


def rate_failures(crdr: pd.DataFrame, min_rate_span: float = 4.0, min_psnr_at_q4: float = 27.0) -> list[str]:
    """How q fails to set the rate, per image of ``crdr`` (:func:`code_grid` rows at beta 0 over increasing
    q): file size not strictly increasing, the largest q under ``min_rate_span`` x the smallest's size,
    PSNR not increasing over the integer q, PSNR at the largest q under ``min_psnr_at_q4`` dB."""
    failures = []
    for image, rows in crdr.groupby("image", sort=True):
        base = _at_beta_zero(rows)
        sizes = base.bytes.to_numpy()
        if not (np.diff(sizes) > 0).all():
            failures.append(f"{image}: size not strictly increasing in q: {dict(zip(base.q, sizes, strict=True))}")
        if sizes[-1] < min_rate_span * sizes[0]:
            failures.append(
                f"{image}: q={base.q.iloc[-1]} only {sizes[-1] / sizes[0]:.2f}x the size at q={base.q.iloc[0]}"
            )
        whole = base[base.q == base.q.round()]
        if not (np.diff(whole.psnr.to_numpy()) > 0).all():
            failures.append(
                f"{image}: PSNR not increasing over q: {dict(zip(whole.q, whole.psnr.round(2), strict=True))}"
            )
        if base.psnr.iloc[-1] < min_psnr_at_q4:
            failures.append(f"{image}: PSNR {base.psnr.iloc[-1]:.2f} dB at q={base.q.iloc[-1]} < {min_psnr_at_q4}")
    return failures


def realism_failures(crdr: pd.DataFrame, realism_q: float = 2.0, max_beta: float = 5.12) -> list[str]:
    """How beta fails to trade distortion for realism, per image of ``crdr`` (rows at ``realism_q`` with
    beta 0 and ``max_beta``): PSNR at ``max_beta`` not below beta 0's, or its mean |Laplacian| not closer
    to the original's."""
    failures = []
    for image, rows in crdr.groupby("image", sort=True):
        at_q = rows[rows.q == realism_q].set_index("beta")
        plain, real = at_q.loc[0.0], at_q.loc[max_beta]
        if not real.psnr < plain.psnr:
            failures.append(f"{image}: beta {max_beta} PSNR {real.psnr:.2f} not below beta 0's {plain.psnr:.2f}")
        target = plain.original_laplacian
        if not abs(real.laplacian - target) < abs(plain.laplacian - target):
            failures.append(
                f"{image}: |Laplacian| at beta {max_beta} ({real.laplacian:.2f}) not closer to the original's "
                f"({target:.2f}) than beta 0's ({plain.laplacian:.2f})"
            )
    return failures


def jpeg_failures(crdr: pd.DataFrame, jpeg: pd.DataFrame, qs: Sequence[float] = (0.0, 1.0, 2.0)) -> list[str]:
    """Where ``crdr`` at beta 0 and q in ``qs`` is not above the PSNR of the best JPEG (``jpeg``:
    :func:`pillow_grid` rows) whose file is no larger; none where JPEG cannot make a file that small."""
    failures = []
    for image, rows in crdr.groupby("image", sort=True):
        base = _at_beta_zero(rows)
        for q in qs:
            ours = base[base.q == q].iloc[0]
            theirs = best_no_larger(jpeg, int(ours.bytes), image)
            if theirs is not None and not ours.psnr > theirs.psnr:
                failures.append(
                    f"{image}: q={q} {ours.psnr:.2f} dB ({ours.bytes} B) not above JPEG quality "
                    f"{theirs.q:.0f}'s {theirs.psnr:.2f} dB ({theirs.bytes} B)"
                )
    return failures


def control_failures(crdr: pd.DataFrame, jpeg: pd.DataFrame) -> list[str]:
    """Every failure of :func:`rate_failures`, :func:`realism_failures` and :func:`jpeg_failures` at their
    defaults (the checks of docs/models/crdr-tiny.md); empty when the model obeys its controls."""
    return rate_failures(crdr) + realism_failures(crdr) + jpeg_failures(crdr, jpeg)
