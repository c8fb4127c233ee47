"""``crdr shard``: pack training images into uncompressed tar shards (``data=tar_shards``).
Its arguments: ``crdr.cli.parser``."""

from __future__ import annotations

import argparse

from crdr.data.shards import write_tar_shards
from crdr.io.files import IMAGE_SUFFIXES, expand_paths


def run(args: argparse.Namespace) -> int:
    images = expand_paths(args.inputs, IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no {'/'.join(IMAGE_SUFFIXES)} files in {args.inputs}")
    shards = write_tar_shards(images, args.output, args.images_per_shard)
    print(f"packed {len(images)} image(s) into {len(shards)} shard(s) in {args.output}")
    return 0
