"""atheris fuzz target: arbitrary bytes into the `.crdr` parser and the decoder.

Two inputs per run: the fuzzer's bytes as a whole file (the parser must refuse them cleanly), and
the same bytes as the z and y strings of a well-formed container for the model (correct magic,
fingerprint and CRC, small random size and q, portable or device entropy parameters), which drives
CompressAI's rANS decoder and our slice loop on garbage (entropy decoding only). The only
acceptable failure is ``BitstreamError``; anything else (another exception, a crash, a hang caught
by ``-timeout``) is a finding.

    python fuzz/bitstream.py -max_total_time=60          # or -runs=N; libFuzzer flags
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris
import compressai.entropy_models  # noqa: F401 - imported uninstrumented: coverage is collected for crdr only
import torch

with atheris.instrument_imports(include=["crdr"]):
    from crdr import load_model
    from crdr.codec import Bitstream, BitstreamError, Codec

CHECKPOINT = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden_tiny" / "official_ckpt.pth"
torch.set_num_threads(1)
CODEC = Codec(load_model(CHECKPOINT))
DEVICE_CODEC = Codec(CODEC.model, entropy_parameters="device")


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(BitstreamError):
        CODEC.decompress(data, 0.0)
    fdp = atheris.FuzzedDataProvider(data)
    height, width = fdp.ConsumeIntInRange(1, 96), fdp.ConsumeIntInRange(1, 96)
    q = fdp.ConsumeIntInRange(0, 64) / 16
    checksum = fdp.ConsumeIntInRange(0, (1 << 32) - 1) if fdp.ConsumeBool() else None
    bfloat16 = fdp.ConsumeBool()
    codec = DEVICE_CODEC if fdp.ConsumeBool() else CODEC
    z_length = fdp.ConsumeIntInRange(0, 64)
    z, y = fdp.ConsumeBytes(z_length), fdp.ConsumeBytes(fdp.remaining_bytes())
    stream = Bitstream(codec.fingerprint, height, width, q, (z, y), checksum, bfloat16, codec.entropy_device).to_bytes()
    try:  # entropy decoding only: the synthesis of whatever latents come out is not under test
        latents = codec.decode_latents(codec.parse(stream))
    except BitstreamError:
        return
    if not bool(torch.isfinite(latents).all()):
        raise AssertionError("garbage strings decoded to non-finite latents")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
