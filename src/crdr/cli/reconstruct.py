"""``crdr reconstruct``: run the generator over images for a grid of (q, beta); save PNGs and a CSV.
Its arguments: ``crdr.cli.parser``."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from crdr.io.files import IMAGE_SUFFIXES, expand_paths, write_csv_atomic
from crdr.io.images import read_image, write_image
from crdr.loading.model import load_model


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is None and args.config is None:
        raise ValueError("give --checkpoint, or --config to run an untrained model")
    model = load_model(args.checkpoint, config=args.config, device=args.device)
    rate = model.num_rate_levels is not None
    realism = model.max_beta is not None
    qs = args.quality if rate else [None]
    betas = args.beta if realism else [None]
    out_dir = Path(args.output)
    rows = []
    for path in expand_paths(args.inputs, IMAGE_SUFFIXES):
        x = read_image(path).to(args.device)
        for q in qs:
            for beta in betas:
                start = time.perf_counter()
                with torch.no_grad():
                    out = model(x, q=q, beta=beta)
                seconds = time.perf_counter() - start
                name = path.stem + (f"_q{q:g}" if rate else "") + (f"_beta{beta:g}" if realism else "")
                write_image(out.x_hat, out_dir / f"{name}.png")
                mse = torch.mean((out.x_hat - x) ** 2).item()
                rows.append(
                    {
                        "image": path.name,
                        "height": x.shape[2],
                        "width": x.shape[3],
                        "q": "" if q is None else q,
                        "beta": "" if beta is None else beta,
                        "bpp_estimate": f"{out.bpp.item():.6f}",
                        "psnr": f"{10 * math.log10(1 / max(mse, 1e-12)):.4f}",
                        "seconds": f"{seconds:.3f}",
                    }
                )
                print(f"{name}: {rows[-1]['bpp_estimate']} bpp (estimate), PSNR {rows[-1]['psnr']} dB")
    header = ["image", "height", "width", "q", "beta", "bpp_estimate", "psnr", "seconds"]
    write_csv_atomic(out_dir / "results.csv", header, [[row[k] for k in header] for row in rows])
    print(f"wrote {len(rows)} reconstructions and results.csv to {out_dir}")
    return 0
