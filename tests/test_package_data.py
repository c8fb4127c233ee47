"""What the package ships: models by name wherever a checkpoint path goes, half-precision kernels read
back as float32, the demo images, and ``crdr models`` / ``crdr data photos``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch

from conftest import GOLDEN_TINY, KODAK, ROOT
from crdr import CheckpointError, load_model, save_generator
from crdr.cli.main import main
from crdr.data.training_photos import PHOTOS, PHOTOS_FOLDER
from crdr.loading.checkpoints import read_checkpoint
from crdr.package_data import DEMO_IMAGE_DIR, SHIPPED_MODELS, resolve_checkpoint


def test_a_shipped_name_means_the_shipped_file_and_anything_else_a_path(tmp_path, monkeypatch) -> None:
    assert resolve_checkpoint("crdr-tiny") == SHIPPED_MODELS["crdr-tiny"].path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crdr-tiny").write_bytes(b"not a model")  # a local file of that name needs ./
    assert resolve_checkpoint("./crdr-tiny") == Path("./crdr-tiny")
    assert resolve_checkpoint(Path("crdr-tiny")) == Path("crdr-tiny")  # Path objects are always paths
    with pytest.raises(CheckpointError, match="checkpoint not found: crdr-huge"):
        read_checkpoint("crdr-huge")


def test_half_precision_kernels_halve_the_file_and_load_as_float32(tmp_path, kodak) -> None:
    model = load_model(GOLDEN_TINY / "official_ckpt.pth")
    full = save_generator(model, tmp_path / "full.safetensors")
    half = save_generator(model, tmp_path / "half.safetensors", kernel_dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    reloaded = load_model(half)
    for key, value in model.state_dict().items():
        loaded = reloaded.state_dict()[key]
        assert loaded.dtype == value.dtype, key
        if value.dim() == 4:
            assert torch.equal(loaded, value.half().float()), key
        else:
            assert torch.equal(loaded, value), key  # biases, GDN and entropy parameters stay float32
    with pytest.raises(CheckpointError, match="kernel_dtype"):
        save_generator(model, tmp_path / "int.safetensors", kernel_dtype=torch.int8)


def test_demo_images_are_the_three_kodak_images() -> None:
    assert [p.name for p in KODAK] == ["kodim03.png", "kodim15.png", "kodim23.png"]
    assert all(p.parent == DEMO_IMAGE_DIR for p in KODAK)
    assert (DEMO_IMAGE_DIR / "SOURCES.md").is_file()


def test_crdr_models_lists_the_shipped_names_and_the_official_weights(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "crdr-tiny" in out and str(SHIPPED_MODELS["crdr-tiny"].path) in out and "crdr.pth.tar" in out


def test_crdr_data_photos_writes_the_training_photographs(tmp_path) -> None:
    assert main(["data", "photos", "--root", str(tmp_path)]) == 0
    written = sorted(p.name for p in (tmp_path / PHOTOS_FOLDER).iterdir())
    assert written == sorted([*(p.name for p in PHOTOS), "SOURCES.md"])
    assert not any(name.startswith("kodim") for name in written)


def test_compress_with_a_shipped_name_in_the_cli(tmp_path) -> None:
    image = tmp_path / "crop.png"
    shutil.copyfile(KODAK[0], image)
    assert main(["compress", str(image), "--checkpoint", "crdr-tiny", "-q", "1", "-o", str(tmp_path / "s")]) == 0
    assert main(["decompress", str(tmp_path / "s"), "--checkpoint", "crdr-tiny", "-o", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "crop.png").is_file()


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_compresses_with_crdr_tiny(tmp_path) -> None:
    """``pip install`` of a built wheel into a fresh venv (dependencies from this one), then the CLI
    from another folder: the model, the demo images and the configs travel in the wheel."""
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = wheels.glob("crdr-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=False, with_pip=False)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    (site / "parent.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = [str(env_dir / "bin" / "crdr"), "compress", str(KODAK[2]), "--checkpoint", "crdr-tiny", "-q", "2", "-o", "s"]
    result = subprocess.run(run, cwd=outside, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (outside / "s" / "kodim23.crdr").stat().st_size > 0
    script = "import crdr.package_data as p; print(p.DEMO_IMAGE_DIR); print(p.SHIPPED_MODELS['crdr-tiny'].path)"
    where = subprocess.run([python, "-c", script], cwd=outside, env=env, capture_output=True, text=True, check=True)
    assert all(str(site) in line for line in where.stdout.split())
