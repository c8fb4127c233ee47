"""Result tables and RD plots: official CSVs, RD curves, q x beta grids and ``crdr plot``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crdr.cli.parser import add_plot_parser
from crdr.cli.plot import run_plot
from crdr.evaluation.plots import (
    grid_figure,
    load_results,
    metric_label,
    official_results,
    plot_grid,
    plot_rd_curves,
    rd_figure,
)
from crdr.io.images import read_image
from crdr.package_data import DEMO_IMAGE_DIR

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_outputs(paths: list[Path], prefix: Path) -> None:
    assert paths == [prefix.with_name(prefix.name + ".png"), prefix.with_name(prefix.name + ".svg")]
    png, svg = paths
    assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 1000
    assert "<svg" in svg.read_text()
    assert not [p for p in prefix.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("dataset", "n_quality", "has_fid"),
    [("kodak", 17, False), ("CLIC", 17, True), ("clic_reproduce", 5, True), ("DIV2K", 17, True)],
)
def test_official_results(dataset: str, n_quality: int, has_fid: bool) -> None:
    table = official_results(dataset)
    assert table["quality"].nunique() == n_quality
    assert sorted(table["beta"].unique()) == [0.0, 3.84]
    assert len(table) == 2 * n_quality
    assert table.groupby("beta")["quality"].nunique().eq(n_quality).all()
    assert table["quality"].min() == 0.0 and table["quality"].max() == 4.0
    assert ("FID" in table.columns) == has_fid
    for column in ("bpp", "PSNR", "LPIPS", "DISTS"):
        assert table[column].dtype == np.float64 and table[column].notna().all()
    assert table.attrs["official"] is True
    # Rate grows with q at fixed beta; realism (beta=3.84) costs PSNR and buys LPIPS.
    for _, group in table.groupby("beta"):
        assert group.sort_values("quality")["bpp"].is_monotonic_increasing
    by_beta = table.pivot_table(index="quality", columns="beta", values=["PSNR", "LPIPS"])
    assert (by_beta["PSNR"][0.0] > by_beta["PSNR"][3.84]).all()
    assert (by_beta["LPIPS"][0.0] > by_beta["LPIPS"][3.84]).all()


def test_official_results_unknown_dataset() -> None:
    with pytest.raises(ValueError, match=r"imagenet.*kodak, CLIC, CLIC_reproduce, DIV2K"):
        official_results("imagenet")


def test_load_results_missing_columns_names_file(tmp_path: Path) -> None:
    path = tmp_path / "ours.csv"
    path.write_text("quality,PSNR\n1,30\n")
    with pytest.raises(ValueError, match=r"ours\.csv.*beta, bpp"):
        load_results(path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.csv"):
        load_results(tmp_path / "nothing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv"):
        load_results(tmp_path / "empty.csv")


def test_load_results_empty_cells_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "ours.csv"
    path.write_text(
        "dataset,quality,beta,bpp,PSNR,MS-SSIM,FID,KID,LPIPS,DISTS,bpp_estimate\n"
        "kodak,0,0,0.1,27.5,,,,0.2,0.1,0.11\n"
        "kodak,4,0, 0.9 ,35.0, ,3.5,0.001,,0.05,\n"
    )
    table = load_results(path)
    assert table["bpp"].tolist() == [0.1, 0.9]
    assert table["MS-SSIM"].isna().all() and table["MS-SSIM"].dtype == np.float64
    assert np.isnan(table.loc[0, "FID"]) and table.loc[1, "FID"] == 3.5
    assert np.isnan(table.loc[1, "LPIPS"]) and np.isnan(table.loc[1, "bpp_estimate"])
    path.write_text("quality,beta,bpp,PSNR\n1,0,0.2,abc\n")
    with pytest.raises(ValueError, match=r"ours\.csv.*PSNR.*'abc'"):
        load_results(path)


def test_metric_labels_say_direction() -> None:
    for metric in ("FID", "LPIPS", "DISTS", "KID"):
        assert "lower is better" in metric_label(metric)
    assert "higher is better" in metric_label("PSNR") and "dB" in metric_label("PSNR")


def _ours() -> pd.DataFrame:
    """A stand-in for our own table: the official Kodak rows shifted, with 3 betas and MS-SSIM."""
    base = official_results("kodak")
    extra = base[base["beta"] == 0.0].assign(beta=1.92)
    ours = pd.concat([base, extra], ignore_index=True).sample(frac=1.0, random_state=0)  # unsorted rows
    ours.attrs = {}
    return ours.assign(bpp=ours["bpp"] * 1.05, **{"MS-SSIM": 0.95})


def test_rd_figure_lines_per_label_and_beta() -> None:
    results = {"ours": _ours(), "official kodak": official_results("kodak"), "clic": official_results("CLIC")}
    fig = rd_figure(results, metrics=("PSNR", "FID", "LPIPS", "DISTS", "MS-SSIM", "NIQE"), title="Kodak")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["PSNR", "FID", "LPIPS", "DISTS", "MS-SSIM"]  # NIQE: absent
    lines = {ax.get_title(): ax.get_lines() for ax in axes}
    assert len(lines["PSNR"]) == 3 + 2 + 2  # labels x betas
    assert len(lines["FID"]) == 2  # only CLIC has FID
    assert len(lines["MS-SSIM"]) == 3
    for line in lines["PSNR"]:
        official = not line.get_label().startswith("ours")
        assert (line.get_linestyle() == "--") == official
        assert line.get_marker() not in (None, "None", "")
        x = line.get_xdata()
        assert np.all(np.diff(x) > 0)  # sorted by bpp
    assert {line.get_label() for line in lines["PSNR"]} >= {"ours, beta=1.92", "official kodak, beta=3.84"}
    assert "lower is better" in lines["LPIPS"][0].axes.get_ylabel()
    assert lines["PSNR"][0].axes.get_xlabel() == "bpp"
    assert fig.legends and len(fig.legends[0].get_texts()) == 7
    assert fig.get_suptitle() == "Kodak"


def test_rd_figure_without_any_metric() -> None:
    with pytest.raises(ValueError, match="none of the metrics"):
        rd_figure({"kodak": official_results("kodak")}, metrics=("FID",))


def test_plot_rd_curves_writes_png_and_svg(tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "rd"
    paths = plot_rd_curves({"kodak": official_results("kodak")}, ("PSNR", "LPIPS"), prefix, title="t")
    _check_outputs(paths, prefix)
    # A trailing .png is taken as part of the prefix's format, not doubled.
    assert plot_rd_curves({"kodak": official_results("kodak")}, ("PSNR",), tmp_path / "out" / "rd.png") == paths


def test_run_plot_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ours = tmp_path / "crdr_ours.csv"
    official_results("kodak").to_csv(ours, index=False)
    parser = argparse.ArgumentParser(prog="crdr")
    add_plot_parser(parser.add_subparsers(dest="command", required=True))
    prefix = tmp_path / "plots" / "kodak_rd"
    args = parser.parse_args(
        ["plot", str(ours), "-o", str(prefix), "--with-official", "KODAK", "--metrics", "PSNR,LPIPS,DISTS"]
    )
    assert args.run == "crdr.cli.plot:run_plot"
    assert run_plot(args) == 0
    paths = [Path(line) for line in capsys.readouterr().out.split()]
    _check_outputs(paths, prefix)
    svg = paths[1].read_text()
    assert "crdr_ours" in svg and "official kodak" in svg

    bad = parser.parse_args(["plot", str(ours), "-o", str(prefix), "--with-official", "imagenet"])
    with pytest.raises(ValueError, match="imagenet"):
        run_plot(bad)


def test_plot_grid_kodak_crops(tmp_path: Path) -> None:
    image = read_image(DEMO_IMAGE_DIR / "kodim23.png")
    assert image.shape == (1, 3, 512, 768)
    crop = image[..., 128:256, 256:448]
    images = {
        (0.0, 0.0): crop,
        (0.0, 3.84): crop.flip(-1),
        (4.0, 0.0): 1.0 - crop,
        (4.0, 3.84): crop[0],  # (3, H, W) is accepted too
    }
    bpp = {0.0: 0.11, 4.0: 1.02}
    fig = grid_figure(images, bpp)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "q=0 beta=0\n0.110 bpp",
        "q=0 beta=3.84\n0.110 bpp",
        "q=4 beta=0\n1.020 bpp",
        "q=4 beta=3.84\n1.020 bpp",
    ]
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)
    shown = fig.axes[2].get_images()[0].get_array()
    np.testing.assert_allclose(shown, (1.0 - crop)[0].permute(1, 2, 0).numpy(), atol=1e-6)

    prefix = tmp_path / "grid"
    _check_outputs(plot_grid(images, prefix, bpp={(0.0, 0.0): 0.1}), prefix)
    with pytest.raises(ValueError, match="expected"):
        plot_grid({(1.0, 0.0): crop[0, 0]}, prefix)
