"""The ``.crdr`` container: a versioned, checksummed envelope around the entropy-coded strings.

Layout (little-endian; see docs/bitstream.md):

    magic "CRDR" | version u8 | flags u8 | fingerprint 16 B | height u32 | width u32 | q f32 |
    string count u8 | string lengths u32 x count | strings | CRC-32 u32 of everything before it

Everything is validated before a model is touched or a large buffer allocated.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"CRDR"
VERSION = 1
FINGERPRINT_BYTES = 16
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 28
MAX_STRINGS = 8
FLAG_HAS_Q = 0x01

_FIXED = struct.Struct("<4sBB16sIIfB")
_CRC = struct.Struct("<I")


class BitstreamError(ValueError):
    """A ``.crdr`` byte string is malformed, corrupt, or not meant for this model."""


@dataclass(frozen=True)
class Bitstream:
    """Parsed container. q is None for single-rate models; strings are [z, y]."""

    fingerprint: bytes
    height: int
    width: int
    q: float | None
    strings: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        _check_fields(self.fingerprint, self.height, self.width, self.q, len(self.strings))
        flags = FLAG_HAS_Q if self.q is not None else 0
        q = 0.0 if self.q is None else self.q
        head = _FIXED.pack(MAGIC, VERSION, flags, self.fingerprint, self.height, self.width, q, len(self.strings))
        lengths = struct.pack(f"<{len(self.strings)}I", *map(len, self.strings))
        body = head + lengths + b"".join(self.strings)
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Bitstream:
        data = bytes(data)
        if len(data) < 4 or data[:4] != MAGIC:
            raise BitstreamError("not a .crdr bitstream (wrong magic bytes)")
        if len(data) < _FIXED.size + _CRC.size:
            raise BitstreamError(f"truncated bitstream ({len(data)} bytes is shorter than the header)")
        _, version, flags, fingerprint, height, width, q, count = _FIXED.unpack_from(data)
        if version != VERSION:
            raise BitstreamError(f"unsupported bitstream version {version} (this crdr reads version {VERSION})")
        if flags & ~FLAG_HAS_Q:
            raise BitstreamError(f"unknown flags 0x{flags:02x} in the header")
        lengths_end = _FIXED.size + 4 * count
        if count > MAX_STRINGS or len(data) < lengths_end + _CRC.size:
            raise BitstreamError("truncated or corrupt header (string table)")
        lengths = struct.unpack_from(f"<{count}I", data, _FIXED.size)
        if lengths_end + sum(lengths) + _CRC.size != len(data):
            raise BitstreamError(
                f"string lengths ({sum(lengths)} bytes) do not match the file size: truncated or corrupt bitstream"
            )
        (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
        if zlib.crc32(data[: -_CRC.size]) != crc:
            raise BitstreamError("checksum mismatch: the bitstream is corrupt")
        q_value = float(q) if flags & FLAG_HAS_Q else None
        _check_fields(fingerprint, height, width, q_value, count)
        strings, offset = [], lengths_end
        for n in lengths:
            strings.append(data[offset : offset + n])
            offset += n
        return cls(fingerprint, height, width, q_value, tuple(strings))


def _check_fields(fingerprint: bytes, height: int, width: int, q: float | None, count: int) -> None:
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise BitstreamError(f"the model fingerprint must be {FINGERPRINT_BYTES} bytes")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or height * width > MAX_PIXELS:
        raise BitstreamError(f"image size {height}x{width} is outside the supported range")
    if q is not None and not math.isfinite(q):
        raise BitstreamError(f"invalid quality level {q} in the header")
    if not 1 <= count <= MAX_STRINGS:
        raise BitstreamError(f"invalid number of entropy-coded strings: {count}")
