"""Compress images to ``.crdr`` bytes and decompress them, at any realism level beta.

By default the entropy parameters (hyper-synthesis, context model) run on the CPU, at both ends, so
the encoder and the decoder compute the same scales and, to the last bits of float arithmetic,
the same means (docs/bitstream.md says what holds across CPUs and thread counts); the analysis and
synthesis transforms run on the codec's device. ``entropy_parameters="device"`` runs them on the
codec's device too (deterministic kernels; streams flagged, decodable only that way). Every stream
carries a CRC-32 of its symbols, so a decoder that computes different entropy parameters (another
CPU's or GPU's arithmetic) fails with a clear error instead of returning a wrong image.
"""

from __future__ import annotations

import copy
import hashlib
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, cast

import numpy as np
import torch
from torch import Tensor

from crdr.codec.container import ENTROPY_DEVICES, FINGERPRINT_BYTES, Bitstream, BitstreamError
from crdr.io.errors import ConfigError
from crdr.loading.checkpoints import is_dynamic_buffer
from crdr.models.compressai_core import RansDecoder, RansEncoder
from crdr.models.generator import CrdrGenerator, Scalar, bits, check_image_batch
from crdr.models.memory_format import use_channels_last


def weights_fingerprint(model: CrdrGenerator) -> bytes:
    """First 16 bytes of SHA-256 over every weight's name, dtype, shape and values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if is_dynamic_buffer(name):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.view(torch.uint8).numpy())  # hashed in place, not copied
    return digest.digest()[:FINGERPRINT_BYTES]


EntropyParameters = Literal["portable", "device"]
#: ``entropy_parameters`` settings: the portable CPU float32 path, or the codec's own device.
ENTROPY_PARAMETERS = ("portable", "device")


def entropy_parameters_for(setting: str, device: str | torch.device) -> EntropyParameters:
    """The ``codec.entropy_parameters`` setting (portable, device or auto) as a Codec argument: auto is
    device on CUDA, else portable."""
    if setting == "auto":
        return "device" if torch.device(device).type == "cuda" else "portable"
    if setting not in ENTROPY_PARAMETERS:
        raise ConfigError(f"codec.entropy_parameters must be auto, portable or device, got {setting!r}")
    return cast(EntropyParameters, setting)


def symbols_crc(values: list[int], crc: int = 0) -> int:
    """CRC-32 of symbols as int32 little-endian, continuing from ``crc`` (chunks in coding order)."""
    return zlib.crc32(np.asarray(values, dtype="<i4").tobytes(), crc)


class _Tables:
    """CDF tables of an entropy model as the Python lists the rANS coder takes (converted once)."""

    def __init__(self, entropy_model) -> None:
        self.cdfs = entropy_model.quantized_cdf.tolist()
        self.lengths = entropy_model.cdf_length.reshape(-1).int().tolist()
        self.offsets = entropy_model.offset.reshape(-1).int().tolist()


class Codec:
    """``compress(image, q) -> bytes`` and ``decompress(bytes, beta) -> image`` for one generator.

    The model is set to eval mode and its synthesis conv weights are stored channels-last (about
    1.2x faster on CPU). The analysis and the entropy parameters keep the official memory layout:
    their oneDNN kernels round like the official code's, which is what makes our files equal its
    files and lets us decode its streams (channels-last rounding flips a few symbols in ~10% of
    full-size images and breaks decoding of official streams).

    Opt-in fast paths:

    - ``synthesis_dtype=torch.bfloat16`` (decoder; see ``SynthesisTransform.forward``): the entropy
      decoding is unchanged, the pixels differ from the float32 decoder by about 1/255.
    - ``encoder_dtype=torch.bfloat16`` (encoder): the analysis (a channels-last copy) and the
      context model's slice transforms run under bfloat16 autocast, about 3x faster on CPUs with
      AMX. The file is flagged and every decoder runs its context model the same way, so it still
      decodes exactly; the rate moves by well under 1 %. Such files are not official-compatible and
      decode only on CPUs whose bfloat16 convolutions round like the encoder's (the symbols
      checksum reports a mismatch).
    - ``entropy_parameters="device"`` (both ends): the hyper-synthesis and the context model run on
      ``device`` (copies of them; the model's own stay on the CPU) with deterministic algorithms,
      cuDNN's deterministic kernels and no TF32. On a GPU this removes most of the coding time. The
      file records the device type and only a decoder in the same mode on the same device type
      accepts it (portable decoders refuse it, and device decoders refuse portable files); it
      decodes exactly on the same GPU model and software, elsewhere the symbols checksum may refuse it.
    """

    def __init__(
        self,
        model: CrdrGenerator,
        device: str | torch.device = "cpu",
        synthesis_dtype: torch.dtype | None = None,
        encoder_dtype: torch.dtype | None = None,
        entropy_parameters: EntropyParameters = "portable",
    ) -> None:
        if model.entropy_model_y.quantized_cdf.numel() == 0:
            raise ValueError("the model's entropy tables are not built; load it with crdr.load_model")
        if encoder_dtype not in (None, torch.bfloat16):
            raise ValueError(f"encoder_dtype must be None (float32) or torch.bfloat16, got {encoder_dtype}")
        if entropy_parameters not in ENTROPY_PARAMETERS:
            raise ValueError(f"entropy_parameters must be portable or device, got {entropy_parameters!r}")
        self.model = model.eval()
        use_channels_last(model.decoder)
        self.device = torch.device(device)
        if entropy_parameters == "device" and self.device.type not in ENTROPY_DEVICES.values():
            raise ValueError(f"entropy_parameters='device' runs on cpu or cuda, not {self.device.type}")
        #: The device type the entropy parameters run on, as the header records it (None: portable).
        self.entropy_device = self.device.type if entropy_parameters == "device" else None
        self._entropy_on = self.device if self.entropy_device is not None else torch.device("cpu")
        self.synthesis_dtype = synthesis_dtype
        self.encoder_dtype = encoder_dtype
        for part in (model.encoder, model.hyperencoder, model.decoder):
            part.to(self.device)
        # The float32 analysis keeps the official layout; the fast one gets its own channels-last copy.
        self._analysis = model.encoder if encoder_dtype is None else use_channels_last(copy.deepcopy(model.encoder))
        for part in (model.hyperdecoder, model.entropy_model_z, model.entropy_model_y):
            part.to("cpu")
        if model.context_model is not None:
            model.context_model.to("cpu")
        self._hyperdecoder, self._context_model = model.hyperdecoder, model.context_model
        if self.entropy_device is not None:  # copies: other codecs of the model keep theirs on the CPU
            self._hyperdecoder = copy.deepcopy(model.hyperdecoder).to(self.device)
            self._context_model = copy.deepcopy(model.context_model)
            if self._context_model is not None:
                self._context_model.to(self.device)
        self.fingerprint = weights_fingerprint(model)
        self._y_tables = _Tables(model.entropy_model_y)
        #: Seconds spent per stage (analysis, hyper, context_model, entropy_coding, synthesis), summed
        #: over calls; a benchmark aid, reset it with ``codec.stage_seconds.clear()``.
        self.stage_seconds: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def _reproducible(self) -> Iterator[None]:
        """On CUDA: deterministic cuDNN algorithms and no TF32 while coding (settings restored after)."""
        if self.device.type != "cuda":
            yield
            return
        cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
        saved = cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = True, False, False, False
        try:
            yield
        finally:
            cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved

    @contextmanager
    def _entropy_parameters(self) -> Iterator[None]:
        """Device mode: :meth:`_reproducible` and ``torch.use_deterministic_algorithms`` (restored after),
        without its NaN filling of new tensors (every tensor here is written before it is read)."""
        if self.entropy_device is None:
            yield
            return
        fill = torch.utils.deterministic
        saved = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            fill.fill_uninitialized_memory,
        )
        torch.use_deterministic_algorithms(True)
        fill.fill_uninitialized_memory = False
        try:
            with self._reproducible():
                yield
        finally:
            torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
            fill.fill_uninitialized_memory = saved[2]

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Adds the block's own seconds to ``stage_seconds[name]`` (stages nested in it excluded)."""
        start, nested_before = time.perf_counter(), sum(self.stage_seconds.values())
        yield
        nested = sum(self.stage_seconds.values()) - nested_before
        self.stage_seconds[name] += time.perf_counter() - start - nested

    # -- encoder -----------------------------------------------------------------------------
    @torch.no_grad()
    def compress(self, image: Tensor, q: Scalar | None = None) -> bytes:
        """image: (1, 3, H, W) float in [0, 1] -> ``.crdr`` bytes."""
        check_image_batch(image)
        if image.shape[0] != 1:
            raise ValueError(f"compress takes one image at a time, got a batch of {image.shape[0]}")
        model = self.model
        q_t = model.quality_tensor(q, 1)
        with self._stage("analysis"), self._reproducible():
            q_on = None if q_t is None else q_t.to(self.device)
            y, framing = model.analysis(image.to(self.device), q_on, self._analysis, self.encoder_dtype)
            # the decoder's tensors are NCHW: a channels-last y (fast analysis) would make the entropy
            # parameters' kernels, and so their rounding, differ between the two ends
            y = y.contiguous()
        with self._stage("hyper"), self._reproducible():
            z = model.hyper_analysis(y).cpu()
            z_string = model.entropy_model_z.compress(z)[0]
            z_hat = model.quantize_hyperlatent(z)
        y = y.to(self._entropy_on)
        with self._stage("hyper"), self._entropy_parameters():
            hyper = self._hyperdecoder(z_hat.to(self._entropy_on))
        bfloat16_context = self.encoder_dtype is not None and model.context_model is not None
        with self._entropy_parameters():
            symbols, indexes = self._encode_latents(y, hyper, torch.bfloat16 if bfloat16_context else None)
        with self._stage("entropy_coding"):
            y_string = RansEncoder().encode_with_indexes(
                symbols, indexes, self._y_tables.cdfs, self._y_tables.lengths, self._y_tables.offsets
            )
            crc = symbols_crc(symbols)
        q_value = None if q_t is None else float(q_t.item())
        strings = (z_string, y_string)
        stream = Bitstream(
            self.fingerprint,
            framing.height,
            framing.width,
            q_value,
            strings,
            crc,
            bfloat16_context,
            self.entropy_device,
        )
        return stream.to_bytes()

    def _encode_latents(
        self, y: Tensor, hyper: Tensor, context_dtype: torch.dtype | None
    ) -> tuple[list[int], list[int]]:
        """Symbols round(y - mu) and scale-table indexes of every element, in coding order."""
        gaussian = self.model.entropy_model_y
        symbols: list[int] = []
        indexes: list[int] = []

        def emit(y_part: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
            with self._stage("entropy_coding"):
                rounded = torch.round(y_part - mu)
                symbols.extend(rounded.int().reshape(-1).tolist())
                indexes.extend(gaussian.build_indexes(sigma.cpu()).reshape(-1).tolist())
                return rounded + mu

        cm = self._context_model
        if cm is None:
            means, scales = hyper.chunk(2, dim=1)
            emit(y, means, scales)
        else:
            y_slices = y.chunk(cm.num_slices, dim=1)
            with self._stage("context_model"):
                cm.run_slices(hyper, lambda i, mu, sigma: emit(y_slices[i], mu, sigma), context_dtype)
        return symbols, indexes

    # -- decoder -----------------------------------------------------------------------------
    def parse(self, data: bytes) -> Bitstream:
        """Validates a container for this model (no model work, no large allocation), its q included:
        the decoding steps below take a parsed stream and do not check it again."""
        stream = Bitstream.from_bytes(data)
        if stream.fingerprint != self.fingerprint:
            raise BitstreamError(
                "this bitstream was made with another model (weights fingerprint "
                f"{stream.fingerprint.hex()} != {self.fingerprint.hex()}); decode it with that checkpoint"
            )
        if len(stream.strings) != 2:
            raise BitstreamError(f"expected 2 entropy-coded strings (z, y), found {len(stream.strings)}")
        try:
            self.model.quality_tensor(stream.q, 1)
        except ValueError as err:
            raise BitstreamError(f"invalid header for this model: {err}") from None
        if stream.entropy_device != self.entropy_device:
            raise BitstreamError(_entropy_mismatch(stream.entropy_device, self.entropy_device))
        return stream

    @torch.no_grad()
    def decompress(self, data: bytes, beta: Scalar | None = None) -> Tensor:
        """``.crdr`` bytes -> (1, 3, H, W) reconstruction in [0, 1] at realism level beta."""
        return self.decompress_many(data, [beta])[0]

    @torch.no_grad()
    def decompress_many(self, data: bytes, betas: Sequence[Scalar | None]) -> list[Tensor]:
        """Entropy-decodes once and synthesises one reconstruction per beta."""
        stream = self.parse(data)
        betas_t = [self.model.beta_tensor(beta, 1) for beta in betas]
        y_hat = self.decode_latents(stream)
        return [self.synthesize(y_hat, stream, beta) for beta in betas_t]

    def decode_latents(self, stream: Bitstream) -> Tensor:
        """The quantised latent y_hat (1, C, H/16, W/16) of a parsed stream (on the CPU)."""
        return self.decode_latents_and_bits(stream)[0]

    @torch.no_grad()
    def decode_latents_and_bits(self, stream: Bitstream) -> tuple[Tensor, float]:
        """y_hat (as :meth:`decode_latents`) and the information content of (z_hat, y_hat) in bits under the
        entropy models: the likelihood estimate of the rate (``model.estimate_bpp`` x pixels) without
        running the analysis again."""
        model = self.model
        z_size = model.framing(stream.height, stream.width).hyperlatent_size
        with self._stage("hyper"):
            z_hat = model.entropy_model_z.decompress([stream.strings[0]], z_size)
            with self._entropy_parameters():
                hyper = self._hyperdecoder(z_hat.to(self._entropy_on))
            information = float(bits(model.entropy_model_z.rounded_likelihood(z_hat))[0])
        decoder = RansDecoder()
        decoder.set_stream(stream.strings[1])
        gaussian = model.entropy_model_y
        crc = 0

        def read(mu: Tensor, sigma: Tensor) -> Tensor:
            nonlocal crc, information
            with self._stage("entropy_coding"):
                sigma_cpu = sigma.cpu()
                idx = gaussian.build_indexes(sigma_cpu).reshape(-1).tolist()
                t = self._y_tables
                values = decoder.decode_stream(idx, t.cdfs, t.lengths, t.offsets)
                crc = symbols_crc(values, crc)
                symbols = torch.tensor(values, dtype=torch.int32).reshape(mu.shape)
                y_hat = symbols.to(mu.device, mu.dtype) + mu
                information += float(bits(gaussian.rounded_likelihood(y_hat.cpu(), sigma_cpu, mu.cpu()))[0])
                return y_hat

        cm = self._context_model
        with self._entropy_parameters():
            if cm is None:
                means, scales = hyper.chunk(2, dim=1)
                y_hat = read(means, scales)
            else:
                context_dtype = torch.bfloat16 if stream.bfloat16_context else None
                with self._stage("context_model"):
                    y_hat = cm.run_slices(hyper, lambda i, mu, sigma: read(mu, sigma), context_dtype)
        if stream.symbols_crc is not None and crc != stream.symbols_crc:
            device = stream.entropy_device is not None
            raise BitstreamError(
                "the decoded symbols do not match the encoder's (symbols checksum): the stream is corrupt, "
                "or this machine computes the entropy parameters differently from the encoding one"
                + (" (bfloat16 context model: re-encode with float32)" if stream.bfloat16_context else "")
                + (" (device entropy parameters: decode with the encoder's device and software)" if device else "")
            )
        return y_hat.cpu(), information

    def synthesize(self, y_hat: Tensor, stream: Bitstream, beta: Tensor | None) -> Tensor:
        """``model.synthesis`` of a parsed stream's y_hat at its q and size -> (1, 3, H, W) in [0, 1] on
        the CPU; beta from ``model.beta_tensor``. Clamped here too, so the pixels stay the eval-mode ones
        if the caller put the shared model back into training mode."""
        model = self.model
        q_t = None if stream.q is None else torch.tensor([stream.q], dtype=torch.float32, device=self.device)
        with self._stage("synthesis"), self._reproducible():
            framing = model.framing(stream.height, stream.width)
            x_hat = model.synthesis(y_hat.to(self.device), q_t, beta, framing, self.synthesis_dtype)
            return x_hat.clamp(0, 1).cpu()


def _entropy_mismatch(stream_device: str | None, codec_device: str | None) -> str:
    """The one-line refusal of a stream whose entropy parameters this codec does not compute the same way."""
    if stream_device is None:
        return (
            "this stream has portable entropy parameters (CPU float32); decode it with "
            "entropy_parameters='portable' (crdr decompress without --entropy-parameters device)"
        )
    made = f"this stream's entropy parameters were computed on a {stream_device} device"
    if codec_device is None:
        return (
            f"{made} (entropy_parameters='device'); decode it with entropy_parameters='device' on a "
            f"{stream_device} device (crdr decompress --entropy-parameters device --device {stream_device})"
        )
    return f"{made}, this decoder computes them on {codec_device}; decode it on a {stream_device} device"
