"""The CRDR generator: one model whose rate is set by q and whose realism is set by beta."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from crdr.models.context_model import ChannelContextModel
from crdr.models.entropy_models import (
    StraightThroughEntropyBottleneck,
    StraightThroughGaussianConditional,
    round_around,
)
from crdr.models.transforms import AnalysisTransform, SynthesisTransform

Scalar = float | int | Tensor


@dataclass
class GeneratorOutput:
    """What one forward pass of :class:`CrdrGenerator` returns.

    x_hat: (B, 3, H, W) reconstruction in [0, 1] (clamped in eval mode only).
    bpp: (B,) estimated bits per pixel of the H x W image, from the likelihoods (at the noisy
    latents in training mode, differentiable).
    y_hat, z_hat: quantised latents at the padded size; y_likelihoods, z_likelihoods alike.
    qbpp: (B,) bits per pixel of the rounded latents (what a bitstream costs), without gradient;
    equal to bpp in eval mode.
    """

    x_hat: Tensor
    bpp: Tensor
    y_hat: Tensor
    z_hat: Tensor
    y_likelihoods: Tensor
    z_likelihoods: Tensor
    qbpp: Tensor


@dataclass(frozen=True)
class Framing:
    """Where an H x W image sits in the analysis input: at the top left, mirror-padded right and
    bottom to a multiple of ``stride`` (see :meth:`CrdrGenerator.frame_input`). The synthesis crops
    back to H x W; the codec stores only (H, W) and rebuilds the framing from them."""

    height: int
    width: int
    stride: int

    @property
    def hyperlatent_size(self) -> tuple[int, int]:
        """(h, w) of the hyper-latent z: (ceil(H / stride), ceil(W / stride))."""
        return -(-self.height // self.stride), -(-self.width // self.stride)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pads right and bottom to a multiple by mirror reflection, repeated where a side is too short.

    Equals ``F.pad(x, ..., mode='reflect')`` whenever that is possible (pad < side); a side of 1
    is first replicated. x: (B, C, H, W).
    """
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    while pad_h or pad_w:
        h, w = x.shape[-2:]
        if (pad_h and h == 1) or (pad_w and w == 1):
            x = F.pad(x, (0, int(pad_w > 0 and w == 1), 0, int(pad_h > 0 and h == 1)), mode="replicate")
            pad_h -= int(pad_h > 0 and h == 1)
            pad_w -= int(pad_w > 0 and w == 1)
            continue
        step_h, step_w = min(pad_h, h - 1), min(pad_w, w - 1)
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def rate_level(q: float) -> int:
    """The trained rate level a quality level q in [0, L - 1] belongs to: the nearest integer (ties to
    even, Python's ``round``). Picks the rate loss's target and the stage-3 sub-discriminator."""
    return round(q)


def bits(likelihoods: Tensor) -> Tensor:
    """(B, ...) likelihoods -> (B,) total information content in bits."""
    return torch.log(likelihoods).flatten(1).sum(dim=1) / -math.log(2)


class CrdrGenerator(nn.Module):
    """Analysis/synthesis transforms, hyperprior, optional CHARM context model and entropy models.

    The framing and the transforms around the entropy coding are public steps, which :meth:`forward`,
    :meth:`forward_betas`, :meth:`reconstruct` and ``crdr.codec.Codec`` all run (so the codec's
    latents and pixels are the forward pass's): :meth:`analysis` (frame, encoder),
    :meth:`hyper_analysis`, :meth:`quantize_hyperlatent` and :meth:`synthesis` (decoder, clamp, crop,
    rescale). q and beta go in as the tensors :meth:`quality_tensor` and :meth:`beta_tensor` validate.

    Child modules (and checkpoint key prefixes) in official order: ``encoder``, ``decoder``,
    ``hyperencoder``, ``hyperdecoder``, ``entropy_model_z``, ``entropy_model_y``, ``context_model``.
    Without a context model, the hyper-synthesis output is split directly into (means, scales).

    Data flow of :meth:`forward` (eval mode; training mode rounds straight-through and prices noisy latents)::

        x (B, 3, H, W) in [0, 1]
          | analysis: frame_input (2x - 1, mirror-pad right/bottom to a     -> Framing(H, W, 64)
          |   multiple of 64, NCHW), then encoder(., q)
          v
        y (B, C, H/16, W/16) -------------------------------------------+
          | hyper_analysis: hyperencoder (float32 out)                  |
          v                                                             |
        z (B, C_z, H/64, W/64)                                          |
          | entropy_model_z: z_hat = round(z - median) + median         |   -> p(z_hat)
          |   (quantize_hyperlatent without the likelihood)             |
          v                                                             |
        hyperdecoder = hyper-synthesis(z_hat) -> [h_mu, h_sigma]        |
          v                                                             v
        context_model (10 slices): mu, sigma of each slice from [h_mu, h_sigma] and the slices before;
          y_hat = round(y - mu) + mu + 0.5 tanh(lrp)                        -> p(y_hat)
          (without a context model: [mu, sigma] = hyperdecoder output, y_hat = round(y - mu) + mu)
          v
        synthesis: decoder(y_hat, q, beta) -> clamp to [-1, 1] (eval) -> crop to H x W -> (. + 1) / 2
          v
        x_hat (B, 3, H, W) in [0, 1]
        bpp = (-sum log2 p(y_hat) - sum log2 p(z_hat)) / (H W)
    """

    def __init__(
        self,
        encoder: AnalysisTransform,
        decoder: SynthesisTransform,
        hyperencoder: nn.Module,
        hyperdecoder: nn.Module,
        hyper_channels: int = 192,
        scale_bound: float = 0.11,
        context_model: ChannelContextModel | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.hyperencoder = hyperencoder
        self.hyperdecoder = hyperdecoder
        self.entropy_model_z = StraightThroughEntropyBottleneck(hyper_channels)
        self.entropy_model_y = StraightThroughGaussianConditional(scale_bound=scale_bound)
        self.context_model = context_model
        if encoder.rate_controlled != decoder.rate_controlled:
            raise ValueError("encoder and decoder must both have rate control (ICA) or neither")
        self.stride = encoder.downscale_factor * hyperencoder.downscale_factor
        #: The resolved model config this generator was built from (set by ``crdr.config.build_generator``).
        self.config: dict | None = None

    # -- conditioning ------------------------------------------------------------------------
    @property
    def num_rate_levels(self) -> int | None:
        """Number of trained rate levels (q ranges over [0, num_rate_levels - 1]); None without ICA."""
        return self.encoder.num_rate_levels

    @property
    def max_beta(self) -> float | None:
        """Largest realism weight beta; None when the decoder is not beta-conditioned."""
        return self.decoder.max_beta

    def quality_tensor(self, q: Scalar | None, batch: int, device: torch.device | str = "cpu") -> Tensor | None:
        """Validates q (scalar or (B,)) and returns it as a float32 (1,) or (B,) tensor on ``device``."""
        if self.num_rate_levels is None:
            if q is not None:
                raise ValueError("this model has a single rate: it takes no quality level q")
            return None
        return _condition_tensor("q", q, batch, 0.0, float(self.num_rate_levels - 1)).to(device)

    def beta_tensor(self, beta: Scalar | None, batch: int, device: torch.device | str = "cpu") -> Tensor | None:
        """Validates beta (scalar or (B,)) and returns it as a float32 (1,) or (B,) tensor on ``device``."""
        if self.max_beta is None:
            if beta is not None:
                raise ValueError("this model is not beta-conditioned: it takes no beta")
            return None
        return _condition_tensor("beta", beta, batch, 0.0, self.max_beta).to(device)

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: Tensor, q: Scalar | None = None, beta: Scalar | None = None) -> GeneratorOutput:
        """x: (B, 3, H, W) float in [0, 1], any H, W >= 1; q in [0, L-1]; beta in [0, max_beta].

        In training mode the rates use additive noise and the latents straight-through
        rounding; in eval mode both are rounded and x_hat is clamped to [0, 1].
        """
        return self.forward_betas(x, q, [beta])[0]

    def forward_betas(self, x: Tensor, q: Scalar | None, betas: Sequence[Scalar | None]) -> list[GeneratorOutput]:
        """``[forward(x, q, beta) for beta in betas]`` with one analysis and quantisation for all
        (beta conditions the decoder only): the latents and rates are shared, x_hat is per beta."""
        check_image_batch(x)
        batch = x.shape[0]
        # on x's device once, not copied by every rate-controlled layer (and no CPU input to a CUDA graph)
        q_t = self.quality_tensor(q, batch, x.device)
        beta_ts = [self.beta_tensor(beta, batch, x.device) for beta in betas]
        y, framing = self.analysis(x, q_t)
        latents = self._quantize(y, framing)  # every GeneratorOutput field but x_hat
        return [
            GeneratorOutput(x_hat=self.synthesis(latents["y_hat"], q_t, beta_t, framing), **latents)
            for beta_t in beta_ts
        ]

    def reconstruct(self, x: Tensor, q: Scalar | None = None, beta: Scalar | None = None) -> Tensor:
        """``forward(x, q, beta).x_hat`` (same values) without the rates: no likelihoods and no
        scale transforms of the context model. x: (B, 3, H, W) in [0, 1] -> (B, 3, H, W)."""
        check_image_batch(x)
        batch = x.shape[0]
        q_t = self.quality_tensor(q, batch, x.device)
        beta_t = self.beta_tensor(beta, batch, x.device)
        y, framing = self.analysis(x, q_t)
        hyper = self.hyperdecoder(self.quantize_hyperlatent(self.hyper_analysis(y)))
        if self.context_model is not None:
            y_hat = self.context_model.quantize_latents(y, hyper)
        else:
            y_hat = round_around(y.float(), hyper.chunk(2, dim=1)[0].float(), self.training)
        return self.synthesis(y_hat, q_t, beta_t, framing)

    def estimate_bpp(self, x: Tensor, q: Scalar | None = None) -> Tensor:
        """(B,) bits per pixel estimated from the likelihoods, without running the synthesis transform."""
        check_image_batch(x)
        return self._quantize(*self.analysis(x, self.quality_tensor(q, x.shape[0], x.device)))["bpp"]

    def _quantize(self, y: Tensor, framing: Framing) -> dict[str, Tensor]:
        """Hyperprior and context model of the latents y: quantised latents, likelihoods, bpp, qbpp."""
        pixels = framing.height * framing.width
        z_hat, z_likelihoods = self.entropy_model_z(self.hyper_analysis(y))
        z_rounded = self.entropy_model_z.rounded_likelihood(z_hat) if self.training else z_likelihoods
        y_hat, y_likelihoods, y_rounded = self.latent_prior(y, self.hyperdecoder(z_hat))
        bpp = (bits(y_likelihoods) + bits(z_likelihoods)) / pixels
        qbpp = bpp if not self.training else ((bits(y_rounded) + bits(z_rounded)) / pixels).detach()
        return {
            "y_hat": y_hat,
            "z_hat": z_hat,
            "y_likelihoods": y_likelihoods,
            "z_likelihoods": z_likelihoods,
            "bpp": bpp,
            "qbpp": qbpp,
        }

    # -- the steps around the entropy coding ------------------------------------------------
    def framing(self, height: int, width: int) -> Framing:
        """The framing of an H x W image (what a bitstream's stored size stands for)."""
        return Framing(height, width, self.stride)

    def frame_input(self, x: Tensor) -> Tensor:
        """x in [0, 1] (B, 3, H, W) -> the analysis input: [-1, 1], padded to a multiple of ``stride``,
        in the NCHW layout.

        The layout is fixed because it picks the convolution kernels and so their rounding: a view
        whose strides also read as channels-last (any 1x1 crop) would otherwise give latents, and a
        decoded image, that differ from the codec's in the last bits.
        """
        return pad_to_multiple(x * 2 - 1, self.stride).contiguous()

    def analysis(
        self,
        x: Tensor,
        q: Tensor | None,
        transform: AnalysisTransform | None = None,
        compute_dtype: torch.dtype | None = None,
    ) -> tuple[Tensor, Framing]:
        """x: (B, 3, H, W) in [0, 1], q from :meth:`quality_tensor` (on x's device) -> the latents
        y (B, C, H_p / 16, W_p / 16) of :meth:`frame_input` (x), padded to H_p x W_p, and its framing.

        ``transform``: the analysis transform to run instead of ``encoder`` (the same weights in
        another layout; the codec's bfloat16 path); ``compute_dtype``: as ``AnalysisTransform.forward``.
        """
        encoder = self.encoder if transform is None else transform
        y = encoder(self.frame_input(x), q, compute_dtype=compute_dtype)
        return y, self.framing(x.shape[-2], x.shape[-1])

    def hyper_analysis(self, y: Tensor) -> Tensor:
        """Latents y -> hyper-latents z (B, C_z, h, w), float32 as in the entropy models (under mixed
        precision the transforms' outputs are bfloat16)."""
        return self.hyperencoder(y).float()

    def quantize_hyperlatent(self, z: Tensor) -> Tensor:
        """z -> z_hat = round(z - median) + median (straight-through in training), as ``entropy_model_z``
        quantises it, without the likelihood. Runs where z is: the codec's z is on the CPU."""
        return round_around(z, self.entropy_model_z.medians(), self.training)

    def latent_prior(self, y: Tensor, hyper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantises y under the hyperprior (and context model) -> (y_hat, likelihoods, rounded likelihoods)."""
        if self.context_model is not None:
            return self.context_model(y, hyper, self.entropy_model_y)
        means, scales = hyper.chunk(2, dim=1)
        y_hat, likelihoods = self.entropy_model_y(y, scales, means)
        rounded = self.entropy_model_y.rounded_likelihood(y_hat, scales, means) if self.training else likelihoods
        return y_hat, likelihoods, rounded

    def synthesis(
        self,
        y_hat: Tensor,
        q: Tensor | None,
        beta: Tensor | None,
        framing: Framing,
        compute_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Quantised latents y_hat (B, C, h, w) at the padded size -> x_hat (B, 3, H, W): the decoder,
        clamped to [-1, 1] in eval mode, cropped to the framing's H x W and mapped to [0, 1].

        q, beta: from :meth:`quality_tensor` and :meth:`beta_tensor`, on y_hat's device;
        ``compute_dtype``: as ``SynthesisTransform.forward`` (the codec's fast decoder).
        """
        x_hat = self.decoder(y_hat, q, beta, compute_dtype=compute_dtype)
        if not self.training:
            x_hat = x_hat.clamp(-1, 1)
        return (x_hat[:, :, : framing.height, : framing.width] + 1) / 2

    # -- entropy coding tables ---------------------------------------------------------------
    def update_entropy_tables(self) -> None:
        """Rebuilds the CDF tables of both entropy models from the current parameters."""
        self.entropy_model_z.update_tables()
        self.entropy_model_y.update_tables()

    def aux_loss(self) -> Tensor:
        """Quantile-fitting loss of the entropy bottleneck (for the auxiliary optimizer), in float32."""
        with torch.autocast(device_type=self.entropy_model_z.quantiles.device.type, enabled=False):
            return self.entropy_model_z.loss()


def _condition_tensor(name: str, value: Scalar | None, batch: int, low: float, high: float) -> Tensor:
    if value is None:
        raise ValueError(f"{name} is required for this model (a number in [{low:g}, {high:g}])")
    t = torch.as_tensor(value, dtype=torch.float32).detach().reshape(-1).cpu()
    if t.numel() not in (1, batch):
        raise ValueError(f"{name} must be a scalar or have one value per image ({batch}), got {t.numel()}")
    if not torch.isfinite(t).all() or (t < low).any() or (t > high).any():
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {t.tolist()}")
    return t


def check_image_batch(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected images of shape (B, 3, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"expected a non-empty batch of images, got shape {tuple(x.shape)}")
