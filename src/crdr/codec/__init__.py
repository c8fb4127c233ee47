"""Real bitstreams: the ``.crdr`` container and the codec."""

from crdr.codec.codec import Codec, weights_fingerprint
from crdr.codec.container import Bitstream, BitstreamError
from crdr.codec.rate import bits_per_pixel

__all__ = ["Bitstream", "BitstreamError", "Codec", "bits_per_pixel", "weights_fingerprint"]
