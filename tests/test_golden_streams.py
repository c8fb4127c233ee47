"""Cross-machine golden: streams written on another machine (``tests/golden_streams``) decode here,
and this machine writes the same float32 bytes. What holds on every x86-64 CPU is in docs/bitstream.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import LATENT_TOLERANCE, PIXEL_TOLERANCE
from crdr import load_model
from crdr.codec import BitstreamError, Codec
from crdr.io.images import read_image

GOLDEN = Path(__file__).parent / "golden_streams"
_spec = importlib.util.spec_from_file_location("regenerate", GOLDEN / "regenerate.py")
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)

FLOAT32_CASES = [name for name, case in regenerate.CASES.items() if case[4] == "float32"]
BFLOAT16_CASES = [name for name, case in regenerate.CASES.items() if case[4] == "bfloat16"]


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(load_model(regenerate.CHECKPOINT))


@pytest.fixture(params=["onednn", "native"])
def conv_backend(request):
    """Decoding with oneDNN's convolutions and with PyTorch's own (another backend, as on another CPU)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = request.param == "onednn"
    yield request.param
    torch.backends.mkldnn.enabled = enabled


@pytest.fixture(scope="module")
def latents() -> dict[str, torch.Tensor]:
    return torch.load(GOLDEN / "latents.pt", weights_only=True)


def _check_decoding(codec: Codec, name: str, data: bytes, latents: dict[str, torch.Tensor]) -> None:
    """Same latents (within tolerance) and, in the stored window, the stored 8-bit pixels within tolerance."""
    beta = regenerate.CASES[name][3]
    torch.testing.assert_close(codec.decode_latents(codec.parse(data)), latents[name], **LATENT_TOLERANCE)
    image = regenerate.reference_part(codec.decompress(data, beta))
    stored = read_image(GOLDEN / f"{name}.png")
    assert image.shape == stored.shape
    # the PNG holds the encoding machine's pixels rounded to 8 bits
    assert (image - stored).abs().max() <= 0.5 / 255 + PIXEL_TOLERANCE


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_float32_streams_from_another_machine_decode_here(codec, latents, name, conv_backend):
    _check_decoding(codec, name, (GOLDEN / f"{name}.crdr").read_bytes(), latents)


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_this_machine_writes_the_same_float32_bytes(codec, name, conv_backend):
    image, crop, q, _, _ = regenerate.CASES[name]
    assert codec.compress(regenerate.case_image(image, crop), q) == (GOLDEN / f"{name}.crdr").read_bytes()


@pytest.mark.parametrize("name", BFLOAT16_CASES)
def test_bfloat16_streams_from_another_machine_decode_exactly_or_are_refused(codec, latents, name, conv_backend):
    """Only CPUs whose bfloat16 convolutions round like the encoder's decode it; others say so, in one line."""
    data = (GOLDEN / f"{name}.crdr").read_bytes()
    try:
        codec.decode_latents(codec.parse(data))
    except BitstreamError as err:
        assert "symbols checksum" in str(err) and "re-encode with float32" in str(err)
        return
    _check_decoding(codec, name, data, latents)
