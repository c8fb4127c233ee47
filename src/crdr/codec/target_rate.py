"""Searching the continuous quality level q that hits a target bit rate."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from crdr.codec.codec import Codec
from crdr.codec.rate import bits_per_pixel


@dataclass(frozen=True)
class RateSearchResult:
    data: bytes
    q: float
    bpp: float


def compress_to_bpp(
    codec: Codec, image: Tensor, target_bpp: float, rel_tol: float = 0.005, max_steps: int = 14
) -> RateSearchResult:
    """Bisection over q in [0, L-1] on the real file size; returns the largest-q stream not above
    the target (or the q=0 stream if even that is larger). Stops once within ``rel_tol``.
    """
    levels = codec.model.num_rate_levels
    if levels is None:
        raise ValueError("target bit rates need a variable-rate model (this one has a single rate)")
    if not target_bpp > 0:
        raise ValueError(f"target bpp must be positive, got {target_bpp}")
    height, width = image.shape[-2:]

    def attempt(q: float) -> RateSearchResult:
        data = codec.compress(image, q)
        return RateSearchResult(data, q, bits_per_pixel(len(data), height, width))

    low, high = 0.0, float(levels - 1)
    best = attempt(low)
    if best.bpp >= target_bpp:
        return best
    top = attempt(high)
    if top.bpp <= target_bpp:
        return top
    for _ in range(max_steps):
        if abs(best.bpp - target_bpp) <= rel_tol * target_bpp:
            break
        mid = attempt((low + high) / 2)
        if mid.bpp <= target_bpp:
            low, best = mid.q, mid
        else:
            high = mid.q
    return best
