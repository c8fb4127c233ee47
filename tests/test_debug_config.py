"""conf/widths/tiny.yaml and conf/debug/tiny.yaml: every model and discriminator shrunk to golden_tiny widths
with its own structure kept, and what debug=tiny does to a run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from conftest import tiny_config
from crdr.config import build_generator, compose_model_config, config_dir, model_config_names

DISCRIMINATORS = sorted(p.stem for p in (config_dir() / "discriminator").glob("*.yaml"))


def _compose(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _leaves(node: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def test_every_model_and_discriminator_has_tiny_widths() -> None:
    # train.yaml picks these files as `optional`: a model without one would silently train at full width
    widths = config_dir() / "widths"
    assert {p.stem for p in (widths / "model").glob("*.yaml")} == {f"tiny_{m}" for m in model_config_names()}
    expected = {f"tiny_{d}" for d in DISCRIMINATORS if d != "none"}
    assert {p.stem for p in (widths / "discriminator").glob("*.yaml")} == expected


@pytest.mark.parametrize("name", model_config_names())
def test_tiny_widths_keep_each_models_structure(name: str) -> None:
    full, tiny = dict(_leaves(compose_model_config(name))), dict(_leaves(tiny_config(name)))
    assert tiny.keys() == full.keys()  # no key added (e.g. a Minnen width on the Cheng hyper networks)
    assert {k for k, v in tiny.items() if v is None} == {k for k, v in full.items() if v is None}
    changed = {k for k in full if tiny[k] != full[k]}
    assert changed and all(k.endswith(("channels", "_out", "hidden")) for k in changed)
    assert tiny["encoder.channels"] == 12 and tiny["encoder.latent_channels"] == 20
    parameters = sum(p.numel() for p in build_generator(tiny_config(name)).parameters())
    assert parameters < 500_000  # crdr: 128 M, crdr_tiny: 7.3 M


@pytest.mark.parametrize("discriminator", DISCRIMINATORS)
def test_tiny_widths_shrink_the_discriminator_it_has(discriminator: str) -> None:
    full = _compose([f"discriminator={discriminator}"]).discriminator
    tiny = _compose([f"discriminator={discriminator}", "widths=tiny"]).discriminator
    if discriminator == "none":
        assert tiny == full == {"_target_": None}
    else:
        assert full.channels == 64 and tiny.channels == 4


def test_debug_tiny_shrinks_the_run_after_the_experiment_and_before_the_command_line() -> None:
    cfg = _compose(["experiment=crdr_stage1", "debug=tiny", "trainer.max_steps=5"])
    assert cfg.model.encoder.num_rate_levels is None and cfg.model.decoder.beta_channels is None  # stage 1's model
    assert cfg.model.encoder.channels == 12 and cfg.data.crop_size == 64 and cfg.data.batch_size == 2
    assert cfg.data.train_dirs == ["${crdr.demo_images:}"]  # the bundled images, not OpenImages
    assert cfg.trainer.accelerator == "cpu" and cfg.perceptual_loss.random_backbone
    assert cfg.trainer.max_steps == 5 and cfg.demo_images == []
    assert _compose(["experiment=crdr_stage1"]).trainer.max_steps == 1_000_000
