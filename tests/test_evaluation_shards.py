"""Sharded `crdr evaluate` (shard.index/shard.count through a Hydra multirun) and `crdr merge`: the merged
folder is the single run's, FID/KID included, and shards that do not fit together are refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import crdr
from conftest import GOLDEN_TINY, KODAK
from crdr.cli.main import main
from crdr.evaluation.shards import Shard
from crdr.io.errors import ConfigError
from crdr.io.images import read_image, write_image

CKPT = GOLDEN_TINY / "official_ckpt.pth"
TINY = [
    f"checkpoint={CKPT}",
    "grid.q=[0,4]",
    "grid.beta=[0,5.12]",
    "metrics.random_backbones=true",
    "metrics.dists=false",
    "progress=false",
]


def test_shards_take_every_count_th_image_and_are_named_by_index_and_count(tmp_path):
    images = [f"{i}.png" for i in range(5)]
    assert [Shard(i, 2).select(images) for i in range(2)] == [["0.png", "2.png", "4.png"], ["1.png", "3.png"]]
    assert Shard().select(images) == images and Shard().folder(tmp_path) == tmp_path
    assert Shard(1, 3).folder(tmp_path) == tmp_path / "shard-1-of-3"
    with pytest.raises(ConfigError, match=r"shard\.index must be in 0\.\.shard\.count-1"):
        Shard(2, 2)
    with pytest.raises(ConfigError, match="shard-5-of-6 has no images: the set has 5"):
        Shard(5, 6).select(images)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_two_shards_through_submitit_merge_into_the_single_run(crops, tmp_path, monkeypatch, capsys):
    images = tmp_path / "images"  # three images: shards of 2 and 1, interleaved back in the merge
    shutil.copytree(crops, images)
    write_image(read_image(KODAK[1])[:, :, 256:512, 0:384], images / "c.png")
    # The submitit jobs are other processes: the same crdr, the same intra-op thread count as this one.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(Path(crdr.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main(["evaluate", *TINY, f"dataset={images}", f"output_dir={single}"]) == 0
    # Shard 1 first did q=0 alone: the multirun resumes it.
    shard1 = sharded / "shard-1-of-2"
    args = [f"dataset={images}", f"output_dir={sharded}", "shard.count=2"]
    assert main(["evaluate", *TINY, "grid.q=[0]", "shard.index=1", *args]) == 0
    first_point = (shard1 / "pooled" / "q0_beta0.safetensors").stat().st_mtime_ns
    assert main(["evaluate", "-m", "hydra/launcher=submitit_local", *TINY, "shard.index=0,1", *args]) == 0
    assert (shard1 / "pooled" / "q0_beta0.safetensors").stat().st_mtime_ns == first_point
    assert (shard1 / ".hydra" / "config.yaml").is_file()  # hydra.sweep.subdir is the shard's folder
    assert next(iter(json.loads((shard1 / "run.json").read_text())["images"])) == "b.png"
    shard_rows = (shard1 / "results.csv").read_text().splitlines()[1].split(",")
    assert shard_rows[5] == ""  # a shard's FID is left to the merge

    shards = [str(sharded / f"shard-{i}-of-2") for i in range(2)]
    assert main(["merge", *shards, "-o", str(sharded)]) == 0
    for name in ("results.csv", "per_image.csv", "run.json", "grid.png"):
        assert (sharded / name).read_bytes() == (single / name).read_bytes(), name
    header, *rows = (sharded / "results.csv").read_text().splitlines()
    assert header.startswith("dataset,quality,beta,bpp,PSNR,FID,LPIPS,DISTS,MS-SSIM,KID,KID_std")
    assert len(rows) == 4 and all(row.split(",")[5] and row.split(",")[9] for row in rows)  # FID and KID
    assert (sharded / "rd_curves.png").stat().st_size > 1000

    capsys.readouterr()
    assert main(["merge", shards[0], "-o", str(tmp_path / "m")]) == 2
    assert "shard-1-of-2 is missing (1 of 2 shards given)" in _error(capsys)
    assert main(["merge", shards[0], shards[0], "-o", str(tmp_path / "m")]) == 2
    assert "are both shard-0-of-2" in _error(capsys)
    assert main(["merge", str(single), "-o", str(tmp_path / "m")]) == 2
    assert "not a shard" in _error(capsys)
    other = tmp_path / "other"
    shutil.copytree(shard1, other)
    run = json.loads((other / "run.json").read_text())
    for key, value in (("protocol", run["protocol"] + "; other"), ("networks", {"FID": "random, seed 1"})):
        (other / "run.json").write_text(json.dumps({**run, key: value}))
        assert main(["merge", shards[0], str(other), "-o", str(tmp_path / "m")]) == 2
        assert f"are not shards of one evaluation: {key}" in _error(capsys)
    (other / "run.json").write_text(json.dumps(run))
    lines = (other / "results.csv").read_text().splitlines()
    (other / "results.csv").write_text("\n".join(lines[:-1]) + "\n")
    assert main(["merge", shards[0], str(other), "-o", str(tmp_path / "m")]) == 2
    assert "grid point q=4.0 beta=5.12 not finished (rerun the shard: it resumes)" in _error(capsys)
    (other / "results.csv").write_text("\n".join(lines) + "\n")
    (other / "pooled" / "q4_beta0.safetensors").write_bytes(b"not a safetensors file")
    assert main(["merge", shards[0], str(other), "-o", str(tmp_path / "m")]) == 2
    assert "q4_beta0.safetensors: not a readable safetensors file" in _error(capsys)
    (other / "shard.json").unlink()
    assert main(["merge", shards[0], str(other), "-o", str(tmp_path / "m")]) == 2
    assert "no shard.json (not a shard of crdr evaluate, or one not finished: rerun it)" in _error(capsys)
