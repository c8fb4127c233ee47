"""``crdr models``: the models shipped in the package, by the names ``--checkpoint`` accepts."""

from __future__ import annotations

import argparse

from crdr.package_data import OFFICIAL_WEIGHTS_HINT, SHIPPED_MODELS


def run(args: argparse.Namespace) -> int:
    for name, model in SHIPPED_MODELS.items():
        size = f"{model.path.stat().st_size / 1e6:.1f} MB" if model.path.is_file() else "file missing"
        print(f"{name}  ({size})  {model.summary}\n    {model.path}")
    print(f"\nuse: crdr compress IMAGE --checkpoint {next(iter(SHIPPED_MODELS))} -q 2 -o OUT")
    print(OFFICIAL_WEIGHTS_HINT)
    return 0
