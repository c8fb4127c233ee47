"""Checkpoint formats: official .pth.tar, our safetensors, Lightning .ckpt; hostile and wrong files."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from conftest import GOLDEN_TINY, tiny_config, tiny_model, train_config
from crdr import CheckpointError, ConfigError, load_model, save_generator
from crdr.cli.train import build_module
from crdr.codec import Codec
from crdr.config import build_generator, model_config_names
from crdr.layers.fourier import FourierEmbedding
from crdr.loading.aligned_safetensors import load_aligned, save_aligned
from crdr.loading.arch_from_weights import infer_model_config
from crdr.loading.checkpoints import (
    LIGHTNING_GENERATOR,
    LIGHTNING_MODEL_CONFIG,
    is_dynamic_buffer,
    load_weights,
    read_checkpoint,
)
from crdr.models.meta_parameters import parameters_on_meta


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


def test_a_checkpoint_the_training_module_writes_loads_as_its_generator(tmp_path, image):
    """The contract of crdr.lit (writer) and load_model (reader): LIGHTNING_GENERATOR, LIGHTNING_MODEL_CONFIG."""
    module = build_module(train_config(tmp_path))
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "module.ckpt", weights_only=True)
    loaded = load_model(tmp_path / "module.ckpt")
    generator = getattr(module, LIGHTNING_GENERATOR).eval()
    generator.update_entropy_tables()
    assert loaded.config == module.hparams[LIGHTNING_MODEL_CONFIG]
    assert torch.equal(_outputs(loaded, image).x_hat, _outputs(generator, image).x_hat)


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


def _copying_loader(path):
    """How load_model loaded before weights were mapped: a fully built (randomly initialised) model,
    the file's weights copied into it, tables rebuilt."""
    checkpoint = read_checkpoint(path)
    model = build_generator(checkpoint.config or infer_model_config(checkpoint.state_dict))
    load_weights(model, checkpoint.state_dict)
    model.update_entropy_tables()
    return model.eval()


def _mapped_files() -> list[tuple[int, int, str]]:
    """(start, end, path) of this process's file mappings (Linux)."""
    rows = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6:
            start, end = (int(v, 16) for v in fields[0].split("-"))
            rows.append((start, end, fields[5]))
    return rows


def _is_mapped_from(tensor, path: Path) -> bool:
    return any(s <= tensor.data_ptr() < e and p == str(path.resolve()) for s, e, p in _mapped_files())


def _checkpoint_files(tmp_path) -> dict[str, Path]:
    """The golden official file and the same weights in every other format load_model reads."""
    official = GOLDEN_TINY / "official_ckpt.pth"
    model = _copying_loader(official)
    state = {k: v for k, v in model.state_dict().items() if not is_dynamic_buffer(k)}
    files = {"official": official, "ours": save_generator(model, tmp_path / "ours.safetensors")}
    files["safetensors_packed"] = tmp_path / "packed.safetensors"  # safetensors' own (4-byte aligned) layout
    save_file(state, str(files["safetensors_packed"]), metadata={"model_config": json.dumps(model.config)})
    files["lightning"] = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"generator.{k}": v for k, v in state.items()}}, files["lightning"])
    files["legacy_torch_format"] = tmp_path / "legacy.pth.tar"  # cannot be memory-mapped
    torch.save({"comp_model": model.state_dict()}, files["legacy_torch_format"], _use_new_zipfile_serialization=False)
    return files


def test_mapped_loading_equals_copying_loading_in_every_format(tmp_path, image):
    files = _checkpoint_files(tmp_path)
    reference = _copying_loader(files["official"])
    expected_state = reference.state_dict()
    expected = _outputs(reference, image)
    expected_stream = Codec(reference).compress(image, 2.75)
    for label, path in files.items():
        model = load_model(path)
        state = model.state_dict()
        assert list(state) == list(expected_state), label
        for key, value in expected_state.items():
            assert state[key].dtype == value.dtype and torch.equal(state[key], value), (label, key)
        tensors = [*model.parameters(), *model.buffers()]
        assert not any(t.is_meta for t in tensors), label
        assert all(t.is_contiguous() and t.data_ptr() % 64 == 0 for t in tensors if t.numel()), label
        out = _outputs(model, image)
        assert torch.equal(out.x_hat, expected.x_hat) and torch.equal(out.bpp, expected.bpp), label
        assert Codec(model).compress(image, 2.75) == expected_stream, label


def test_official_and_our_files_are_mapped_not_copied(tmp_path):
    files = _checkpoint_files(tmp_path)
    official = load_model(files["official"]).state_dict()
    assert all(_is_mapped_from(v, files["official"]) for k, v in official.items() if not is_dynamic_buffer(k))
    ours = load_model(files["ours"]).state_dict()
    whole_lines = [v for k, v in ours.items() if not is_dynamic_buffer(k) and v.nbytes % 64 == 0]
    assert len(whole_lines) > 100 and all(_is_mapped_from(v, files["ours"]) for v in whole_lines)
    packed = load_model(files["safetensors_packed"]).state_dict()
    mapped = [_is_mapped_from(v, files["safetensors_packed"]) for v in packed.values()]
    assert mapped.count(False) > 100  # packed back to back: most start off 64-byte boundaries and are read


def test_our_safetensors_are_standard_and_64_byte_aligned(tmp_path):
    tensors = {
        "a.weight": torch.randn(3, 5),  # 60 bytes: written after the multiples of 64
        "b.weight": torch.randn(4, 4),
        "c.half": torch.randn(32, dtype=torch.float64).to(torch.bfloat16),
        "d.count": torch.arange(16, dtype=torch.int64),
        "e.scalar": torch.tensor(0.25),
        "f.flags": torch.tensor([True, False, True]),
        "g.empty": torch.empty(0),
    }
    path = tmp_path / "t.safetensors"
    save_aligned(tensors, path, {"k": "v"})
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"k": "v"} and set(f.keys()) == set(tensors)
        for name, value in tensors.items():
            assert torch.equal(f.get_tensor(name), value), name
    header_size = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_size])
    assert (8 + header_size) % 64 == 0
    for name in ("b.weight", "c.half", "d.count"):
        assert header[name]["data_offsets"][0] % 64 == 0, name
    loaded, metadata = load_aligned(path)
    assert metadata == {"k": "v"}
    assert all(torch.equal(loaded[k], v) and loaded[k].data_ptr() % 64 == 0 for k, v in tensors.items() if v.numel())
    with pytest.raises(ValueError, match="complex64"):
        save_aligned({"z": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "z.safetensors", {})


def test_parameters_on_meta_takes_only_layer_weights_to_meta():
    register = nn.Module.register_parameter
    with parameters_on_meta():
        conv, linear, free = nn.Conv2d(3, 8, 3), nn.Linear(4, 2), nn.Module()
        free.scale = nn.Parameter(torch.ones(3))
        embedding = FourierEmbedding(4)
    assert nn.Module.register_parameter is register
    assert all(p.is_meta for p in (*conv.parameters(), *linear.parameters()))
    assert not free.scale.is_meta and torch.equal(free.scale, torch.ones(3))
    assert torch.equal(embedding.frequencies, torch.tensor([1.0, 2.0, 4.0, 8.0]))  # a non-persistent buffer
    with pytest.raises(RuntimeError, match="boom"), parameters_on_meta():
        raise RuntimeError("boom")
    assert nn.Module.register_parameter is register and not nn.Conv2d(1, 1, 1).weight.is_meta
