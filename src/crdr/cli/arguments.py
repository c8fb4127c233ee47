"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse


def float_list(text: str) -> list[float]:
    """``"0,2.56,5.12"`` -> [0.0, 2.56, 5.12]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
