"""Training data-loader throughput: images/s of ``ImageDataModule.train_dataloader()`` per setting.

Decodes, crops (256x256) and flips in the workers, as training does. Prints images/s and the ratio
to the first setting (``--workers`` 0: decoding in the training process) measured in the same
process. Usage: python bench/data_loader.py [--images DIR] [--workers 0,2,4] [--batches 40]
Without ``--images``, the bundled Kodak PNGs (768x512) are used.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from crdr.lit.data import ImageDataModule
from crdr.package_data import DEMO_IMAGE_DIR


def images_per_second(folder: str, workers: int, pin_memory: bool, batch_size: int, batches: int) -> float:
    datamodule = ImageDataModule(
        [folder],
        batch_size=batch_size,
        crop_size=256,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )
    loader = iter(datamodule.train_dataloader())
    next(loader)  # worker start-up is paid once per run, not per batch
    start = time.perf_counter()
    for batch in itertools.islice(loader, batches):
        assert batch.shape == (batch_size, 3, 256, 256)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(DEMO_IMAGE_DIR))
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--batch-size", type=int, default=3)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--pin-memory", action="store_true", help="pinned host memory (for GPU training)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.images}, batch {args.batch_size}, {args.batches} batches, pin_memory={args.pin_memory}")
    baseline = None
    for workers in map(int, args.workers.split(",")):
        rate = images_per_second(args.images, workers, args.pin_memory, args.batch_size, args.batches)
        baseline = baseline or rate
        print(f"num_workers={workers}: {rate:7.1f} images/s  {rate / baseline:4.2f}x")


if __name__ == "__main__":
    main()
