"""The .crdr container: serialisation properties and rejection of damaged bytes."""

from __future__ import annotations

import dataclasses
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdr.codec.container import MAX_PIXELS, Bitstream, BitstreamError

streams = st.builds(
    Bitstream,
    fingerprint=st.binary(min_size=16, max_size=16),
    height=st.integers(1, 4096),
    width=st.integers(1, 4096),
    q=st.one_of(st.none(), st.floats(0, 4, width=32)),
    strings=st.lists(st.binary(max_size=300), min_size=1, max_size=4).map(tuple),
    symbols_crc=st.one_of(st.none(), st.integers(0, (1 << 32) - 1)),
    bfloat16_context=st.booleans(),
    entropy_device=st.sampled_from([None, "cpu", "cuda"]),
)


@settings(max_examples=200, deadline=None)
@given(streams)
def test_serialise_then_parse_is_the_identity(stream):
    assert Bitstream.from_bytes(stream.to_bytes()) == stream


@settings(max_examples=50, deadline=None)
@given(streams, st.data())
def test_every_truncation_and_bit_flip_is_detected(stream, data):
    raw = stream.to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(BitstreamError):
        Bitstream.from_bytes(raw[:cut])
    position = data.draw(st.integers(0, len(raw) * 8 - 1))
    flipped = bytearray(raw)
    flipped[position // 8] ^= 1 << (position % 8)
    with pytest.raises(BitstreamError):
        Bitstream.from_bytes(bytes(flipped))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected(raw):
    with pytest.raises(BitstreamError):
        Bitstream.from_bytes(raw)


def _valid() -> bytes:
    return Bitstream(bytes(16), 20, 30, 1.5, (b"zz", b"yyyy")).to_bytes()


def test_header_errors_name_the_problem():
    raw = _valid()
    with pytest.raises(BitstreamError, match="magic"):
        Bitstream.from_bytes(b"RIFF" + raw[4:])
    with pytest.raises(BitstreamError, match="version 9"):
        Bitstream.from_bytes(raw[:4] + bytes([9]) + raw[5:])
    with pytest.raises(BitstreamError, match="do not match the file size"):
        Bitstream.from_bytes(raw + b"extra")
    with pytest.raises(BitstreamError, match="checksum"):
        Bitstream.from_bytes(raw[:-6] + bytes([raw[-6] ^ 0xFF]) + raw[-5:])


def test_the_entropy_device_is_one_byte_after_the_symbols_checksum():
    portable = Bitstream(bytes(16), 20, 30, 1.5, (b"zz", b"yyyy"), symbols_crc=7)
    raw = dataclasses.replace(portable, entropy_device="cuda").to_bytes()
    assert len(raw) == len(portable.to_bytes()) + 1 and raw[5] == portable.to_bytes()[5] | 0x08
    assert raw[38] == 2  # cuda's code
    unknown = bytearray(raw)
    unknown[38] = 9
    unknown[-4:] = zlib.crc32(bytes(unknown[:-4])).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match="unknown entropy-parameter device code 9"):
        Bitstream.from_bytes(bytes(unknown))
    with pytest.raises(BitstreamError, match="'mps' cannot be recorded"):
        dataclasses.replace(portable, entropy_device="mps").to_bytes()


@pytest.mark.parametrize(("h", "w"), [(0, 5), (5, 0), (70000, 10), (1 << 15, 1 << 15)])
def test_impossible_sizes_are_refused_before_any_allocation(h, w):
    assert h * w == 0 or h > 65536 or h * w > MAX_PIXELS
    with pytest.raises(BitstreamError, match="outside the supported range"):
        Bitstream(bytes(16), h, w, None, (b"",)).to_bytes()


def test_huge_size_in_a_forged_header_is_refused():
    raw = bytearray(_valid())
    raw[22:26] = (1 << 31).to_bytes(4, "little")  # height field
    raw[-4:] = zlib.crc32(bytes(raw[:-4])).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match="outside the supported range"):
        Bitstream.from_bytes(bytes(raw))
