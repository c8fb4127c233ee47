"""`crdr evaluate` and `crdr plot`: the q x beta grid on real images, its CSVs, resumption and plots."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import GOLDEN_TINY
from crdr import load_model
from crdr.cli.evaluate import resolve_dataset
from crdr.cli.main import main
from crdr.codec import Codec
from crdr.config import config_dir
from crdr.evaluation.grid import IMAGE_COLUMNS, SUMMARY_COLUMNS, evaluate_grid
from crdr.evaluation.names import PAPER_BETA, PAPER_Q
from crdr.evaluation.pipeline import grid_region
from crdr.evaluation.suite import MetricConfig, MetricSuite
from crdr.io.errors import ConfigError
from crdr.io.images import read_image, write_image

CKPT = GOLDEN_TINY / "official_ckpt.pth"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_writes_the_official_columns_from_real_bitstreams(crops, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no `wandb login` credentials: W&B goes offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB__SERVICE_WAIT", "300")  # a loaded CI machine starts wandb-core slowly
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "300")
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        f"checkpoint={CKPT}",
        f"dataset={crops}",
        "grid.q=[0,4]",
        "grid.beta=[0,5.12]",
        f"output_dir={out}",
        "metrics.random_backbones=true",
        "metrics.dists=false",
        "plots.official=kodak",
        "progress=false",
        "wandb.enabled=true",
    ]
    assert main(argv) == 0
    summary = _rows(out / "results.csv")
    assert list(summary[0])[:8] == ["dataset", "quality", "beta", "bpp", "PSNR", "FID", "LPIPS", "DISTS"]
    assert [(r["quality"], r["beta"]) for r in summary] == [("0", "0"), ("0", "5.12"), ("4", "0"), ("4", "5.12")]
    assert all("random backbones" in r["note"] and r["fid_patches"] == "2" for r in summary)
    per_image = _rows(out / "per_image.csv")
    assert len(per_image) == 8 and list(per_image[0])[: len(IMAGE_COLUMNS)] == IMAGE_COLUMNS
    codec = Codec(load_model(CKPT))
    image = per_image[0]
    data = codec.compress(read_image(crops / image["image"]), 0.0)
    assert int(image["bytes"]) == len(data)  # bpp from the real bitstream ...
    assert float(image["bpp"]) == pytest.approx(len(data) * 8 / (256 * 384))
    assert float(image["bpp_estimate"]) == pytest.approx(float(image["bpp"]), rel=0.1)  # ... the estimate beside it
    assert float(summary[2]["bpp"]) > float(summary[0]["bpp"])  # q=4 costs more than q=0
    assert summary[0]["bpp"] == summary[1]["bpp"]  # beta is chosen at decode time: same stream
    assert summary[0]["PSNR"] != summary[1]["PSNR"]
    for name in ("rd_curves.png", "rd_curves.svg", "grid.png", "grid.svg"):
        assert (out / name).stat().st_size > 1000
    assert (out / ".hydra" / "config.yaml").is_file()
    (run,) = (out / "wandb").glob("offline-run-*")
    logged = b"".join(p.read_bytes() for p in run.rglob("*.wandb"))
    assert b"rd/PSNR" in logged and b"results" in logged  # the table and the RD line plots


class _CountingCodec(Codec):
    def __init__(self, model):
        super().__init__(model)
        self.compressed = []

    def compress(self, image, q=None):
        self.compressed.append(q)
        return super().compress(image, q)


def test_a_rerun_skips_finished_grid_points_and_refuses_another_setup(crops, tmp_path):
    codec = _CountingCodec(load_model(CKPT))
    images = sorted(crops.glob("*.png"))
    config = MetricConfig(lpips=False, dists=False, fid=False)
    suite = MetricSuite(config)
    evaluate_grid(codec, images, [0.0], [0.0, 2.0], suite, tmp_path, "crops", progress=False)
    assert codec.compressed == [0.0, 0.0]
    rows = evaluate_grid(codec, images, [0.0, 1.5], [0.0, 2.0], suite, tmp_path, "crops", progress=False)
    assert codec.compressed == [0.0, 0.0, 1.5, 1.5]  # q = 0 was not recomputed
    assert [(r["quality"], r["beta"]) for r in rows] == [("0", "0"), ("0", "2"), ("1.5", "0"), ("1.5", "2")]
    assert len(_rows(tmp_path / "per_image.csv")) == 8
    assert json.loads((tmp_path / "run.json").read_text())["images"] == ["a.png", "b.png"]
    with pytest.raises(ValueError, match="another output_dir"):
        evaluate_grid(codec, images[:1], [0.0], [0.0], suite, tmp_path, "crops", progress=False)


def test_the_default_grid_is_the_papers():
    assert tuple(0.25 * i for i in range(17)) == PAPER_Q
    grid = OmegaConf.load(config_dir() / "evaluate.yaml").grid
    assert (tuple(grid.q), tuple(grid.beta)) == (PAPER_Q, PAPER_BETA)
    assert SUMMARY_COLUMNS[:8] == ["dataset", "quality", "beta", "bpp", "PSNR", "FID", "LPIPS", "DISTS"]


def test_metric_suite_scores_real_images_and_labels_random_backbones(kodak):
    suite = MetricSuite(MetricConfig(fid=False, random_backbones=True))
    x = kodak[1][:, :, :192, :192]
    same, noisy = suite.score(x, x), suite.score(x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1))
    assert same["LPIPS"] == pytest.approx(0, abs=1e-6) and noisy["LPIPS"] > 1e-3
    assert same["DISTS"] == pytest.approx(0, abs=1e-5) and noisy["DISTS"] > same["DISTS"]
    assert same["MS-SSIM"] == pytest.approx(1) and noisy["MS-SSIM"] < 0.99
    assert noisy["PSNR"] == pytest.approx(26.0, abs=0.5)
    assert "not comparable" in suite.note


def test_evaluate_without_weights_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"alexnet-owt-7be5be79\.pth"):
        MetricSuite(MetricConfig())


def test_a_bad_metric_setting_is_a_one_line_error(crops, tmp_path, capsys):
    argv = ["evaluate", f"checkpoint={CKPT}", f"dataset={crops}", f"output_dir={tmp_path}", "metrics.fid_network=tf"]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    out = capsys.readouterr()
    assert "fid_network must be one of torch-fidelity, pytorch-fid, got 'tf'" in out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_crdr_plot_overlays_the_official_curves(tmp_path, capsys):
    table = tmp_path / "ours.csv"
    table.write_text("dataset,quality,beta,bpp,PSNR,LPIPS\nkodak,0,0,0.1,27,0.1\nkodak,4,0,0.9,33,0.03\n")
    assert main(["plot", str(table), "-o", str(tmp_path / "rd"), "--with-official", "kodak"]) == 0
    assert (tmp_path / "rd.png").is_file() and (tmp_path / "rd.svg").is_file()


def test_metrics_see_8bit_reconstructions_rounded_or_truncated_like_the_official_scripts(kodak):
    x = kodak[0][:, :, :64, :64]
    x_hat = (x + 0.7 / 255).clamp(0, 1)  # 0.7 of a level off: rounds up, truncates down
    rounded = MetricSuite(MetricConfig(ms_ssim=False, lpips=False, dists=False, fid=False))
    truncated = MetricSuite(
        MetricConfig(ms_ssim=False, lpips=False, dists=False, fid=False, reconstruction_8bit="truncate")
    )
    assert torch.equal(rounded.to_8bit(x_hat) * 255, torch.round(x_hat * 255))
    assert torch.equal(truncated.to_8bit(x_hat) * 255, torch.floor(x_hat * 255))
    assert truncated.score(x, x_hat)["PSNR"] > 100  # truncation lands back on the original levels
    assert rounded.score(x, x_hat)["PSNR"] < 50
    with pytest.raises(ValueError, match="reconstruction_8bit"):
        MetricSuite(MetricConfig(reconstruction_8bit="floor"))


def test_named_sets_are_found_under_the_data_root_and_must_be_complete(kodak, tmp_path, monkeypatch):
    """``dataset=DIV2K``: the folder `crdr data fetch div2k-valid` fills, the official CSV name, its overlay."""
    root = tmp_path / "data"
    folder = root / "div2k-valid"
    for i in range(801, 901):  # the 100 names of the DIV2K validation set (small crops of real images)
        write_image(kodak[i % 3][:, :, : 64 + i % 5, :96], folder / f"{i:04d}.png")
    assert resolve_dataset("DIV2K", root) == (folder, "DIV2K")
    assert resolve_dataset("div2k-valid", root) == (folder, "DIV2K")
    assert resolve_dataset(str(folder), root) == (folder, None)  # a folder is taken as it is
    (folder / "0850.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"99 images in .*expected 100.*crdr data fetch div2k-valid"):
        resolve_dataset("DIV2K", root)
    with pytest.raises(FileNotFoundError, match="not a known set"):
        resolve_dataset("CLIC2021", root)
    with pytest.raises(ValueError, match="training set"):
        resolve_dataset("openimages", root)
    write_image(kodak[0][:, :, :64, :96], folder / "0850.png")
    monkeypatch.setenv("CRDR_DATA_ROOT", str(root))
    out = tmp_path / "eval"
    argv = ["evaluate", f"checkpoint={CKPT}", "dataset=DIV2K", "max_images=2", "grid.q=[0,4]", "grid.beta=[0]"]
    argv += [f"output_dir={out}", "metrics.random_backbones=true", "metrics.fid=false", "metrics.dists=false"]
    assert main([*argv, "progress=false"]) == 0
    assert {r["dataset"] for r in _rows(out / "results.csv")} == {"DIV2K"}
    assert "official DIV2K" in (out / "rd_curves.svg").read_text()  # plots.official=auto overlays the paper's curve


def test_evaluate_on_a_missing_set_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRDR_DATA_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", f"checkpoint={CKPT}", "dataset=CLIC", f"output_dir={tmp_path / 'eval'}"])
    assert stop.value.code == 2
    out = capsys.readouterr()
    assert "clic2020-test does not exist (run: crdr data fetch clic2020-test" in out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_random_backbones_are_seeded_and_a_resume_with_another_protocol_is_refused(crops, kodak, tmp_path):
    x = kodak[1][:, :, :128, :128]
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    config = MetricConfig(ms_ssim=False, dists=False, fid=False, random_backbones=True)
    first, second = MetricSuite(config), MetricSuite(config)  # two fresh random AlexNets: the same network
    assert first.score(x, noisy)["LPIPS"] == second.score(x, noisy)["LPIPS"]
    assert first.networks == {"LPIPS": "random, seed 0"}
    codec, images = Codec(load_model(CKPT)), sorted(crops.glob("*.png"))
    evaluate_grid(codec, images, [0.0], [0.0], first, tmp_path, "crops", progress=False)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["networks"] == {"LPIPS": "random, seed 0"} and "8-bit round" in run["protocol"]
    assert "8-bit round" in _rows(tmp_path / "results.csv")[0]["protocol"]
    truncating = MetricSuite(replace(config, reconstruction_8bit="truncate"))
    with pytest.raises(ValueError, match="other metrics, protocol; use another output_dir"):
        evaluate_grid(codec, images, [0.0, 4.0], [0.0], truncating, tmp_path, "crops", progress=False)
    (tmp_path / "run.json").write_text(json.dumps({**run, "networks": {"LPIPS": "random, seed 1"}}))
    with pytest.raises(ValueError, match="other networks; use another output_dir"):
        evaluate_grid(codec, images, [0.0, 4.0], [0.0], first, tmp_path, "crops", progress=False)
    assert run["entropy_parameters"] == "portable"
    (tmp_path / "run.json").write_text(json.dumps(run))
    on_device = Codec(codec.model, entropy_parameters="device")  # streams only a device decoder reads
    with pytest.raises(ValueError, match="other entropy_parameters; use another output_dir"):
        evaluate_grid(on_device, images, [0.0, 4.0], [0.0], first, tmp_path, "crops", progress=False)


def test_the_grid_shows_a_crop_of_the_first_image(crops, tmp_path):
    first = read_image(sorted(crops.glob("*.png"))[0])
    grid = grid_region(first, [16, 32, 128, 48], "a.png")
    assert torch.equal(grid.image, first[..., 16:144, 32:80]) and grid.title == "a.png, rows 16-143, columns 32-79"
    assert grid_region(first, None, "a.png").image is first
    argv = [
        "evaluate",
        f"checkpoint={CKPT}",
        f"dataset={crops}",
        "grid.q=[0]",
        "grid.beta=[0,5.12]",
        "plots.grid_q=[0,4]",
        "plots.grid_crop=[16,32,128,48]",
        "metrics.lpips=false",
        "metrics.dists=false",
        "metrics.fid=false",
        "progress=false",
        f"output_dir={tmp_path}",
    ]
    assert main(argv) == 0
    with Image.open(tmp_path / "grid.png") as picture:
        width, height = picture.size
    assert height > width  # 2 x 2 cells of the tall 128 x 48 crop, not of the wide 256 x 384 image


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([0, 0, 64], "must be \\[top, left, height, width\\]"),
        ([0, 0, 64.5, 64], "must be \\[top, left, height, width\\]"),
        ("0,0,64,64", "must be \\[top, left, height, width\\]"),
        ([0, 0, 0, 64], "empty or outside a.png \\(384x256"),
        ([200, 0, 64, 64], "empty or outside"),
        ([0, -1, 64, 64], "empty or outside"),
    ],
)
def test_a_bad_grid_crop_is_a_config_error(box, message):
    with pytest.raises(ConfigError, match=message):
        grid_region(torch.zeros(1, 3, 256, 384), box, "a.png")


def test_a_bad_grid_crop_stops_evaluate_before_it_codes(crops, tmp_path, capsys):
    argv = ["evaluate", f"checkpoint={CKPT}", f"dataset={crops}", f"output_dir={tmp_path}"]
    argv.append("plots.grid_crop=[0,0,999,10]")
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    out = capsys.readouterr()
    assert "plots.grid_crop=[0, 0, 999, 10] is empty or outside" in out.out + out.err
    assert not (tmp_path / "results.csv").exists()
