"""Eval forward pass of the full-width CRDR generator on CPU.

Prints seconds (median of repeats) per image size and thread count, and the ratio of our time
to the official code's time measured on the same machine class (../shared/reference/official/
BASELINE.md: 256x256 batch 1 takes 1.13 s on one thread, 0.53 s on two).
Usage: python bench/forward.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from crdr import load_model

OFFICIAL_SECONDS = {(256, 256, 1): 1.13, (256, 256, 2): 0.53}


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(None, config="crdr")
    print(f"{'size':>9} {'threads':>7} {'seconds':>8} {'official':>8} {'speed-up':>8}")
    for height, width in ((256, 256), (512, 768)):
        x = torch.rand(1, 3, height, width)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                seconds = median_seconds(lambda x=x: model(x, q=2.0, beta=2.56), args.repeats)
            official = OFFICIAL_SECONDS.get((height, width, threads))
            ref = f"{official:8.2f} {official / seconds:7.2f}x" if official else f"{'-':>8} {'-':>8}"
            print(f"{height:>4}x{width:<4} {threads:>7} {seconds:8.3f} {ref}")


if __name__ == "__main__":
    main()
