"""Every recipe in experiments/: its tiny CPU mode end to end (the real commands, real files), and its
paper-scale commands composed by Hydra without running them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT
from crdr import load_model
from crdr.config import config_dir
from crdr.data.training_photos import PHOTOS

#: The recipes among experiments/*.py: not recipe.py (their module) nor crdr_tiny_card.py (the shipped
#: crdr-tiny's model card; tests/test_crdr_tiny.py runs its checks).
RECIPES = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem not in ("recipe", "crdr_tiny_card"))
ABLATIONS = {
    "ablate_discriminator": ("discriminator", ["module_list", "multirate_gvae", "gvae", "hific"]),
    "ablate_gan_loss": ("gan_loss", ["hrrgan", "ragan", "rgan", "vanilla"]),
    "ablate_beta_schedule": (
        "beta_schedule",
        ["discrete_uniform", "continuous_uniform", "log_uniform", "end_weighted", "curriculum", "fixed"],
    ),
}


def _recipe(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        env["OMP_NUM_THREADS"] = "1"  # the recipe's processes share the cores with the other workers
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / f"{name}.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _commands(output: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in output.splitlines() if line.startswith("$ ")]


def test_every_recipe_is_tested_here() -> None:
    assert set(RECIPES) == {"train_chain", "train_crdr_tiny", "evaluate_grid", "rd_realism_figure", *ABLATIONS}


@pytest.mark.slow
def test_train_chain_tiny(tmp_path: Path) -> None:
    out = tmp_path / "chain"
    result = _recipe("train_chain", "--tiny", "--out", str(out))
    assert len(_commands(result.stdout)) == 3
    for stage in (2, 3):  # each stage starts from the previous stage's last checkpoint
        cfg = OmegaConf.load(out / f"stage{stage}" / "config.yaml")
        assert cfg.init_from == str(out / f"stage{stage - 1}" / "checkpoints" / "last.ckpt")
    model = load_model(out / "stage3" / "generator.safetensors")
    assert model.num_rate_levels == 5 and model.max_beta == pytest.approx(5.12)
    assert load_model(out / "stage2" / "generator.safetensors").max_beta is None


@pytest.mark.slow
def test_train_crdr_tiny_tiny(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    result = _recipe("train_crdr_tiny", "--tiny", "--out", str(out))
    commands = _commands(result.stdout)
    assert [c[1] for c in commands] == [f"experiment=crdr_tiny_stage{s}" for s in (1, 2, 3)]
    photos = out / "data" / "crdr-tiny-train"
    assert {p.name for p in photos.iterdir()} == {"SOURCES.md", *(p.name for p in PHOTOS)}
    for stage in (1, 2, 3):  # trained on the photographs, each stage from the previous one's last checkpoint
        cfg = OmegaConf.load(out / f"stage{stage}" / "config.yaml")
        assert list(cfg.data.train_dirs) == [str(photos)]
        previous = None if stage == 1 else str(out / f"stage{stage - 1}" / "checkpoints" / "last.ckpt")
        assert cfg.init_from == previous
    model = load_model(out / "stage3" / "generator.safetensors")
    assert model.num_rate_levels == 5 and model.max_beta == pytest.approx(5.12)


def test_crdr_tiny_stages_at_full_size_train_on_the_photographs_only() -> None:
    for stage in (1, 2, 3):
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment=crdr_tiny_stage{stage}"], return_hydra_config=True)
        assert cfg.data.train_dirs == ["${paths.data_root}/crdr-tiny-train"]
        assert cfg.model.encoder.channels == 64 and cfg.trainer.max_steps >= 2000
        milestone = cfg.optimizer.scheduler.milestones
        # The paper's x0.1 at 80% of each stage's first plan; a resumed scheduler keeps its milestones:
        # stage 1 planned 3000 iterations and was cut to 2500, stage 3 planned 2000 and was resumed to 3000.
        assert milestone == {1: [2400], 2: [cfg.trainer.max_steps * 4 // 5], 3: [1600]}[stage]


def test_the_quickstart_fine_tune_continues_crdr_tiny_on_its_training_crops() -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        tune = compose("train", overrides=["experiment=finetune_crdr_tiny"])
        stage3 = compose("train", overrides=["experiment=crdr_tiny_stage3"])
    assert tune.init_from == "crdr-tiny" and tune.module._target_ == stage3.module._target_ == "crdr.lit.GanModule"
    # 96 px crops (stage 3 trains on 128) moved the previous crdr-tiny at q 2 from 0.263 to 0.216 bpp in 200 steps
    assert tune.data.crop_size == stage3.data.crop_size and tune.data.train_dirs == stage3.data.train_dirs
    assert tune.optimizer.generator.lr == pytest.approx(stage3.optimizer.generator.lr / 10)
    assert tune.trainer.max_steps <= 300 and tune.rate_loss == stage3.rate_loss and tune.gan_loss == stage3.gan_loss


@pytest.mark.slow
def test_evaluate_grid_tiny(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    _recipe("evaluate_grid", "--tiny", "--out", str(out))
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["variant"].unique()) == ["kodak", "CLIC", "DIV2K"]
    assert (summary["variant"] == summary["dataset"]).all()  # the official CSVs' dataset names
    assert sorted(set(zip(summary["quality"], summary["beta"], strict=True))) == [(0, 0), (0, 3.84), (4, 0), (4, 3.84)]
    assert summary["note"].str.contains("random backbones").all()  # tiny mode says what its numbers are
    overrides = OmegaConf.load(out / "CLIC" / ".hydra" / "overrides.yaml")
    assert "metrics.reconstruction_8bit=truncate" in overrides  # the official scripts' 8-bit conversion
    assert "metrics.fid_network=pytorch-fid" in overrides  # and their FID network
    assert summary["protocol"].str.contains("Inception pytorch-fid").all()
    assert "official CLIC" in (out / "CLIC" / "rd_curves.svg").read_text()


@pytest.mark.slow
def test_rd_realism_figure_tiny(tmp_path: Path) -> None:
    out = tmp_path / "figure"
    _recipe("rd_realism_figure", "--tiny", "--out", str(out))
    svg = (out / "rd_realism.svg").read_text()
    assert "official CLIC" in svg and "FID" in svg and "LPIPS" in svg and "PSNR" in svg
    assert "random backbones" in svg  # the figure itself says what its FID and LPIPS are
    assert (out / "rd_realism.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_tiny(name: str, tmp_path: Path) -> None:
    group, options = ABLATIONS[name]
    out = tmp_path / name
    _recipe(name, "--tiny", "--out", str(out))
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["variant"].unique()) == options
    assert summary.groupby("variant").size().eq(4).all()  # q in {0, 4} x beta in {0, 3.84}
    # Each run trained its own variant of the group (from the same start), and nothing else differed.
    configs = {o: OmegaConf.to_container(OmegaConf.load(out / "train" / o / "config.yaml")) for o in options}
    assert len({repr(c[group]) for c in configs.values()}) == len(options)

    def rest(option: str) -> str:
        config = {k: v for k, v in configs[option].items() if k not in (group, "logger")}
        config["module"] = {k: v for k, v in config["module"].items() if k != group}
        return repr(config).replace(str(out / "train" / option), "RUN")

    assert len({rest(o) for o in options}) == 1
    assert "| variant | beta |" in (out / "summary.md").read_text()
    assert (out / "rd_curves.png").is_file()


def _compose(app: str, args: list[str]) -> None:
    """Composes ``crdr-train``/``crdr evaluate`` overrides as Hydra would (first option of each sweep)."""
    overrides = []
    for arg in args:
        if arg == "-m" or arg.startswith(("hydra.", "output_dir=", "checkpoint=")):
            continue
        key, value = arg.split("=", 1)
        overrides.append(f"{key}={value.split(',')[0]}" if "," in value and "[" not in value else arg)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(app, overrides=overrides, return_hydra_config=True)
    assert cfg is not None


@pytest.mark.parametrize("name", RECIPES)
def test_paper_scale_commands_compose(name: str, tmp_path: Path) -> None:
    args = ["--dry-run", "--out", str(tmp_path / "out"), "--launcher", "slurm"]
    if name in ABLATIONS:
        args += ["--init-from", "stage2.ckpt"]
    if name in ("evaluate_grid", "rd_realism_figure"):
        args += ["--checkpoint", "crdr.pth.tar"]
    if name == "train_chain":
        args += ["--gpus", "8"]
    commands = _commands(_recipe(name, *args).stdout)
    assert commands and not (tmp_path / "out").exists()  # a dry run writes nothing
    for command in commands:
        if command[0] == "crdr-train":
            _compose("train", command[1:])
        else:
            assert command[:2] == ["crdr", "evaluate"]
            _compose("evaluate", [a.replace("+variant=", "variant=") for a in command[2:] if "variant" not in a])
    if name == "train_chain":  # DDP over 8 GPUs at the paper's global batch of 8
        assert all({"trainer.devices=8", "data.batch_size=1"} <= set(c) for c in commands)
        assert "init_from=" + str(tmp_path / "out" / "stage1" / "checkpoints" / "last.ckpt") in commands[1]
    if name in ABLATIONS:
        assert "hydra/launcher=slurm" in commands[0] and "init_from=stage2.ckpt" in commands[0]
        assert "dataset=CLIC" in commands[1]


def test_ablations_need_a_stage2_model_at_paper_scale() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "ablate_gan_loss.py"), "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "--init-from STAGE2.ckpt is required" in result.stderr
