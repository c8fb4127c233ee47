"""Real bitstreams: the ``.crdr`` container and the codec."""

from crdr.codec.codec import Codec, weights_fingerprint
from crdr.codec.container import Bitstream, BitstreamError

__all__ = ["Bitstream", "BitstreamError", "Codec", "weights_fingerprint"]
