"""The `crdr` command line."""

from __future__ import annotations

import csv

from conftest import GOLDEN_TINY
from crdr.cli.main import main
from crdr.io import read_image
from crdr.io import write_image as save_png


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
