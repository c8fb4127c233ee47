"""Codec speed of the full-width CRDR model at 768x512, stage by stage, and the whole CLI call.

Prints seconds (median over repeats) for compress and decompress at q=0 and q=4, the share of
each stage (analysis, hyper, context_model, entropy_coding, synthesis), megapixels per second,
and the ratio to the official code's figures on the same machine class
(../shared/reference/official/BASELINE.md, one thread: compress 3.6 s, decompress 5.3 s, whole
CLI about 14 s). Usage: python bench/codec.py [--checkpoint crdr.pth.tar] [--threads 1] [--device cpu]
Without a checkpoint, a randomly initialised full-width model is written to a temporary
safetensors file (the speed does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from crdr import load_model, save_generator
from crdr.codec import Codec
from crdr.io import read_image

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "tests" / "data" / "kodim23.png"
OFFICIAL = {"compress": 3.6, "decompress": 5.3, "cli": 14.0}


def timed(fn, repeats: int) -> tuple[float, dict[str, float]]:
    """Median seconds of fn() and the median per-stage seconds of the codec during those calls."""
    fn()
    seconds, stages = [], []
    for _ in range(repeats):
        CODEC.stage_seconds.clear()
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
        stages.append(dict(CODEC.stage_seconds))
    keys = sorted({k for s in stages for k in s})
    return statistics.median(seconds), {k: statistics.median(s.get(k, 0.0) for s in stages) for k in keys}


def main() -> None:
    global CODEC
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = str(save_generator(load_model(None, config="crdr"), Path(tmp) / "crdr.safetensors"))
        CODEC = Codec(load_model(checkpoint), device=args.device)
        image = read_image(IMAGE)
        megapixels = image.shape[-1] * image.shape[-2] / 1e6
        print(f"device {args.device}, {args.threads} thread(s), {IMAGE.name} {image.shape[-1]}x{image.shape[-2]}")
        for q in (0.0, 4.0):
            CODEC.synthesis_dtype = None
            data = CODEC.compress(image, q)
            reference = CODEC.decompress(data, 2.56)
            for label, dtype, fn in (
                ("compress", None, lambda q=q: CODEC.compress(image, q)),
                ("decompress", None, lambda d=data: CODEC.decompress(d, 2.56)),
                ("decompress", torch.bfloat16, lambda d=data: CODEC.decompress(d, 2.56)),
            ):
                CODEC.synthesis_dtype = dtype
                seconds, stages = timed(fn, args.repeats)
                detail = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
                name = label if dtype is None else f"{label} ({str(dtype).removeprefix('torch.')} synthesis)"
                error = "" if dtype is None else f"; max |pixel - float32| {(fn() - reference).abs().max():.4f}"
                print(
                    f"q={q:g} {name:>10}: {seconds:6.2f} s  {megapixels / seconds:5.2f} MP/s  "
                    f"official/ours {OFFICIAL[label] / seconds:4.2f}x  ({detail}); {len(data)} bytes{error}"
                )
        stream = Path(tmp) / "kodim23.crdr"
        cli = [sys.executable, "-m", "crdr.cli.main"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        start = time.perf_counter()
        subprocess.run(
            [*cli, "compress", str(IMAGE), "--checkpoint", checkpoint, "-q", "2", "-o", tmp],
            check=True,
            capture_output=True,
            env=env,
        )
        subprocess.run(
            [*cli, "decompress", str(stream), "--checkpoint", checkpoint, "--beta", "2.56", "-o", tmp],
            check=True,
            capture_output=True,
            env=env,
        )
        cli_seconds = time.perf_counter() - start
        ratio = OFFICIAL["cli"] / cli_seconds
        print(f"whole CLI (load + compress, load + decompress): {cli_seconds:.2f} s  official/ours {ratio:4.2f}x")


if __name__ == "__main__":
    main()
