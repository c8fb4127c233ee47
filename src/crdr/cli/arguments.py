"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse


def float_list(text: str) -> list[float]:
    """``"0,2.56,5.12"`` -> [0.0, 2.56, 5.12]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def names_list(text: str) -> list[str]:
    """``"PSNR, LPIPS"`` -> ["PSNR", "LPIPS"] (at least one name)."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated metric names, got {text!r}")
    return names
