"""Checkpoint formats: official .pth.tar, our safetensors, Lightning .ckpt; hostile and wrong files."""

from __future__ import annotations

import argparse
import json
import random

import pytest
import torch
from safetensors import safe_open

from conftest import GOLDEN_TINY, tiny_config, tiny_model
from crdr import CheckpointError, ConfigError, load_model, save_generator
from crdr.config import model_config_names


def _outputs(model, x):
    with torch.no_grad():
        kwargs = {}
        if model.num_rate_levels is not None:
            kwargs["q"] = 2.75
        if model.max_beta is not None:
            kwargs["beta"] = 3.84
        return model(x, **kwargs)


@pytest.fixture(scope="module")
def image(kodak):
    return kodak[2][:, :, 200:290, 300:370]  # 90 x 70


def test_safetensors_round_trip_keeps_weights_config_and_outputs(tmp_path, image):
    official = load_model(GOLDEN_TINY / "official_ckpt.pth")
    path = save_generator(official, tmp_path / "model.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == "crdr-generator" and json.loads(meta["model_config"]) == official.config
    assert not any("_quantized_cdf" in k or "scale_table" in k for k in keys)
    reloaded = load_model(path)
    for key, value in official.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    a, b = _outputs(official, image), _outputs(reloaded, image)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.bpp, b.bpp)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left behind


@pytest.mark.parametrize("name", model_config_names())
def test_official_format_of_every_variant_loads_without_a_config(tmp_path, image, name):
    model = tiny_model(name, seed=3)
    path = tmp_path / f"{name}.pth.tar"
    torch.save({"iter": 5000, "comp_model": model.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.config == tiny_config(name)
    assert torch.equal(_outputs(loaded, image).x_hat, _outputs(model, image).x_hat)


def test_official_file_with_empty_cdf_buffers_loads(tmp_path, image):
    model = tiny_model("crdr", seed=4)
    state = model.state_dict()
    for key in list(state):
        if key.endswith(("_quantized_cdf", "_offset", "_cdf_length", "scale_table")):
            state[key] = torch.empty(0, dtype=state[key].dtype)
    torch.save({"iter": 0, "comp_model": state}, tmp_path / "training.pth.tar")
    loaded = load_model(tmp_path / "training.pth.tar")
    assert torch.equal(loaded.entropy_model_y._quantized_cdf, model.entropy_model_y._quantized_cdf)
    assert torch.equal(_outputs(loaded, image).bpp, _outputs(model, image).bpp)


def test_lightning_checkpoint_and_ddp_prefixed_state_dict_load(tmp_path, image):
    model = tiny_model("crdr_stage2", seed=5)
    lightning = {
        "pytorch-lightning_version": "2.6.6",
        "state_dict": {
            **{f"generator.{k}": v for k, v in model.state_dict().items()},
            "discriminator.w": torch.ones(1),
        },
        "hyper_parameters": {"model": model.config},
    }
    torch.save(lightning, tmp_path / "last.ckpt")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pt")
    expected = _outputs(model, image).x_hat
    for name in ("last.ckpt", "ddp.pt"):
        assert torch.equal(_outputs(load_model(tmp_path / name), image).x_hat, expected), name


def test_pickled_objects_are_refused(tmp_path):
    state = tiny_model("crdr_stage1_hyperprior").state_dict()
    torch.save({"comp_model": state, "opts": argparse.Namespace(cmd="rm -rf /")}, tmp_path / "evil.pth.tar")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(tmp_path / "evil.pth.tar")


def test_truncated_and_garbage_files_are_clear_errors(tmp_path):
    source = GOLDEN_TINY / "official_ckpt.pth"
    data = source.read_bytes()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "empty.pth": b"",
        **{f"random{i}.pth": random.Random(i).randbytes(4096) for i in range(30)},
        "random_pickle.pth": b"\x80\x02" + random.Random(99).randbytes(200),
        "fake.safetensors": (64).to_bytes(8, "little") + b"{" + b"x" * 100,
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(CheckpointError):
            load_model(tmp_path / name)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pth")


def test_checkpoint_of_another_architecture_is_named_as_such(tmp_path):
    torch.save({"comp_model": tiny_model("crdr_stage2").state_dict()}, tmp_path / "stage2.pth.tar")
    with pytest.raises(CheckpointError, match=r"does not fit.*missing.*decoder\.(mlp|block)"):
        load_model(tmp_path / "stage2.pth.tar", config=tiny_config("crdr"))
    with pytest.raises(CheckpointError, match="other shapes"):
        load_model(tmp_path / "stage2.pth.tar", config="crdr_stage2")
    torch.save({"comp_model": {"encoder.conv1.weight": torch.zeros(1)}}, tmp_path / "other.pth.tar")
    with pytest.raises(CheckpointError, match="not a CRDR generator"):
        load_model(tmp_path / "other.pth.tar")


def test_configs_may_only_build_crdr_models(tmp_path):
    cfg = tiny_config("crdr")
    cfg["encoder"]["_target_"] = "os.system"
    with pytest.raises(ConfigError, match="not allowed"):
        load_model(None, config=cfg)
    cfg = tiny_config("crdr")
    cfg["encoder"]["bogus_width"] = 3
    with pytest.raises(ConfigError, match="cannot build"):
        load_model(None, config=cfg)
