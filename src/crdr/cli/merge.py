"""``crdr merge``: the shards of a sharded ``crdr evaluate`` as one results folder (crdr.evaluation.merge).
Its arguments: ``crdr.cli.parser``."""

from __future__ import annotations

import argparse
from pathlib import Path

from crdr.evaluation.merge import merge_shards


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    summary = merge_shards([Path(f) for f in args.shards], output)
    print(f"merged {len(args.shards)} shard(s), {len(summary)} grid point(s): {output / 'results.csv'}")
    return 0
