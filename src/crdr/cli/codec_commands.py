"""``crdr compress`` and ``crdr decompress``. Their arguments: ``crdr.cli.parser``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from crdr.codec import Bitstream, BitstreamError, Codec, bits_per_pixel
from crdr.codec.container import MAX_STREAM_BYTES
from crdr.codec.target_rate import compress_to_bpp
from crdr.io.files import IMAGE_SUFFIXES, expand_paths, writable_dir, write_bytes_atomic, write_csv_atomic
from crdr.io.images import ImageReadError, image_size, read_image, write_image
from crdr.loading.model import load_model

SUFFIX = ".crdr"
SYNTHESIS_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _skip(command: str, reason: object) -> None:
    tqdm.write(f"crdr {command}: skipped {reason}", file=sys.stderr)


def _read_input(path: Path, max_pixels: int) -> torch.Tensor:
    width, height = image_size(path)
    if width * height > max_pixels:
        raise ImageReadError(
            f"{path}: {width}x{height} is more than --max-pixels={max_pixels} pixels "
            f"(about {1.4 + 0.7 * width * height / 1e6:.1f} GB of memory to compress); "
            "raise the limit if this machine has it"
        )
    return read_image(path)


def run_compress(args: argparse.Namespace) -> int:
    """Compresses every input; unreadable or oversized images are reported and skipped (exit status 1)."""
    out_dir = writable_dir(args.output)
    paths = expand_paths(args.inputs, IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no {'/'.join(IMAGE_SUFFIXES)} files in {' '.join(args.inputs)}")
    encoder_dtype = torch.bfloat16 if args.precision == "bfloat16" else None
    codec = Codec(
        load_model(args.checkpoint),
        device=args.device,
        encoder_dtype=encoder_dtype,
        entropy_parameters=args.entropy_parameters,
    )
    if codec.model.num_rate_levels is not None and args.quality is None and args.target_bpp is None:
        raise ValueError("give -q/--quality or --target-bpp")
    rows = []
    for path in tqdm(paths, desc="compress", unit="image", disable=None):
        try:
            image = _read_input(path, args.max_pixels)
        except ImageReadError as err:
            _skip("compress", err)
            continue
        start = time.perf_counter()
        if args.target_bpp is not None:
            result = compress_to_bpp(codec, image, args.target_bpp)
            data, q = result.data, result.q
        else:
            data, q = codec.compress(image, args.quality), args.quality
        seconds = time.perf_counter() - start
        write_bytes_atomic(out_dir / f"{path.stem}{SUFFIX}", data)
        h, w = image.shape[-2:]
        rows.append(
            [
                path.name,
                h,
                w,
                len(data),
                f"{bits_per_pixel(len(data), h, w):.6f}",
                "" if q is None else f"{q:.6g}",
                f"{seconds:.3f}",
            ]
        )
    write_csv_atomic(out_dir / "summary.csv", ["file", "height", "width", "bytes", "bpp", "q", "seconds"], rows)
    print(f"compressed {len(rows)} of {len(paths)} image(s) to {out_dir}")
    return 0 if len(rows) == len(paths) else 1


def _read_stream(path: Path) -> bytes:
    """The bytes of a ``.crdr`` file whose container is valid (checked without any model)."""
    size = path.stat().st_size
    if size > MAX_STREAM_BYTES:
        raise BitstreamError(f"{size} bytes is larger than any .crdr stream ({MAX_STREAM_BYTES} bytes at most)")
    data = path.read_bytes()
    Bitstream.from_bytes(data)
    return data


def run_decompress(args: argparse.Namespace) -> int:
    """Decodes every stream; invalid ones are reported and skipped (exit status 1). Containers are
    validated before the model is loaded; the model fingerprint is checked per stream after."""
    out_dir = writable_dir(args.output)
    files = expand_paths(args.inputs, (SUFFIX,))
    if not files:
        raise ValueError(f"no {SUFFIX} files in {' '.join(args.inputs)}")
    valid = []
    for path in files:
        try:
            _read_stream(path)
            valid.append(path)
        except BitstreamError as err:
            _skip("decompress", f"{path}: {err}")
    decoded = 0
    if valid:
        codec = Codec(
            load_model(args.checkpoint),
            device=args.device,
            synthesis_dtype=SYNTHESIS_DTYPES[args.precision],
            entropy_parameters=args.entropy_parameters,
        )
        betas = args.beta if args.beta else [None if codec.model.max_beta is None else 0.0]
        for path in tqdm(valid, desc="decompress", unit="file", disable=None):
            try:
                images = codec.decompress_many(_read_stream(path), betas)
            except BitstreamError as err:
                _skip("decompress", f"{path}: {err}")
                continue
            for beta, image in zip(betas, images, strict=True):
                name = path.stem if len(betas) == 1 else f"{path.stem}_beta{beta:g}"
                write_image(image, out_dir / f"{name}.png")
            decoded += 1
    print(f"decoded {decoded} of {len(files)} file(s) to {out_dir}")
    return 0 if decoded == len(files) else 1
