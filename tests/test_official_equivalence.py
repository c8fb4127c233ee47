"""Equivalence with the official CRDR code: tensor manifest, numerics on the official golden vectors."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from conftest import DATA, GOLDEN_TINY, tiny_config
from crdr import load_model
from crdr.config import build_generator
from crdr.loading.arch_from_weights import infer_model_config
from crdr.loading.checkpoints import is_dynamic_buffer
from crdr.models.generator import bits

OFFICIAL_CKPT = GOLDEN_TINY / "official_ckpt.pth"


def _manifest(path) -> list[tuple[str, list[int], str]]:
    with open(path, newline="") as f:
        return [(r["key"], json.loads(r["shape"]), r["dtype"]) for r in csv.DictReader(f, delimiter="\t")]


def _ours(model) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


def test_full_width_model_has_the_official_tensor_names_shapes_and_order():
    model = build_generator("crdr")
    model.update_entropy_tables()
    official = _manifest(DATA / "crdr_state_dict.tsv")
    ours = _ours(model)
    assert [k for k, _, _ in ours] == [k for k, _, _ in official]
    for (key, shape, dtype), (_, official_shape, official_dtype) in zip(ours, official, strict=True):
        assert dtype == official_dtype, key
        if key != "entropy_model_z._quantized_cdf":  # its width depends on the learned quantiles
            assert shape == official_shape, key
    assert sum(p.numel() for p in model.parameters()) == 127_712_963


@pytest.mark.parametrize(
    ("name", "params", "tensors"),
    [
        ("crdr_stage2", 125_075_651, 537),
        ("crdr_stage1", 125_031_491, 501),
        ("crdr_hyperprior", 25_579_011, 417),
        ("crdr_stage2_hyperprior", 22_941_699, 359),
        ("crdr_stage1_hyperprior", 22_897_539, 323),
    ],
)
def test_stage_variants_have_the_official_sizes(name, params, tensors):
    model = build_generator(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == tensors


def test_tiny_config_matches_the_golden_manifest():
    model = build_generator(tiny_config("crdr"))
    model.update_entropy_tables()
    assert _ours(model) == _manifest(GOLDEN_TINY / "state_dict.tsv")


def test_config_inferred_from_official_weights_is_the_composed_one():
    state = torch.load(OFFICIAL_CKPT, weights_only=True)["comp_model"]
    assert infer_model_config(state) == tiny_config("crdr")


@pytest.fixture(scope="module")
def official_model():
    return load_model(OFFICIAL_CKPT)


def test_entropy_tables_are_rebuilt_exactly_as_the_official_codec_setup(official_model):
    official = torch.load(OFFICIAL_CKPT, weights_only=True)["comp_model"]
    ours = official_model.state_dict()
    for key in (k for k in official if is_dynamic_buffer(k)):
        assert torch.equal(ours[key], official[key]), key


@pytest.mark.parametrize("case_index", range(10))
def test_forward_equals_the_official_outputs(official_model, golden, case_index):
    case = golden["cases"][case_index]
    x = golden["inputs"][case["input"]]
    with torch.no_grad():
        out = official_model(x, q=case["q"], beta=case["beta"])
    assert out.x_hat.shape == (1, 3, case["H"], case["W"])
    assert (out.x_hat - case["x_hat"]).abs().max() <= 1e-4
    assert (out.y_hat - case["y_hat"]).abs().max() <= 1e-4
    assert (out.z_hat - case["z_hat"]).abs().max() <= 1e-4
    assert bits(out.y_likelihoods).item() == pytest.approx(case["y_bits"], rel=1e-5)
    assert bits(out.z_likelihoods).item() == pytest.approx(case["z_bits"], rel=1e-5)
    assert out.bpp.item() == pytest.approx(float(case["bpp"]), rel=1e-5)
