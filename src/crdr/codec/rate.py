"""The rate of a bitstream: bits per pixel of its byte count."""

from __future__ import annotations


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """``8 * num_bytes / (height * width)``: the bpp of a ``num_bytes`` stream of a height x width image."""
    return 8 * num_bytes / (height * width)
