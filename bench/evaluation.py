"""Encoder-side cost of one ``crdr evaluate`` grid point (image x q), full-width model, one image.

Evaluation needs the real bitstream, the decoded latents and the likelihood estimate of the rate.
Baseline (measured in this process): ``Codec.compress`` + ``Codec.decode_latents`` + a second
``model.estimate_bpp`` pass (analysis, hyperprior and context model again). Ours:
``Codec.compress`` + ``Codec.decode_latents_and_bits``, which prices the decoded latents under the
same entropy models while decoding. Prints seconds (median over repeats), the ratio, and the two
estimates (they agree to float precision). The synthesis per beta comes on top of both.

Usage: python bench/evaluation.py [--threads 1] [--repeats 3] [--q 2.0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from crdr import load_model
from crdr.codec import Codec
from crdr.io.images import read_image
from crdr.package_data import DEMO_IMAGE_DIR

IMAGE = DEMO_IMAGE_DIR / "kodim23.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--q", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(None, config="crdr")  # full width; speed does not depend on the weights' values
    codec = Codec(model)
    x = read_image(IMAGE)
    pixels = x.shape[-2] * x.shape[-1]

    def baseline() -> float:
        codec.decode_latents(codec.parse(codec.compress(x, args.q)))
        with torch.no_grad():
            return float(model.estimate_bpp(x, args.q)[0])

    def ours() -> float:
        _, information = codec.decode_latents_and_bits(codec.parse(codec.compress(x, args.q)))
        return information / pixels

    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    estimates = {}
    baseline(), ours()  # warm-up
    for _ in range(args.repeats):
        for name, run in (("baseline", baseline), ("ours", ours)):
            start = time.perf_counter()
            estimates[name] = run()
            times[name].append(time.perf_counter() - start)
    base, new = statistics.median(times["baseline"]), statistics.median(times["ours"])
    print(f"{IMAGE.name} {x.shape[-1]}x{x.shape[-2]}, q={args.q}, {args.threads} thread(s), {args.repeats} repeats")
    print(f"compress + latents + estimate: baseline {base:.2f} s, ours {new:.2f} s -> {base / new:.2f}x")
    print(f"bpp estimate: baseline {estimates['baseline']:.6f}, ours {estimates['ours']:.6f}")


if __name__ == "__main__":
    main()
