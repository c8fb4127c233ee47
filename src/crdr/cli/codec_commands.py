"""``crdr compress`` and ``crdr decompress``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from tqdm import tqdm

from crdr.api import load_model
from crdr.cli.arguments import float_list
from crdr.codec import Codec
from crdr.codec.target_rate import compress_to_bpp
from crdr.files import atomic_path, expand_paths, write_csv_atomic
from crdr.io import IMAGE_SUFFIXES, read_image, write_image

SUFFIX = ".crdr"
SYNTHESIS_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_parsers(commands: argparse._SubParsersAction) -> None:
    c = commands.add_parser("compress", help="compress images to .crdr files")
    c.add_argument("inputs", nargs="+", help="image files or folders (PNG/JPEG, searched recursively)")
    c.add_argument("--checkpoint", required=True, help="official .pth.tar, .safetensors or Lightning .ckpt")
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, help="quality level in [0, 4] (continuous)")
    rate.add_argument("--target-bpp", type=float, help="search q per image to reach this bit rate")
    c.add_argument("--device", default="cpu", help="cpu or cuda (entropy parameters always run on the CPU)")
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.set_defaults(run=run_compress)

    d = commands.add_parser("decompress", help="decode .crdr files to PNG at one or more realism levels")
    d.add_argument("inputs", nargs="+", help=".crdr files or folders")
    d.add_argument("--checkpoint", required=True, help="the checkpoint the files were made with")
    d.add_argument("--beta", type=float_list, default=None, help="realism weight(s) in [0, 5.12], e.g. 0,2.56,5.12")
    d.add_argument("--device", default="cpu")
    d.add_argument(
        "--precision",
        choices=sorted(SYNTHESIS_DTYPES),
        default="float32",
        help="synthesis precision; bfloat16 is about 3x faster on CPUs with AMX and on GPUs, "
        "its pixels differ from float32 by a few 1e-3 (the entropy decoding is unchanged)",
    )
    d.add_argument("-o", "--output", required=True, help="output folder")
    d.set_defaults(run=run_decompress)


def run_compress(args: argparse.Namespace) -> int:
    codec = Codec(load_model(args.checkpoint), device=args.device)
    if codec.model.num_rate_levels is not None and args.quality is None and args.target_bpp is None:
        raise ValueError("give -q/--quality or --target-bpp")
    out_dir = Path(args.output)
    rows = []
    for path in tqdm(expand_paths(args.inputs, IMAGE_SUFFIXES), desc="compress", unit="image", disable=None):
        image = read_image(path)
        start = time.perf_counter()
        if args.target_bpp is not None:
            result = compress_to_bpp(codec, image, args.target_bpp)
            data, q = result.data, result.q
        else:
            data, q = codec.compress(image, args.quality), args.quality
        seconds = time.perf_counter() - start
        with atomic_path(out_dir / f"{path.stem}{SUFFIX}") as tmp:
            tmp.write_bytes(data)
        h, w = image.shape[-2:]
        rows.append(
            [
                path.name,
                h,
                w,
                len(data),
                f"{len(data) * 8 / (h * w):.6f}",
                "" if q is None else f"{q:.6g}",
                f"{seconds:.3f}",
            ]
        )
    write_csv_atomic(out_dir / "summary.csv", ["file", "height", "width", "bytes", "bpp", "q", "seconds"], rows)
    print(f"compressed {len(rows)} image(s) to {out_dir}")
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    codec = Codec(load_model(args.checkpoint), device=args.device, synthesis_dtype=SYNTHESIS_DTYPES[args.precision])
    betas = args.beta if args.beta else [None if codec.model.max_beta is None else 0.0]
    files = expand_paths(args.inputs, (SUFFIX,))
    out_dir = Path(args.output)
    for path in tqdm(files, desc="decompress", unit="file", disable=None):
        images = codec.decompress_many(path.read_bytes(), betas)
        for beta, image in zip(betas, images, strict=True):
            name = path.stem if len(betas) == 1 else f"{path.stem}_beta{beta:g}"
            write_image(image, out_dir / f"{name}.png")
    print(f"decoded {len(files)} file(s) x {len(betas)} beta value(s) to {out_dir}")
    return 0
