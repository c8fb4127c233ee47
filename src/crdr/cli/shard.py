"""``crdr shard``: pack training images into uncompressed tar shards (``data=tar_shards``)."""

from __future__ import annotations

import argparse

from crdr.files import IMAGE_SUFFIXES, expand_paths
from crdr.lit.shards import write_tar_shards


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("shard", help="pack image files or folders into tar shards for data=tar_shards")
    p.add_argument("inputs", nargs="+", help="image files or folders (PNG/JPEG, searched recursively)")
    p.add_argument("-o", "--output", required=True, help="folder for shard-000000.tar, shard-000001.tar, ...")
    p.add_argument("--images-per-shard", type=int, default=1000)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    images = expand_paths(args.inputs, IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no {'/'.join(IMAGE_SUFFIXES)} files in {args.inputs}")
    shards = write_tar_shards(images, args.output, args.images_per_shard)
    print(f"packed {len(images)} image(s) into {len(shards)} shard(s) in {args.output}")
    return 0
