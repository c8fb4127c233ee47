"""The ``.crdr`` container: a versioned, checksummed envelope around the entropy-coded strings.

Layout (little-endian; see docs/bitstream.md):

    magic "CRDR" | version u8 | flags u8 | fingerprint 16 B | height u32 | width u32 | q f32 |
    [symbols CRC-32 u32, when flagged] | [entropy-parameter device u8, when flagged] |
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
#: No stream is larger: 2^28 pixels at 24 bits per pixel plus the container (readers check the file size first).
MAX_STREAM_BYTES = MAX_PIXELS * 3 + (1 << 16)
FLAG_HAS_Q = 0x01
#: The encoder ran the context model's slice transforms under bfloat16 autocast; the decoder must too.
FLAG_BFLOAT16_CONTEXT = 0x02
#: A CRC-32 of the y symbols follows q: the decoder checks that it decoded what was encoded.
FLAG_SYMBOLS_CRC = 0x04
#: The encoder computed the entropy parameters on its model's device (not the portable CPU path); a
#: byte naming that device's type (``ENTROPY_DEVICES``) follows, and only such a decoder accepts it.
FLAG_DEVICE_ENTROPY = 0x08
KNOWN_FLAGS = FLAG_HAS_Q | FLAG_BFLOAT16_CONTEXT | FLAG_SYMBOLS_CRC | FLAG_DEVICE_ENTROPY
#: Device types the entropy parameters can be computed on, by their code in the header.
ENTROPY_DEVICES = {1: "cpu", 2: "cuda"}

_FIXED = struct.Struct("<4sBB16sIIf")
_U32 = struct.Struct("<I")
_COUNT = struct.Struct("<B")
_DEVICE_CODES = {name: code for code, name in ENTROPY_DEVICES.items()}


class BitstreamError(ValueError):
    """A ``.crdr`` byte string is malformed, corrupt, or not meant for this model."""


@dataclass(frozen=True)
class Bitstream:
    """Parsed container. q is None for single-rate models; strings are [z, y].

    ``symbols_crc``: CRC-32 of the y symbols as int32 little-endian in coding order (None: not
    stored, e.g. official strings re-wrapped). ``bfloat16_context``: the context model ran under
    bfloat16 autocast at the encoder (``Codec(encoder_dtype=torch.bfloat16)``). ``entropy_device``:
    the device type (``"cpu"``, ``"cuda"``) the entropy parameters were computed on with
    ``Codec(entropy_parameters="device")``; None for the portable CPU path.
    """

    fingerprint: bytes
    height: int
    width: int
    q: float | None
    strings: tuple[bytes, ...]
    symbols_crc: int | None = None
    bfloat16_context: bool = False
    entropy_device: str | None = None

    def to_bytes(self) -> bytes:
        _check_fields(self.fingerprint, self.height, self.width, self.q, len(self.strings), self.symbols_crc)
        if self.entropy_device is not None and self.entropy_device not in _DEVICE_CODES:
            raise BitstreamError(f"entropy parameters on {self.entropy_device!r} cannot be recorded")
        flags = (
            (FLAG_HAS_Q if self.q is not None else 0)
            | (FLAG_SYMBOLS_CRC if self.symbols_crc is not None else 0)
            | (FLAG_BFLOAT16_CONTEXT if self.bfloat16_context else 0)
            | (FLAG_DEVICE_ENTROPY if self.entropy_device is not None else 0)
        )
        q = 0.0 if self.q is None else self.q
        head = _FIXED.pack(MAGIC, VERSION, flags, self.fingerprint, self.height, self.width, q)
        if self.symbols_crc is not None:
            head += _U32.pack(self.symbols_crc)
        if self.entropy_device is not None:
            head += _COUNT.pack(_DEVICE_CODES[self.entropy_device])
        lengths = struct.pack(f"<B{len(self.strings)}I", len(self.strings), *map(len, self.strings))
        body = head + lengths + b"".join(self.strings)
        return body + _U32.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Bitstream:
        data = bytes(data)
        if len(data) < 4 or data[:4] != MAGIC:
            raise BitstreamError("not a .crdr bitstream (wrong magic bytes)")
        if len(data) < _FIXED.size + _COUNT.size + _U32.size:
            raise BitstreamError(f"truncated bitstream ({len(data)} bytes is shorter than the header)")
        _, version, flags, fingerprint, height, width, q = _FIXED.unpack_from(data)
        if version != VERSION:
            raise BitstreamError(f"unsupported bitstream version {version} (this crdr reads version {VERSION})")
        if flags & ~KNOWN_FLAGS:
            raise BitstreamError(f"unknown flags 0x{flags:02x} in the header")
        offset, symbols_crc = _FIXED.size, None
        if flags & FLAG_SYMBOLS_CRC:
            if len(data) < offset + _U32.size + _COUNT.size + _U32.size:
                raise BitstreamError("truncated or corrupt header")
            (symbols_crc,) = _U32.unpack_from(data, offset)
            offset += _U32.size
        entropy_device = None
        if flags & FLAG_DEVICE_ENTROPY:
            if len(data) < offset + 2 * _COUNT.size + _U32.size:
                raise BitstreamError("truncated or corrupt header")
            (code,) = _COUNT.unpack_from(data, offset)
            if code not in ENTROPY_DEVICES:
                raise BitstreamError(f"unknown entropy-parameter device code {code} in the header")
            entropy_device = ENTROPY_DEVICES[code]
            offset += _COUNT.size
        (count,) = _COUNT.unpack_from(data, offset)
        lengths_end = offset + _COUNT.size + 4 * count
        if count > MAX_STRINGS or len(data) < lengths_end + _U32.size:
            raise BitstreamError("truncated or corrupt header (string table)")
        lengths = struct.unpack_from(f"<{count}I", data, offset + _COUNT.size)
        if lengths_end + sum(lengths) + _U32.size != len(data):
            raise BitstreamError(
                f"string lengths ({sum(lengths)} bytes) do not match the file size: truncated or corrupt bitstream"
            )
        (crc,) = _U32.unpack_from(data, len(data) - _U32.size)
        if zlib.crc32(data[: -_U32.size]) != crc:
            raise BitstreamError("checksum mismatch: the bitstream is corrupt")
        q_value = float(q) if flags & FLAG_HAS_Q else None
        _check_fields(fingerprint, height, width, q_value, count)
        strings, offset = [], lengths_end
        for n in lengths:
            strings.append(data[offset : offset + n])
            offset += n
        bfloat16_context = bool(flags & FLAG_BFLOAT16_CONTEXT)
        return cls(fingerprint, height, width, q_value, tuple(strings), symbols_crc, bfloat16_context, entropy_device)


def _check_fields(
    fingerprint: bytes, height: int, width: int, q: float | None, count: int, symbols_crc: int | None = None
) -> None:
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise BitstreamError(f"the model fingerprint must be {FINGERPRINT_BYTES} bytes")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or height * width > MAX_PIXELS:
        raise BitstreamError(f"image size {height}x{width} is outside the supported range")
    if q is not None and not math.isfinite(q):
        raise BitstreamError(f"invalid quality level {q} in the header")
    if symbols_crc is not None and not 0 <= symbols_crc < 1 << 32:
        raise BitstreamError(f"invalid symbols checksum {symbols_crc}")
    if not 1 <= count <= MAX_STRINGS:
        raise BitstreamError(f"invalid number of entropy-coded strings: {count}")
