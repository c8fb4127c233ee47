"""`crdr compress` / `crdr decompress` on hostile and unusual inputs: a documented result for each case.

The corpus is generated here from the bundled Kodak images (nothing downloaded). Every case runs
in-process through the CLI entry point and is bounded in time by the pytest-timeout of the suite.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import GOLDEN_TINY, KODAK, ROOT, tiny_model
from crdr import load_model, save_generator
from crdr.cli.main import main
from crdr.codec import Bitstream, BitstreamError, Codec
from crdr.io.images import read_image

CKPT = str(GOLDEN_TINY / "official_ckpt.pth")


def _kodak_rgb(height: int, width: int) -> np.ndarray:
    return np.asarray(Image.open(KODAK[1]).convert("RGB"))[:height, :width]


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def _corpus(folder):
    """name -> (path, expected (height, width, first pixel RGB in 0..255) or None for unreadable)."""
    rgb = _kodak_rgb(40, 48)
    gray = rgb[..., 1]
    cases = {}
    cases["gray"] = _save(Image.fromarray(gray, "L"), folder / "gray.png")
    cases["gray_alpha"] = _save(Image.fromarray(gray, "L").convert("LA"), folder / "gray_alpha.png")
    rgba = Image.fromarray(rgb).convert("RGBA")
    rgba.putalpha(0)  # fully transparent: the stored colour is kept
    cases["rgba"] = _save(rgba, folder / "rgba.png")
    cases["palette"] = _save(Image.fromarray(rgb).quantize(16), folder / "palette.png")
    # 16-bit samples off the exact multiples of 257; round(v / 257) recovers the 8-bit value
    wide = (gray.astype(np.uint16) * 257 + (gray < 255) * 128).astype(np.uint16)
    cases["gray16"] = _save(Image.fromarray(wide), folder / "gray16.png")
    cases["cmyk"] = _save(Image.fromarray(rgb).convert("CMYK"), folder / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    cases["exif_rotated"] = _save(Image.fromarray(rgb), folder / "exif_rotated.jpg", quality=95, exif=exif)
    cases["one_pixel"] = _save(Image.fromarray(rgb[:1, :1]), folder / "one_pixel.png")
    cases["one_by_5000"] = _save(Image.fromarray(np.tile(rgb[:1, :1], (1, 5000, 1))), folder / "one_by_5000.png")
    cases["too_large"] = _save(Image.new("1", (5000, 3000)), folder / "too_large.png")  # 15 MP > --max-pixels
    cases["bomb"] = _save(Image.new("1", (20000, 10000)), folder / "bomb.png")  # over PIL's bomb limit
    (folder / "empty.png").write_bytes(b"")
    cases["empty"] = folder / "empty.png"
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format="PNG")
    (folder / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    cases["truncated_png"] = folder / "truncated.png"
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[:200])
    cases["truncated_jpeg"] = folder / "truncated.jpg"
    (folder / "not_an_image.png").write_text("plain text, not a PNG")
    cases["not_an_image"] = folder / "not_an_image.png"
    return cases


#: name -> (height, width) of the decoded image, or the text of the skip message for refused inputs.
EXPECTED = {
    "gray": (40, 48),
    "gray_alpha": (40, 48),
    "rgba": (40, 48),
    "palette": (40, 48),
    "gray16": (40, 48),
    "cmyk": (40, 48),
    "exif_rotated": (48, 40),  # displayed orientation
    "one_pixel": (1, 1),
    "one_by_5000": (1, 5000),
    "too_large": "5000x3000 is more than --max-pixels=12000000 pixels",
    "bomb": "decompression bomb",
    "empty": "not a readable image",
    "truncated_png": "not a readable image",
    "truncated_jpeg": "not a readable image",
    "not_an_image": "not a readable image",
}


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    cases = _corpus(folder)
    out = tmp_path_factory.mktemp("streams")
    status = main(["compress", str(folder), "--checkpoint", CKPT, "-q", "1", "-o", str(out)])
    return cases, out, status


def test_a_folder_with_bad_files_compresses_the_good_ones_and_reports_the_rest(compressed, capsys):
    cases, out, status = compressed
    assert status == 1  # some inputs were skipped
    streams = {p.stem for p in out.glob("*.crdr")}
    assert streams == {name for name, expected in EXPECTED.items() if isinstance(expected, tuple)}
    assert set(cases) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_input_has_its_documented_outcome(compressed, tmp_path, capsys, name):
    cases, out, _ = compressed
    expected = EXPECTED[name]
    if isinstance(expected, str):
        assert main(["compress", str(cases[name]), "--checkpoint", CKPT, "-q", "1", "-o", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert f"skipped {cases[name]}" in err and expected in err and "Traceback" not in err
        assert not list(tmp_path.glob("*.crdr"))
        return
    stream = Bitstream.from_bytes((out / f"{name}.crdr").read_bytes())
    assert (stream.height, stream.width) == expected
    assert main(["decompress", str(out / f"{name}.crdr"), "--checkpoint", CKPT, "-o", str(tmp_path)]) == 0
    assert read_image(tmp_path / f"{name}.png").shape == (1, 3, *expected)


def test_colour_conversions_are_the_documented_ones(compressed):
    cases, _, _ = compressed
    rgb = torch.from_numpy(_kodak_rgb(40, 48).copy()).permute(2, 0, 1).float() / 255
    green = rgb[1]
    for name in ("gray", "gray_alpha", "gray16"):  # gray replicated; 16 bits scaled, not clipped
        assert torch.equal(read_image(cases[name])[0], green.expand(3, -1, -1)), name
    assert torch.equal(read_image(cases["rgba"])[0], rgb)  # alpha dropped, colour kept
    stored = torch.from_numpy(np.array(Image.open(cases["exif_rotated"]).convert("RGB"))).permute(2, 0, 1) / 255
    assert torch.equal(read_image(cases["exif_rotated"])[0], torch.rot90(stored, k=-1, dims=(1, 2)))  # as displayed
    cmyk = read_image(cases["cmyk"])[0]
    assert (cmyk - rgb).abs().mean() < 0.05  # PIL's naive CMYK round trip, JPEG-compressed


def test_missing_inputs_and_unwritable_outputs_are_one_line_errors(tmp_path, capsys):
    missing = tmp_path / "nope.png"
    assert main(["compress", str(missing), "--checkpoint", CKPT, "-q", "1", "-o", str(tmp_path / "out")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    image = tmp_path / "a.png"
    Image.fromarray(_kodak_rgb(16, 16)).save(image)
    assert main(["compress", str(image), "--checkpoint", CKPT, "-q", "1", "-o", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["compress", str(empty), "--checkpoint", CKPT, "-q", "1", "-o", str(tmp_path)]) == 2
    assert "no .png/.jpg/.jpeg files" in capsys.readouterr().err


def _damaged_streams(good: bytes, other_model: bytes) -> dict[str, bytes]:
    stream = Bitstream.from_bytes(good)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    huge = bytearray(good)
    huge[22:26] = (1 << 20).to_bytes(4, "little")  # height, CRC fixed below: refused before any allocation
    huge[-4:] = zlib.crc32(bytes(huge[:-4])).to_bytes(4, "little")
    forged = Bitstream(stream.fingerprint, stream.height, stream.width, stream.q, (b"\x00" * 8, b"\xff" * 64), 1)
    return {
        "empty": b"",
        "truncated": good[: len(good) - 7],
        "random": bytes(range(256)) * 2,
        "flipped_bit": bytes(flipped),
        "wrong_magic": b"RIFF" + good[4:],
        "unknown_version": good[:4] + bytes([9]) + good[5:],
        "huge_dimensions": bytes(huge),
        "inconsistent_lengths": good + b"trailing",
        "other_model": other_model,
        "forged_payload": forged.to_bytes(),  # valid container and CRC, garbage strings
        "device_entropy": dataclasses.replace(stream, entropy_device="cuda").to_bytes(),
    }


#: damaged stream -> the words of its one-line error.
DAMAGED = {
    "empty": "wrong magic",
    "truncated": "do not match the file size",
    "random": "wrong magic",
    "flipped_bit": "checksum mismatch",
    "wrong_magic": "wrong magic",
    "unknown_version": "unsupported bitstream version 9",
    "huge_dimensions": "outside the supported range",
    "inconsistent_lengths": "do not match the file size",
    "other_model": "another model",
    "forged_payload": "symbols checksum",
    "device_entropy": "--entropy-parameters device --device cuda",
}


def test_damaged_streams_are_reported_one_line_each_and_the_good_one_decodes(tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(_kodak_rgb(40, 56)).save(image)
    other = tmp_path / "other.safetensors"
    save_generator(tiny_model("crdr", seed=9), other)
    for checkpoint, out in ((CKPT, tmp_path / "good"), (str(other), tmp_path / "other")):
        assert main(["compress", str(image), "--checkpoint", checkpoint, "-q", "2", "-o", str(out)]) == 0
    good = (tmp_path / "good" / "a.crdr").read_bytes()
    streams = tmp_path / "streams"
    streams.mkdir()
    (streams / "good.crdr").write_bytes(good)
    for name, data in _damaged_streams(good, (tmp_path / "other" / "a.crdr").read_bytes()).items():
        (streams / f"{name}.crdr").write_bytes(data)
    capsys.readouterr()
    assert main(["decompress", str(streams), "--checkpoint", CKPT, "-o", str(tmp_path / "rec")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == len(DAMAGED) and "Traceback" not in captured.err
    for name, words in DAMAGED.items():
        assert [line for line in lines if f"{name}.crdr:" in line and words in line], (name, lines)
    assert [p.name for p in (tmp_path / "rec").iterdir()] == ["good.png"]


@pytest.mark.slow
def test_the_fuzz_target_runs(tmp_path):
    target = ROOT / "fuzz" / "bitstream.py"
    result = subprocess.run(
        [sys.executable, str(target), "-runs=150", "-timeout=30", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Done 150 runs" in result.stderr


def test_damaged_containers_are_refused_before_any_model_is_loaded(tmp_path, capsys, monkeypatch):
    image = tmp_path / "a.png"
    Image.fromarray(_kodak_rgb(24, 40)).save(image)
    assert main(["compress", str(image), "--checkpoint", CKPT, "-q", "1", "-o", str(tmp_path / "s")]) == 0
    good = (tmp_path / "s" / "a.crdr").read_bytes()
    for cut in range(len(good)):  # truncated at every byte offset
        with pytest.raises(BitstreamError):
            Bitstream.from_bytes(good[:cut])
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for cut in (0, 3, 30, len(good) - 1):
        (damaged / f"cut{cut}.crdr").write_bytes(good[:cut])

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded for invalid containers")

    monkeypatch.setattr("crdr.cli.codec_commands.load_model", no_model)
    capsys.readouterr()
    assert main(["decompress", str(damaged), "--checkpoint", CKPT, "-o", str(tmp_path / "rec")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 4


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 80),
    width=st.integers(1, 80),
    q=st.floats(0, 4, width=32),
    z=st.binary(max_size=64),
    y=st.binary(max_size=512),
    checksum=st.one_of(st.none(), st.integers(0, (1 << 32) - 1)),
    bfloat16=st.booleans(),
    entropy=st.sampled_from(["portable", "device"]),
)
def test_the_decoder_refuses_or_survives_any_payload_in_a_valid_container(
    height, width, q, z, y, checksum, bfloat16, entropy
):
    codec = _golden_codec(entropy)
    data = Bitstream(codec.fingerprint, height, width, q, (z, y), checksum, bfloat16, codec.entropy_device).to_bytes()
    try:
        image = codec.decompress(data, 1.0)
    except BitstreamError as err:
        assert "symbols checksum" in str(err)
        return
    assert checksum is None  # without a checksum, garbage decodes to some image of the stored size
    assert image.shape == (1, 3, height, width) and bool(torch.isfinite(image).all())


@functools.cache
def _golden_codec(entropy_parameters: str = "portable") -> Codec:
    return Codec(load_model(CKPT), entropy_parameters=entropy_parameters)
