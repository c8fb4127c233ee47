"""Run by tests as a separate process: encode and decode with a given thread count and conv backend.

Usage: python codec_in_another_process.py CHECKPOINT IMAGE.pt STREAM.crdr {float32,bfloat16} THREADS OUT_DIR

For oneDNN on and off it writes ``OUT_DIR/{onednn,native}.crdr`` (IMAGE encoded at q = 1.75) and
``OUT_DIR/{onednn,native}.pt``: the latents and the beta = 2 reconstruction decoded from STREAM, or the
decoder's error message.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from crdr import load_model
from crdr.codec import BitstreamError, Codec


def main(checkpoint: str, image: str, stream: str, dtype: str, threads: str, out_dir: str) -> None:
    torch.set_num_threads(int(threads))
    model = load_model(checkpoint)
    encoder = Codec(model, encoder_dtype=torch.bfloat16 if dtype == "bfloat16" else None)
    decoder = Codec(model)
    x = torch.load(image, weights_only=True)
    data = Path(stream).read_bytes()
    out = Path(out_dir)
    for backend, onednn in (("onednn", True), ("native", False)):
        torch.backends.mkldnn.enabled = onednn
        (out / f"{backend}.crdr").write_bytes(encoder.compress(x, 1.75))
        try:
            result = {"latents": decoder.decode_latents(decoder.parse(data)), "image": decoder.decompress(data, 2.0)}
        except BitstreamError as err:
            result = {"error": str(err)}
        torch.save(result, out / f"{backend}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
