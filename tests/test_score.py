"""`crdr score`: any codec's reconstructions scored like `crdr evaluate`, its consistency and its input errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from conftest import GOLDEN_TINY
from crdr.cli import parser
from crdr.cli.main import main
from crdr.evaluation import score
from crdr.evaluation.grid import SUMMARY_COLUMNS
from crdr.io.images import read_image, write_image
from crdr.metrics import inception

CKPT = GOLDEN_TINY / "official_ckpt.pth"
FAST = ["--metrics", "PSNR,LPIPS,FID", "--random-backbones", "--no-progress"]


@pytest.fixture(scope="module")
def jpeg(crops, tmp_path_factory):
    """JPEG at quality 20 and 80 of the crops: reconstructions (PNG) and coded files (JPEG) per quality."""
    root = tmp_path_factory.mktemp("jpeg")
    for quality in (20, 80):
        for original in sorted(crops.glob("*.png")):
            buffer = io.BytesIO()
            Image.open(original).save(buffer, format="JPEG", quality=quality)
            (root / f"coded{quality}").mkdir(exist_ok=True)
            (root / f"coded{quality}" / f"{original.stem}.jpg").write_bytes(buffer.getvalue())
            (root / f"rec{quality}").mkdir(exist_ok=True)
            Image.open(buffer).save(root / f"rec{quality}" / f"{original.stem}.png")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_scoring_what_evaluate_wrote_gives_its_results(crops, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["evaluate", f"checkpoint={CKPT}", f"dataset={crops}", "grid.q=[0,4]", "grid.beta=[0,5.12]"]
    argv += [f"output_dir={out}", "metrics.random_backbones=true", "metrics.dists=false", "metrics.ms_ssim=false"]
    argv += ["metrics.fid_network=pytorch-fid"]  # the network of the official CSVs (random weights here)
    assert main([*argv, "progress=false", "plots.official=null", "save_reconstructions=true"]) == 0
    points = [("0", "0"), ("0", "5.12"), ("4", "0"), ("4", "5.12")]
    recs = [str(out / "reconstructions" / f"q{q}_beta{b}") for q, b in points]
    rates = [str(out / "streams" / f"q{q}") for q, _ in points]
    scored = tmp_path / "score"
    args = ["score", str(crops), "--reconstructions", *recs, "--rates", *rates, "--codec", "crdr-tiny"]
    args += ["--quality", "0,0,4,4", "--beta", "0,5.12,0,5.12", "--dataset", crops.name]
    assert main([*args, "-o", str(scored), *FAST, "--fid-network", "pytorch-fid"]) == 0
    expected, got = _rows(out / "results.csv"), _rows(scored / "results.csv")
    for folder in (out, scored):
        run = json.loads((folder / "run.json").read_text())
        assert run["metrics"]["fid_network"] == "pytorch-fid" and run["networks"]["FID"] == "random, seed 0"
        assert all("Inception pytorch-fid InceptionV3" in r["protocol"] for r in _rows(folder / "results.csv"))
    assert len(got) == 4 and all(r["codec"] == "crdr-tiny" and r["rate_source"] == "coded" for r in got)
    for want, have in zip(expected, got, strict=True):
        for column in SUMMARY_COLUMNS:
            if column != "bpp_estimate":  # the likelihood estimate needs the model: not scored
                assert have[column] == want[column], column
    assert all(r["bpp_estimate"] == "" for r in got) and all(r["FID"] for r in got)
    per_image = _rows(scored / "per_image.csv")
    assert [r["bytes"] for r in per_image] == [r["bytes"] for r in _rows(out / "per_image.csv")]
    assert (scored / "rd_curves.png").stat().st_size > 1000
    assert main([*args, "-o", str(scored), *FAST]) == 2  # a resume with the default network, torch-fidelity: refused
    assert "holds an evaluation with other metrics, protocol" in _error(capsys)
    other = tmp_path / "score-torch-fidelity"
    assert main([*args, "-o", str(other), *FAST]) == 0
    torch_fidelity = _rows(other / "results.csv")
    assert all("Inception torch-fidelity inception-v3-compat" in r["protocol"] for r in torch_fidelity)
    assert [r["PSNR"] for r in torch_fidelity] == [r["PSNR"] for r in got]
    assert all(a["FID"] != b["FID"] for a, b in zip(torch_fidelity, got, strict=True))  # other pool3 features


def test_jpeg_from_pillow_is_scored_with_coded_and_reported_rates(crops, jpeg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no `wandb login` credentials: W&B goes offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB__SERVICE_WAIT", "300")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "300")
    (jpeg / "rates80.csv").write_text("image,bpp\na.png,1.5\nb.png,2.5\n")
    recs, rates = [str(jpeg / "rec20"), str(jpeg / "rec80")], [str(jpeg / "coded20"), str(jpeg / "rates80.csv")]
    out = tmp_path / "jpeg"
    args = ["score", str(crops), "--reconstructions", *recs, "--rates", *rates, "--codec", "JPEG"]
    published = tmp_path / "papers.csv"
    published.write_text("method,bpp,PSNR,LPIPS\nHiFiC,0.2,28.1,0.09\nHiFiC,0.5,31.0,0.05\nMS-ILLM,0.3,30.2,\n")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "results.csv").write_text("dataset,quality,beta,bpp,PSNR\nx,0,0,0.1,27\nx,4,0,0.9,33\n")
    args += ["--quality", "20,80", "-o", str(out), *FAST, "--with-official", "kodak", "--published", str(published)]
    args += ["--overlay", str(tmp_path / "ours" / "results.csv"), "--wandb", "crdr"]
    assert main(args) == 0
    low, high = _rows(out / "results.csv")
    assert (low["rate_source"], high["rate_source"]) == ("coded", "reported")
    size = sum((jpeg / "coded20" / f"{s}.jpg").stat().st_size for s in "ab")
    assert float(low["bpp"]) == pytest.approx(size * 8 / (256 * 384) / 2)
    assert float(high["bpp"]) == pytest.approx(2.0) and float(high["PSNR"]) > float(low["PSNR"])
    assert low["beta"] == "" and "resize none" in low["protocol"]
    figure = (out / "rd_curves.svg").read_text()
    assert "JPEG" in figure and "ours, beta=0" in figure and "official CRDR kodak (as published)" in figure
    assert "HiFiC (as published)" in figure and "MS-ILLM (as published)" in figure
    (run,) = (out / "wandb").glob("offline-run-*")
    (table,) = (run / "files" / "media" / "table").glob("results_*.table.json")  # written before wandb.log returns
    assert "rate_source" in table.read_text() and list((run / "files" / "media" / "table" / "rd").glob("PSNR_*"))


def _score(crops, rec, rate, out, *extra):
    args = ["score", str(crops), "--reconstructions", str(rec), "--rates", str(rate), "--codec", "x"]
    return main([*args, "-o", str(out), *FAST, *extra])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_input_errors_are_one_line_messages(crops, jpeg, tmp_path, capsys):
    rec, coded, out = tmp_path / "rec", jpeg / "coded20", tmp_path / "out"
    rec.mkdir()
    decoded = read_image(jpeg / "rec20" / "a.png")
    write_image(decoded, rec / "a.png")
    assert _score(crops, rec, coded, out) == 2
    assert "no reconstruction of b.png" in _error(capsys)
    write_image(decoded[:, :, :200], rec / "b.png")
    assert _score(crops, rec, coded, out) == 2
    assert "384x200, its original b.png is 384x256" in _error(capsys)
    assert _score(crops, rec, coded, out, "--resize", "bicubic") == 0  # a named rule resizes it
    assert "resize bicubic" in _rows(out / "results.csv")[0]["protocol"]
    (rec / "b.png").write_bytes(b"not an image")
    assert _score(crops, rec, coded, tmp_path / "out2") == 2
    assert "b.png: not a readable image" in _error(capsys)
    bad = tmp_path / "rates.csv"
    bad.write_text("image,size\na.png,100\n")
    assert _score(crops, jpeg / "rec20", bad, tmp_path / "out3") == 2
    assert "needs columns image and bytes or bpp" in _error(capsys)
    bad.write_text("image,bytes\na.png,100\nb.png,lots\n")
    assert _score(crops, jpeg / "rec20", bad, tmp_path / "out3") == 2
    assert "rates.csv, line 3: bytes must be a non-negative number" in _error(capsys)
    bad.write_text("image,bytes\na.png,100\n")
    assert _score(crops, jpeg / "rec20", bad, tmp_path / "out3") == 2
    assert "no row for image b" in _error(capsys)
    assert _score(crops, jpeg / "rec20", tmp_path / "missing.csv", tmp_path / "out3") == 2
    assert "missing.csv: no such folder or CSV file" in _error(capsys)
    bad.write_text("method,PSNR\nHiFiC,28\n")
    assert _score(crops, jpeg / "rec20", jpeg / "coded20", tmp_path / "out4", "--published", str(bad)) == 2
    assert "rates.csv: missing column(s) bpp" in _error(capsys)
    assert not (tmp_path / "out4").exists()  # found before anything was scored


def test_missing_pytorch_fid_weights_are_a_one_line_error_naming_the_file(crops, jpeg, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "out"
    args = ["score", str(crops), "--reconstructions", str(jpeg / "rec20"), "--rates", str(jpeg / "coded20")]
    assert main([*args, "--codec", "x", "-o", str(out), "--metrics", "FID", "--fid-network", "pytorch-fid"]) == 2
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert (
        f"pt_inception-2015-12-05-6726825d.pth (pytorch-fid FID Inception-v3 weights, for FID/KID) not found at "
        f"{folder / 'pt_inception-2015-12-05-6726825d.pth'}; put the file in {folder}" in _error(capsys)
    )
    assert not out.exists()


def test_the_torch_free_parser_offers_exactly_the_resize_rules_scoring_knows():
    assert set(parser.RESIZE_RULES) == set(score.RESIZE_RULES)
    assert parser.FID_NETWORKS == inception.FID_NETWORKS
