"""The public API: load_model and model(x, q=, beta=) on real images, any size."""

from __future__ import annotations

import pytest
import torch

from conftest import GOLDEN_TINY, tiny_config, tiny_model
from crdr import ConfigError, load_model


@pytest.fixture(scope="module")
def model():
    return load_model(GOLDEN_TINY / "official_ckpt.pth")


@pytest.fixture(scope="module")
def crop(kodak):
    return kodak[0][:, :, 100:228, 200:392]  # 128 x 192 from kodim03


def test_load_model_returns_an_eval_model_with_tables(model):
    assert not model.training
    assert model.entropy_model_z._quantized_cdf.numel() > 0
    assert model.entropy_model_y._quantized_cdf.shape == (64, 3133)
    assert model.num_rate_levels == 5 and model.max_beta == 5.12


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (3, 3, 124, 63), (1, 3, 32, 17), (2, 3, 65, 64), (1, 3, 5, 200)])
def test_any_image_size_gives_a_reconstruction_of_that_size(model, kodak, shape):
    b, _, h, w = shape
    x = torch.cat([kodak[i % len(kodak)][:, :, 7 : 7 + h, 11 : 11 + w] for i in range(b)])
    with torch.no_grad():
        out = model(x, q=1.5, beta=1.0)
    assert out.x_hat.shape == shape
    assert out.x_hat.min() >= 0 and out.x_hat.max() <= 1
    assert out.bpp.shape == (b,)
    assert torch.isfinite(out.bpp).all() and (out.bpp > 0).all()


def test_quality_sets_the_rate_and_beta_only_the_reconstruction(model, crop):
    with torch.no_grad():
        rates = [model(crop, q=q, beta=2.56).bpp.item() for q in (0.0, 1.0, 2.0, 3.0, 4.0)]
        low_beta = model(crop, q=2.0, beta=0.0)
        high_beta = model(crop, q=2.0, beta=5.12)
    assert rates == sorted(rates) and rates[-1] > 2 * rates[0]
    assert torch.equal(low_beta.bpp, high_beta.bpp)  # beta is a decoder-side choice
    assert (low_beta.x_hat - high_beta.x_hat).abs().max() > 0.05


def test_continuous_quality_lies_between_its_neighbours(model, crop):
    with torch.no_grad():
        bpp = {q: model(crop, q=q, beta=0.0).bpp.item() for q in (2.0, 2.5, 3.0)}
    assert bpp[2.0] < bpp[2.5] < bpp[3.0]


def test_per_image_quality_and_beta_equal_separate_calls(model, kodak):
    x = torch.cat([img[:, :, :64, :96] for img in kodak[:2]])
    q, beta = torch.tensor([0.5, 3.25]), torch.tensor([4.0, 0.5])
    with torch.no_grad():
        batched = model(x, q=q, beta=beta)
        for i in range(2):
            single = model(x[i : i + 1], q=q[i].item(), beta=beta[i].item())
            torch.testing.assert_close(batched.x_hat[i : i + 1], single.x_hat, atol=1e-5, rtol=0)
            torch.testing.assert_close(batched.bpp[i : i + 1], single.bpp)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": -0.01, "beta": 1.0}, "q must lie in"),
        ({"q": 4.01, "beta": 1.0}, "q must lie in"),
        ({"q": float("nan"), "beta": 1.0}, "q must lie in"),
        ({"q": 1.0, "beta": 5.2}, "beta must lie in"),
        ({"q": 1.0}, "beta is required"),
        ({"beta": 1.0}, "q is required"),
        ({"q": [1.0, 2.0, 3.0], "beta": 1.0}, "one value per image"),
    ],
)
def test_out_of_range_conditions_are_errors(model, crop, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(crop, **kwargs)


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(3, 16, 16),
        torch.rand(1, 4, 16, 16),
        torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
        torch.rand(0, 3, 8, 8),
    ],
)
def test_malformed_image_batches_are_errors(model, x):
    with pytest.raises(ValueError, match="expected"):
        model(x, q=1.0, beta=1.0)


def test_single_rate_model_takes_no_quality_and_no_beta(kodak):
    stage1 = tiny_model("crdr_stage1")
    x = kodak[1][:, :, :64, :64]
    with torch.no_grad():
        assert stage1(x).x_hat.shape == x.shape
    with pytest.raises(ValueError, match="no quality level"):
        stage1(x, q=1.0)
    stage2 = tiny_model("crdr_stage2")
    with pytest.raises(ValueError, match="not beta-conditioned"):
        stage2(x, q=1.0, beta=1.0)


def test_load_model_without_a_file_builds_an_untrained_model():
    model = load_model(None, config=tiny_config("crdr_stage2_hyperprior"))
    assert not model.training and model.context_model is None
    with pytest.raises(ConfigError, match="unknown model config"):
        load_model(None, config="no_such_model")
