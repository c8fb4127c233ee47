"""Real bitstreams: byte equality with the official coder, exact round trips, several betas, rates."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import GOLDEN_TINY, LATENT_TOLERANCE, PIXEL_TOLERANCE, tiny_model
from crdr import load_model
from crdr.codec import Bitstream, BitstreamError, Codec, bits_per_pixel
from crdr.codec.codec import entropy_parameters_for
from crdr.codec.target_rate import compress_to_bpp
from crdr.io.errors import ConfigError
from crdr.metrics.image import psnr_8bit
from crdr.models.generator import bits

CKPT = GOLDEN_TINY / "official_ckpt.pth"
OTHER_PROCESS = Path(__file__).parent / "codec_in_another_process.py"


@pytest.fixture(scope="module")
def codec():
    return Codec(load_model(CKPT))


@pytest.fixture(scope="module")
def fast_codec(codec):
    return Codec(codec.model, encoder_dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def device_codec(codec):
    """Entropy parameters on the codec's device (here the CPU) with deterministic algorithms."""
    return Codec(codec.model, entropy_parameters="device")


def _bytes(t: torch.Tensor) -> bytes:
    return bytes(t.tolist())


@pytest.mark.parametrize("case_index", range(10))
def test_entropy_coded_strings_equal_the_official_ones(codec, golden, case_index):
    case = golden["cases"][case_index]
    stream = Bitstream.from_bytes(codec.compress(golden["inputs"][case["input"]], case["q"]))
    assert stream.strings == (_bytes(case["z_bytes"]), _bytes(case["y_bytes"]))
    assert (stream.height, stream.width) == (case["H"], case["W"])


@pytest.mark.parametrize("case_index", range(10))
def test_official_strings_decode_to_the_official_image(codec, golden, case_index):
    case = golden["cases"][case_index]
    header_q = case["header_bytes"][5].item() / 16  # the official header stores floor(16 q)
    strings = (_bytes(case["z_bytes"]), _bytes(case["y_bytes"]))
    data = Bitstream(codec.fingerprint, case["H"], case["W"], header_q, strings).to_bytes()
    assert (codec.decompress(data, case["beta"]) - case["dec_x_hat"]).abs().max() <= 1e-4


@pytest.mark.parametrize(("h", "w"), [(1, 1), (33, 17), (250, 190), (64, 64)])
def test_decoding_reproduces_the_eval_forward_bit_for_bit(codec, kodak, h, w):
    """In one process at one thread count: the same latents, in the same layout, through the same kernels."""
    x = kodak[2][:, :, 50 : 50 + h, 100 : 100 + w]  # a 1x1 view's strides also read as channels-last
    q, beta = 2.3, 4.1  # q is stored exactly, not to 1/16
    data = codec.compress(x, q)
    with torch.no_grad():
        expected = codec.model(x, q=q, beta=beta)
    assert torch.equal(codec.decode_latents(codec.parse(data)), expected.y_hat)
    assert torch.equal(codec.decompress(data, beta), expected.x_hat)
    assert Bitstream.from_bytes(data).q == pytest.approx(2.3, abs=1e-6)


def test_a_model_put_back_into_training_mode_codes_as_in_eval_mode(kodak):
    """The codec's model is shared: training mode (no clamp, straight-through rounding) changes no byte or pixel."""
    codec = Codec(load_model(CKPT))
    x = kodak[0][:, :, :96, :80]
    data = codec.compress(x, 3.5)
    pixels = codec.decompress(data, 5.12)
    codec.model.train()
    assert codec.compress(x, 3.5) == data
    assert torch.equal(codec.decompress(data, 5.12), pixels)
    assert pixels.min() >= 0 and pixels.max() <= 1


def test_file_size_matches_the_likelihood_estimate(codec, kodak):
    # At q >= 2 this random tiny model puts many symbols in the escape range, which the estimate
    # prices at the likelihood floor (about 30 bits) and rANS codes more cheaply.
    x = kodak[1][:, :, 100:356, 200:456]
    for q in (0.0, 0.5, 1.0):
        stream = Bitstream.from_bytes(codec.compress(x, q))
        with torch.no_grad():
            out = codec.model(x, q=q, beta=0.0)
        estimate = (bits(out.y_likelihoods) + bits(out.z_likelihoods)).item() / 8
        payload = sum(map(len, stream.strings))
        assert abs(payload - estimate) <= 0.01 * estimate + 8, (q, payload, estimate)


@pytest.mark.parametrize("config", ["golden", "crdr_hyperprior"])
def test_the_decoder_prices_the_latents_as_the_model_estimates_them(codec, kodak, config):
    """decode_latents_and_bits gives model.estimate_bpp x pixels (evaluation needs no second analysis)."""
    model_codec = codec if config == "golden" else Codec(tiny_model(config))
    x = kodak[2][:, :, 37:237, 11:311]  # 200 x 300: padded to 208 x 304 inside
    for q in (0.0, 2.5, 4.0):
        y_hat, information = model_codec.decode_latents_and_bits(model_codec.parse(model_codec.compress(x, q)))
        with torch.no_grad():
            estimate = float(model_codec.model.estimate_bpp(x, q)[0])
        assert information / (200 * 300) == pytest.approx(estimate, rel=1e-5)
        assert not y_hat.requires_grad


def test_one_stream_decodes_at_several_betas(codec, kodak):
    x = kodak[0][:, :, 300:396, 500:628]
    data = codec.compress(x, 3.0)
    many = codec.decompress_many(data, [0.0, 2.56, 5.12])
    for beta, image in zip([0.0, 2.56, 5.12], many, strict=True):
        assert torch.equal(image, codec.decompress(data, beta))
    assert (many[0] - many[2]).abs().max() > 0.05


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_synthesis_decodes_the_same_latents_to_nearby_pixels(codec, kodak, dtype):
    x = kodak[2][:, :, 60:185, 90:153]  # odd size: padding and cropping under autocast
    data = codec.compress(x, 2.0)
    fast = Codec(codec.model, synthesis_dtype=dtype)
    assert torch.equal(fast.decode_latents(fast.parse(data)), codec.decode_latents(codec.parse(data)))
    reference, image = codec.decompress(data, 3.0), fast.decompress(data, 3.0)
    assert image.dtype == torch.float32 and image.shape == reference.shape == x.shape
    error = (image - reference).abs()
    assert 0 < error.max() <= 3 / 255 and error.mean() <= 0.5 / 255


def _in_another_process(x: torch.Tensor, data: bytes, dtype: str, tmp_path: Path) -> dict[str, dict]:
    """Encodes x and decodes data in a process with another thread count, with oneDNN on and off (see the
    script); this process uses oneDNN."""
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "ours.crdr").write_bytes(data)
    threads = 2 if torch.get_num_threads() == 1 else 1
    args = [CKPT, tmp_path / "x.pt", tmp_path / "ours.crdr", dtype, threads, tmp_path]
    subprocess.run([sys.executable, OTHER_PROCESS, *map(str, args)], capture_output=True, check=True)
    assert torch.backends.mkldnn.enabled
    results = {}
    for backend in ("onednn", "native"):
        decoded = torch.load(tmp_path / f"{backend}.pt", weights_only=True)
        results[backend] = {"stream": (tmp_path / f"{backend}.crdr").read_bytes(), **decoded}
    return results


def test_float32_streams_are_identical_across_processes_thread_counts_and_conv_backends(codec, kodak, tmp_path):
    """The guarantee of docs/bitstream.md: the same bytes and symbols everywhere, latents and pixels within
    tolerance (other thread counts and kernels round the means and the synthesis differently)."""
    x = kodak[0]  # a whole image: small crops hide layout-dependent rounding (it happened, with crops passing)
    data = codec.compress(x, 1.75)
    latents = codec.decode_latents(codec.parse(data))
    image = codec.decompress(data, 2.0)
    for backend, theirs in _in_another_process(x, data, "float32", tmp_path).items():
        assert theirs["stream"] == data, backend
        assert "error" not in theirs, (backend, theirs.get("error"))  # the symbols checksum passed
        torch.testing.assert_close(theirs["latents"], latents, **LATENT_TOLERANCE)
        assert (theirs["image"] - image).abs().max() <= PIXEL_TOLERANCE, backend


def test_bfloat16_streams_decode_exactly_on_the_same_kernels_and_never_wrongly_on_others(fast_codec, kodak, tmp_path):
    """oneDNN's bfloat16 kernels round alike at any thread count; another backend's bfloat16 arithmetic
    (like another CPU's) gives other means and scales: the decoder then refuses the stream."""
    x = kodak[0]
    data = fast_codec.compress(x, 1.75)
    latents = fast_codec.decode_latents(fast_codec.parse(data))
    image = Codec(fast_codec.model).decompress(data, 2.0)
    theirs = _in_another_process(x, data, "bfloat16", tmp_path)
    assert theirs["onednn"]["stream"] == data
    torch.testing.assert_close(theirs["onednn"]["latents"], latents, **LATENT_TOLERANCE)
    assert (theirs["onednn"]["image"] - image).abs().max() <= PIXEL_TOLERANCE
    native = theirs["native"]
    if "error" in native:
        assert "symbols checksum" in native["error"]
    else:  # a backend that happens to round like oneDNN decodes it exactly
        torch.testing.assert_close(native["latents"], latents, **LATENT_TOLERANCE)


@pytest.mark.parametrize("image_index", range(3))
def test_bfloat16_encoder_streams_decode_exactly_at_the_same_rate(codec, fast_codec, kodak, image_index):
    x = kodak[image_index]  # whole images (see above)
    for q in (0.0, 2.0, 4.0):
        data, reference = fast_codec.compress(x, q), codec.compress(x, q)
        stream = Bitstream.from_bytes(data)
        assert stream.bfloat16_context
        assert abs(len(data) - len(reference)) <= 0.01 * len(reference), (q, len(data), len(reference))
        # any codec of the model decodes it (the flag, not the codec, picks the context-model path),
        # and the symbols checksum in the file proves the symbols are the encoded ones
        latents = codec.decode_latents(codec.parse(data))
        assert torch.equal(latents, fast_codec.decode_latents(fast_codec.parse(data)))
        quality, reference_quality = (psnr_8bit(x, codec.decompress(d, 0.0)) for d in (data, reference))
        assert abs(quality - reference_quality) <= 0.1, (q, quality, reference_quality)


def test_a_decoder_computing_other_entropy_parameters_fails_on_the_symbols_checksum(codec, fast_codec, kodak):
    data = fast_codec.compress(kodak[2][:, :, 200:328, 300:428], 3.0)
    stream = Bitstream.from_bytes(data)
    # clearing the flag makes the decoder run its context model in float32: other means and scales
    as_float32 = dataclasses.replace(stream, bfloat16_context=False).to_bytes()
    with pytest.raises(BitstreamError, match="symbols checksum"):
        codec.decompress(as_float32, 0.0)
    wrong_sum = dataclasses.replace(stream, symbols_crc=stream.symbols_crc ^ 1).to_bytes()
    with pytest.raises(BitstreamError, match="symbols checksum"):
        codec.decompress(wrong_sum, 0.0)
    with pytest.raises(ValueError, match="encoder_dtype"):
        Codec(codec.model, encoder_dtype=torch.float16)


def test_a_stream_from_another_model_is_refused(codec, kodak):
    other = Codec(tiny_model("crdr", seed=11))
    data = other.compress(kodak[0][:, :, :32, :32], 1.0)
    with pytest.raises(BitstreamError, match="another model"):
        codec.decompress(data, 0.0)


def test_target_bpp_search_hits_the_rate(codec, kodak):
    x = kodak[2][:, :, 100:356, 300:556]
    pixels = x.shape[-1] * x.shape[-2]
    low, high = (len(codec.compress(x, q)) * 8 / pixels for q in (1.0, 3.0))
    target = (low + high) / 2
    result = compress_to_bpp(codec, x, target)
    assert result.bpp <= target
    assert result.bpp == pytest.approx(target, rel=0.03)
    assert 1.0 < result.q < 3.0
    assert len(result.data) * 8 / pixels == result.bpp == bits_per_pixel(len(result.data), *x.shape[-2:])


def test_bits_per_pixel_counts_eight_bits_per_byte_over_the_pixels():
    assert bits_per_pixel(12, 4, 6) == 4.0
    assert bits_per_pixel(0, 3, 5) == 0.0
    assert bits_per_pixel(5, 3, 7) == 40 / 21  # one division: the value the CSVs always had


def test_single_rate_models_code_without_q(kodak):
    codec = Codec(tiny_model("crdr_stage1_hyperprior", seed=2))
    x = kodak[1][:, :, :48, :80]
    data = codec.compress(x)
    assert Bitstream.from_bytes(data).q is None
    with torch.no_grad():
        assert torch.equal(codec.decompress(data), codec.model(x).x_hat)
    with pytest.raises(ValueError, match="no quality level"):
        codec.compress(x, 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_codec_streams_decode_on_the_cpu_too(kodak):
    x = kodak[0][:, :, :200, :300]
    gpu = Codec(load_model(CKPT), device="cuda")
    cpu = Codec(load_model(CKPT), device="cpu")
    data = gpu.compress(x, 2.5)
    on_gpu = gpu.decompress(data, 1.0)
    assert torch.equal(on_gpu, gpu.decompress(data, 1.0))  # deterministic
    difference = (on_gpu - cpu.decompress(data, 1.0)).abs().max().item()
    assert difference <= 1 / 255, difference  # 3e-7 on an H100
    # the entropy parameters ran on the CPU on both sides: the latents are identical
    assert torch.equal(gpu.decode_latents(gpu.parse(data)), cpu.decode_latents(cpu.parse(data)))


@pytest.mark.parametrize(("h", "w", "config"), [(33, 17, "golden"), (250, 190, "golden"), (70, 90, "crdr_hyperprior")])
def test_device_entropy_streams_decode_to_the_eval_forward(codec, device_codec, kodak, h, w, config):
    """On the CPU the device mode runs the same networks under deterministic algorithms: the same strings
    as the portable path (only the header differs) and the eval forward's latents and pixels."""
    if config != "golden":
        model = tiny_model(config)
        codec, device_codec = Codec(model), Codec(model, entropy_parameters="device")
    x = kodak[1][:, :, 40 : 40 + h, 70 : 70 + w]
    torch.use_deterministic_algorithms(False)
    data = device_codec.compress(x, 2.3)
    stream, portable = Bitstream.from_bytes(data), Bitstream.from_bytes(codec.compress(x, 2.3))
    assert stream.entropy_device == "cpu" and portable.entropy_device is None
    assert stream.strings == portable.strings and stream.symbols_crc == portable.symbols_crc
    with torch.no_grad():
        expected = device_codec.model(x, q=2.3, beta=4.1)
    y_hat, information = device_codec.decode_latents_and_bits(device_codec.parse(data))
    torch.testing.assert_close(y_hat, expected.y_hat, **LATENT_TOLERANCE)
    assert y_hat.device.type == "cpu"
    assert information == pytest.approx(codec.decode_latents_and_bits(codec.parse(portable.to_bytes()))[1])
    assert (device_codec.decompress(data, 4.1) - expected.x_hat).abs().max() <= PIXEL_TOLERANCE
    assert not torch.are_deterministic_algorithms_enabled()  # the setting is restored after coding


def test_the_deterministic_setting_is_restored_as_it_was(device_codec, kodak):
    x = kodak[0][:, :, :32, :48]
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        device_codec.decompress(device_codec.compress(x, 1.0), 0.0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory
    finally:
        torch.use_deterministic_algorithms(False)


def test_portable_and_device_decoders_refuse_each_others_streams(codec, device_codec, kodak):
    x = kodak[2][:, :, 100:164, 200:296]
    device_data, portable_data = device_codec.compress(x, 1.5), codec.compress(x, 1.5)
    assert device_data[5] & 0x08 and not portable_data[5] & 0x08  # the header flag
    with pytest.raises(BitstreamError, match=r"computed on a cpu device .*entropy-parameters device --device cpu"):
        codec.decompress(device_data, 0.0)
    with pytest.raises(BitstreamError, match=r"portable entropy parameters .*entropy_parameters='portable'"):
        device_codec.decompress(portable_data, 0.0)
    stream = Bitstream.from_bytes(device_data)
    from_cuda = dataclasses.replace(stream, entropy_device="cuda").to_bytes()
    with pytest.raises(BitstreamError, match="computed on a cuda device, this decoder computes them on cpu"):
        device_codec.decompress(from_cuda, 0.0)
    wrong_sum = dataclasses.replace(stream, symbols_crc=stream.symbols_crc ^ 1).to_bytes()
    with pytest.raises(BitstreamError, match=r"symbols checksum.*device entropy parameters"):
        device_codec.decompress(wrong_sum, 0.0)
    with pytest.raises(ValueError, match="entropy_parameters must be portable or device"):
        Codec(codec.model, entropy_parameters="gpu")


def test_evaluation_picks_device_entropy_parameters_on_cuda_only():
    assert entropy_parameters_for("auto", "cuda:1") == "device"
    assert entropy_parameters_for("auto", "cpu") == "portable"
    assert entropy_parameters_for("portable", "cuda") == "portable"
    assert entropy_parameters_for("device", "cpu") == "device"
    with pytest.raises(ConfigError, match="auto, portable or device"):
        entropy_parameters_for("gpu", "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_entropy_streams_decode_on_the_gpu_and_are_refused_elsewhere(kodak):
    x = kodak[0][:, :, :256, :384]
    gpu = Codec(load_model(CKPT), device="cuda", entropy_parameters="device")
    portable = Codec(load_model(CKPT), device="cuda")
    data = gpu.compress(x, 2.5)
    assert data == gpu.compress(x, 2.5)  # deterministic kernels
    image = gpu.decompress(data, 1.0)
    assert torch.equal(image, gpu.decompress(data, 1.0))
    reference = portable.decompress(portable.compress(x, 2.5), 1.0)
    assert abs(psnr_8bit(x, image) - psnr_8bit(x, reference)) <= 0.1
    with pytest.raises(BitstreamError, match="computed on a cuda device"):
        portable.decompress(data, 1.0)
    with pytest.raises(BitstreamError, match="computed on a cuda device, this decoder computes them on cpu"):
        Codec(load_model(CKPT), entropy_parameters="device").decompress(data, 1.0)
