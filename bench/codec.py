"""Codec speed of the full-width CRDR model, stage by stage: float32 vs the bfloat16 fast paths, and
portable vs device entropy parameters.

Prints seconds (median over repeats) for compress and decompress at q=0 and q=4, the share of
each stage (analysis, hyper, context_model, entropy_coding, synthesis), megapixels per second,
the ratio to the float32 codec measured in the same process and, at 768x512, to the official
code's figures (../shared/reference/official/BASELINE.md; CPU, one thread: compress 3.6 s,
decompress 5.3 s, whole CLI about 14 s; one H100, context model on the CPU: compress 0.62-0.69 s,
decompress 0.78-0.79 s, of which the ratio takes the faster end). The ``entropy`` part times q=2
with the entropy parameters on the CPU (portable, the default) and on ``--device``
(``Codec(entropy_parameters="device")``), as the ratio portable/device (on a CPU device both run the
same kernels: the ratio is the cost of the deterministic setting). Then the whole CLI call (two
processes, model loading included, on the CPU) in float32 and with ``--precision bfloat16``.

Usage: python bench/codec.py [--checkpoint crdr.pth.tar] [--threads 1] [--device cpu]
[--sizes 768x512,2048x1365] [--parts precision,entropy,cli]. Without a checkpoint, a randomly
initialised full-width model is written to a temporary safetensors file (the speed does not depend
on the weights' values).
Sizes other than kodim23's own 768x512 are kodim23 resized (bicubic).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from crdr import load_model, save_generator
from crdr.codec import Codec
from crdr.io.images import read_image
from crdr.package_data import DEMO_IMAGE_DIR

IMAGE = DEMO_IMAGE_DIR / "kodim23.png"
OFFICIAL_SIZE = (512, 768)
OFFICIAL = {"cpu": {"compress": 3.6, "decompress": 5.3, "cli": 14.0}, "cuda": {"compress": 0.62, "decompress": 0.78}}


def timed(codec: Codec, fn: Callable[[], object], repeats: int) -> tuple[float, dict[str, float]]:
    """Median seconds of fn() and the median per-stage seconds of the codec during those calls."""
    fn()
    seconds, stages = [], []
    for _ in range(repeats):
        codec.stage_seconds.clear()
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
        stages.append(dict(codec.stage_seconds))
    keys = sorted({k for s in stages for k in s})
    return statistics.median(seconds), {k: statistics.median(s.get(k, 0.0) for s in stages) for k in keys}


def test_image(height: int, width: int) -> torch.Tensor:
    image = read_image(IMAGE)
    if (height, width) == tuple(image.shape[-2:]):
        return image
    return F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


def bench_size(plain: Codec, fast: Codec, image: torch.Tensor, repeats: int) -> None:
    """float32 codec vs the fast one (bfloat16 encoder + bfloat16 synthesis) on one image."""
    size = tuple(image.shape[-2:])
    megapixels = size[0] * size[1] / 1e6
    print(f"\n{size[1]}x{size[0]} ({megapixels:.2f} MP)")
    for q in (0.0, 4.0):
        streams = {"float32": plain.compress(image, q), "bfloat16": fast.compress(image, q)}
        reference = plain.decompress(streams["float32"], 2.56)
        baseline: dict[str, float] = {}
        for label, codec in (("float32", plain), ("bfloat16", fast)):
            data = streams[label]
            for step, fn in (
                ("compress", lambda c=codec, q=q: c.compress(image, q)),
                ("decompress", lambda c=codec, d=data: c.decompress(d, 2.56)),
            ):
                seconds, stages = timed(codec, fn, repeats)
                baseline.setdefault(step, seconds)
                detail = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
                ratios = f"vs float32 {baseline[step] / seconds:4.2f}x"
                official = OFFICIAL[plain.device.type].get(step)
                if size == OFFICIAL_SIZE and official:
                    ratios += f", official/ours {official / seconds:4.2f}x"
                print(
                    f"q={q:g} {label:>8} {step:>10}: {seconds:6.2f} s {megapixels / seconds:5.2f} MP/s "
                    f"{ratios} ({detail})"
                )
        pixel_error = (fast.decompress(streams["bfloat16"], 2.56) - reference).abs()
        rate_change = len(streams["bfloat16"]) / len(streams["float32"]) - 1
        print(
            f"q={q:g} bytes float32 {len(streams['float32'])}, bfloat16 {len(streams['bfloat16'])} "
            f"({rate_change:+.2%}); |pixel bfloat16 - float32| max {pixel_error.max():.4f}, "
            f"mean {pixel_error.mean():.4f}"
        )


def bench_entropy(portable: Codec, device: Codec, image: torch.Tensor, repeats: int) -> None:
    """Portable vs device entropy parameters (float32 both) at q=2: median seconds of the whole call and
    of the hyper and context_model stages (which the mode moves), ratio portable/device. The two codecs run
    alternately, each first in turn, so a machine whose speed drifts slows both alike."""
    size = tuple(image.shape[-2:])
    print(f"\n{size[1]}x{size[0]}, entropy parameters portable (CPU) vs device ({device.device})")
    codecs = {"portable": portable, "device": device}
    streams = {label: codec.compress(image, 2.0) for label, codec in codecs.items()}
    for step in ("compress", "decompress"):
        seconds: dict[str, list[float]] = {label: [] for label in codecs}
        entropy: dict[str, list[float]] = {label: [] for label in codecs}
        for repeat in range(repeats + 1):  # the first round warms up
            for label, codec in sorted(codecs.items(), reverse=repeat % 2 == 1):  # each goes first in turn
                codec.stage_seconds.clear()
                start = time.perf_counter()
                if step == "compress":
                    codec.compress(image, 2.0)
                else:
                    codec.decompress(streams[label], 2.56)
                if repeat:
                    seconds[label].append(time.perf_counter() - start)
                    entropy[label].append(codec.stage_seconds["hyper"] + codec.stage_seconds["context_model"])
        total = {label: statistics.median(v) for label, v in seconds.items()}
        moved = {label: statistics.median(v) for label, v in entropy.items()}
        for label in codecs:
            print(
                f"q=2 {label:>8} {step:>10}: {total[label]:7.3f} s, of which entropy parameters {moved[label]:6.3f} s"
            )
        print(
            f"q=2 {step} portable/device: whole {total['portable'] / total['device']:5.2f}x, "
            f"entropy parameters {moved['portable'] / moved['device']:5.2f}x"
        )
    error = (device.decompress(streams["device"], 2.56) - portable.decompress(streams["portable"], 2.56)).abs()
    print(
        f"q=2 bytes portable {len(streams['portable'])}, device {len(streams['device'])}; "
        f"|pixel device - portable| max {error.max():.2e}"
    )


def bench_cli(checkpoint: str, threads: int, tmp: str) -> None:
    """Two fresh processes (load + compress, load + decompress), float32 and bfloat16."""
    cli = [sys.executable, "-m", "crdr.cli.main"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    stream = Path(tmp) / "kodim23.crdr"
    for precision in ("float32", "bfloat16"):
        start = time.perf_counter()
        for argv in (
            ["compress", str(IMAGE), "-q", "2"],
            ["decompress", str(stream), "--beta", "2.56"],
        ):
            args = [*cli, *argv, "--checkpoint", checkpoint, "--precision", precision, "-o", tmp]
            subprocess.run(args, check=True, capture_output=True, env=env)
        seconds = time.perf_counter() - start
        official = OFFICIAL["cpu"]["cli"]  # the CLI runs on the CPU
        print(f"whole CLI, --precision {precision}: {seconds:.2f} s  official/ours {official / seconds:4.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="768x512", help="comma-separated WIDTHxHEIGHT, e.g. 768x512,2048x1365")
    parser.add_argument("--parts", default="precision,entropy,cli", help="comma-separated: precision, entropy, cli")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = str(save_generator(load_model(None, config="crdr"), Path(tmp) / "crdr.safetensors"))
        model = load_model(checkpoint)
        plain = Codec(model, device=args.device)
        fast = Codec(model, device=args.device, synthesis_dtype=torch.bfloat16, encoder_dtype=torch.bfloat16)
        on_device = Codec(model, device=args.device, entropy_parameters="device")
        parts = args.parts.split(",")
        print(f"device {args.device}, {args.threads} thread(s), {IMAGE.name}")
        for size in args.sizes.split(","):
            width, height = map(int, size.lower().split("x"))
            if "precision" in parts:
                bench_size(plain, fast, test_image(height, width), args.repeats)
            if "entropy" in parts:
                bench_entropy(plain, on_device, test_image(height, width), args.repeats)
        if "cli" in parts:
            bench_cli(checkpoint, args.threads, tmp)


if __name__ == "__main__":
    main()
