"""The `crdr` command line."""

from __future__ import annotations

import csv
import gc
import os
import subprocess
import sys

import pytest
import torch

from conftest import GOLDEN_TINY, KODAK, ROOT, tiny_model
from crdr import load_model, save_generator
from crdr.cli.main import main
from crdr.codec import Bitstream
from crdr.io.images import read_image
from crdr.io.images import write_image as save_png


def test_reconstruct_writes_images_and_a_results_table(tmp_path, kodak):
    src = tmp_path / "crop.png"
    save_png(kodak[0][:, :, :80, :100], src)
    out = tmp_path / "out"
    argv = ["reconstruct", str(src), "--checkpoint", str(GOLDEN_TINY / "official_ckpt.pth")]
    assert main([*argv, "-q", "0,4", "--beta", "0,5.12", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["crop_q0_beta0.png", "crop_q0_beta5.12.png", "crop_q4_beta0.png", "crop_q4_beta5.12.png"]
    assert read_image(out / "crop_q4_beta0.png").shape == (1, 3, 80, 100)
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert float(rows[0]["bpp_estimate"]) < float(rows[2]["bpp_estimate"])  # q=0 vs q=4 at beta=0


def test_reconstruct_reports_user_errors_without_a_traceback(tmp_path, capsys):
    code = main(["reconstruct", str(tmp_path), "--checkpoint", str(tmp_path / "nope.pth"), "-o", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "Traceback" not in err


def test_compress_then_decompress_at_three_betas_with_both_checkpoint_formats(tmp_path, kodak):
    images = tmp_path / "images"
    for i, img in enumerate(kodak):
        save_png(img[:, :, 128 : 128 + 40 + 10 * i, 256 : 256 + 72], images / f"img{i}.png")
    official = str(GOLDEN_TINY / "official_ckpt.pth")
    ours = str(save_generator(load_model(official), tmp_path / "model.safetensors"))
    for label, ckpt in (("official", official), ("ours", ours)):
        out, rec = tmp_path / f"out_{label}", tmp_path / f"rec_{label}"
        assert main(["compress", str(images), "--checkpoint", ckpt, "-q", "2", "-o", str(out)]) == 0
        streams = sorted(out.glob("*.crdr"))
        assert [p.name for p in streams] == ["img0.crdr", "img1.crdr", "img2.crdr"]
        with open(out / "summary.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["file", "height", "width", "bytes", "bpp", "q", "seconds"]
        assert [int(r["bytes"]) for r in rows] == [p.stat().st_size for p in streams]
        assert (
            main(["decompress", *map(str, streams), "--checkpoint", ckpt, "--beta", "0,2.56,5.12", "-o", str(rec)]) == 0
        )
        assert len(list(rec.glob("*.png"))) == 9
        assert read_image(rec / "img1_beta2.56.png").shape == (1, 3, 50, 72)
    same_stream = (tmp_path / "out_official" / "img0.crdr").read_bytes()
    assert same_stream == (tmp_path / "out_ours" / "img0.crdr").read_bytes()
    fast = tmp_path / "rec_bf16"
    stream = str(tmp_path / "out_ours" / "img1.crdr")
    assert (
        main(["decompress", stream, "--checkpoint", ours, "--beta", "2.56", "--precision", "bfloat16", "-o", str(fast)])
        == 0
    )
    error = (read_image(fast / "img1.png") - read_image(tmp_path / "rec_ours" / "img1_beta2.56.png")).abs()
    assert 0 < error.max() <= 3 / 255
    bf16_out, bf16_rec = tmp_path / "out_bf16", tmp_path / "rec_from_bf16"
    argv = ["compress", str(images), "--checkpoint", ours, "-q", "2", "--precision", "bfloat16", "-o", str(bf16_out)]
    assert main(argv) == 0
    data = (bf16_out / "img1.crdr").read_bytes()
    assert Bitstream.from_bytes(data).bfloat16_context
    float32_size = (tmp_path / "out_ours" / "img1.crdr").stat().st_size
    assert abs(len(data) - float32_size) <= 0.01 * float32_size + 4
    assert main(["decompress", str(bf16_out / "img1.crdr"), "--checkpoint", ours, "-o", str(bf16_rec)]) == 0
    assert read_image(bf16_rec / "img1.png").shape == (1, 3, 50, 72)


def test_decompress_with_the_wrong_checkpoint_is_a_one_line_error(tmp_path, kodak, capsys):
    src = tmp_path / "a.png"
    save_png(kodak[0][:, :, :20, :20], src)
    assert (
        main(
            [
                "compress",
                str(src),
                "--checkpoint",
                str(GOLDEN_TINY / "official_ckpt.pth"),
                "-q",
                "1",
                "-o",
                str(tmp_path),
            ]
        )
        == 0
    )
    other = save_generator(tiny_model("crdr", seed=9), tmp_path / "other.safetensors")
    capsys.readouterr()
    assert main(["decompress", str(tmp_path / "a.crdr"), "--checkpoint", str(other), "-o", str(tmp_path / "r")]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and "skipped" in err and "another model" in err
    assert "decoded 0 of 1 file(s)" in captured.out and not list((tmp_path / "r").glob("*.png"))


def test_device_entropy_streams_decode_only_with_the_flag(tmp_path, kodak, capsys):
    src = tmp_path / "a.png"
    save_png(kodak[1][:, :, :40, :56], src)
    ckpt = str(GOLDEN_TINY / "official_ckpt.pth")
    portable, device = tmp_path / "portable", tmp_path / "device"
    assert main(["compress", str(src), "--checkpoint", ckpt, "-q", "2", "-o", str(portable)]) == 0
    argv = ["compress", str(src), "--checkpoint", ckpt, "-q", "2", "--entropy-parameters", "device", "-o", str(device)]
    assert main(argv) == 0
    assert Bitstream.from_bytes((device / "a.crdr").read_bytes()).entropy_device == "cpu"
    capsys.readouterr()
    decode = ["decompress", str(device / "a.crdr"), "--checkpoint", ckpt, "-o"]
    assert main([*decode, str(tmp_path / "refused")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--entropy-parameters device --device cpu" in err
    assert main([*decode, str(tmp_path / "rec"), "--entropy-parameters", "device"]) == 0
    assert main(["decompress", str(portable / "a.crdr"), "--checkpoint", ckpt, "-o", str(tmp_path / "rec_p")]) == 0
    assert torch.equal(read_image(tmp_path / "rec" / "a.png"), read_image(tmp_path / "rec_p" / "a.png"))


def test_shard_packs_a_folder_into_tar_shards(tmp_path, capsys):
    assert main(["shard", str(KODAK[0].parent), "-o", str(tmp_path), "--images-per-shard", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar", "shard-000001.tar"]
    assert "packed 3 image(s) into 2 shard(s)" in capsys.readouterr().out
    assert main(["shard", str(tmp_path), "-o", str(tmp_path / "none")]) == 2  # no images there: a clear error
    assert "no .png/.jpg/.jpeg files" in capsys.readouterr().err


def test_parsing_and_every_help_import_no_torch():
    """``crdr --help`` and each subcommand's ``--help`` run without importing torch or the numeric stack
    (``crdr evaluate --help``, a Hydra app, without torch)."""
    commands = [["compress"], ["decompress"], ["reconstruct"], ["plot"], ["shard"], ["score"], ["merge"], ["models"]]
    commands = [[], *commands, ["data"]]
    script = f"""
import contextlib, io, sys
from crdr.cli.main import main
for command in {commands!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main([*command, "--help"])
        except SystemExit as exit:
            assert exit.code == 0, (command, exit.code)
    assert "usage: crdr" in out.getvalue(), command
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "pandas", "matplotlib", "omegaconf"))
print(heavy)
with contextlib.redirect_stdout(io.StringIO()) as out:  # a Hydra app: Hydra, but still no torch
    try:
        main(["evaluate", "--help"])
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code
assert "powered by Hydra" in out.getvalue()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "pandas", "matplotlib")))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "[]"]


def test_argument_errors_come_before_any_model_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["compress", str(tmp_path), "--checkpoint", "x.pth", "-q", "two", "-o", str(tmp_path)])
    assert exit.value.code == 2 and "invalid float value" in capsys.readouterr().err


def test_main_called_from_python_leaves_every_object_collectable(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path), "--checkpoint", str(tmp_path / "nope.pth"), "-o", str(tmp_path)]) == 2
    assert gc.get_freeze_count() == 0 and gc.isenabled()
