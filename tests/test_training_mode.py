"""Training-mode behaviour: noisy rates, straight-through latents, where gradients go."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model


def _train_model(name: str = "crdr"):
    model = tiny_model(name, seed=7)
    return model.train()


def test_training_rates_are_noisy_but_the_reconstruction_is_not(kodak):
    model = _train_model()
    x = kodak[0][:, :, :64, :128]
    torch.manual_seed(0)
    a = model(x, q=torch.tensor([3.0]), beta=torch.tensor([1.0]))
    b = model(x, q=torch.tensor([3.0]), beta=torch.tensor([1.0]))
    assert torch.equal(a.x_hat, b.x_hat)
    assert not torch.equal(a.bpp, b.bpp)
    model.eval()
    with torch.no_grad():
        c = model(x, q=3.0, beta=1.0)
    torch.testing.assert_close(c.x_hat, a.x_hat.clamp(0, 1), atol=1e-6, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("name", ["crdr", "crdr_hyperprior"])
def test_training_qbpp_prices_the_rounded_latents_like_eval_mode(kodak, name):
    model = _train_model(name)
    x = kodak[0][:, :, 100:164, 200:296].expand(2, -1, -1, -1).contiguous()
    kwargs = {"q": torch.tensor([2.0])} | ({"beta": torch.tensor([1.0])} if model.max_beta else {})
    train = model(x, **kwargs)
    evaluated = model.eval()(x, **kwargs)
    torch.testing.assert_close(train.qbpp, evaluated.bpp, rtol=1e-5, atol=0)
    assert not torch.allclose(train.bpp, train.qbpp, rtol=1e-3)  # the noisy estimate differs
    assert torch.equal(evaluated.qbpp, evaluated.bpp)


def test_distortion_trains_the_transforms_but_not_the_entropy_parameters(kodak):
    model = _train_model()
    x = kodak[1][:, :, 64:128, 64:128]
    out = model(x, q=torch.tensor([2.0]), beta=torch.tensor([4.0]))
    torch.mean((out.x_hat - x) ** 2).backward()
    cm = model.context_model
    assert model.encoder.conv1.weight.grad.abs().sum() > 0  # straight-through rounding
    assert model.decoder.mlp[0].weight.grad.abs().sum() > 0
    assert model.encoder.interp_ca_list[0].weight.grad[2].abs().sum() > 0
    assert model.encoder.interp_ca_list[0].weight.grad[[0, 1, 3, 4]].abs().sum() == 0  # only level 2 used
    for transforms in (cm.mean_slice_transforms, cm.scale_slice_transforms):
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in transforms.parameters())
    assert cm.lrp_slice_transforms[3].model[0].weight.grad.abs().sum() > 0


def test_rate_trains_the_entropy_parameters_and_aux_loss_the_quantiles(kodak):
    model = _train_model()
    x = kodak[2][:, :, :64, :64]
    out = model(x, q=torch.tensor([1.0]), beta=torch.tensor([0.0]))
    out.bpp.mean().backward()
    assert model.context_model.mean_slice_transforms[0].model[0].weight.grad.abs().sum() > 0
    assert model.context_model.scale_slice_transforms[9].model[4].bias.grad.abs().sum() > 0
    assert model.entropy_model_z._matrix0.grad.abs().sum() > 0
    quantiles = model.entropy_model_z.quantiles
    assert quantiles.grad is None or quantiles.grad.abs().sum() == 0  # the medians get no rate gradient
    model.aux_loss().backward()
    assert model.entropy_model_z.quantiles.grad.abs().sum() > 0


def test_synthesis_runs_in_bfloat16_close_to_float32(kodak):
    model = tiny_model("crdr", seed=8)
    with torch.no_grad():
        y_hat = model(kodak[0][:, :, :64, :64], q=2.0, beta=1.0).y_hat
        q, beta = torch.tensor([2.0]), torch.tensor([1.0])
        reference = model.decoder(y_hat, q, beta)
        half = model.decoder.to(torch.bfloat16)(y_hat.to(torch.bfloat16), q, beta)
    assert half.dtype == torch.bfloat16
    assert (half.float() - reference).abs().max() < 0.05 * reference.abs().max()


@torch.no_grad()
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", ["crdr", "crdr_hyperprior"])
def test_reconstruct_equals_the_forward_reconstruction_without_the_rates(kodak, name, training):
    """HRRGAN's reference pass: forward's x_hat, bit for bit, at an odd size, without the scale
    transforms and without drawing the noise of the rate estimate."""
    model = tiny_model(name, seed=3).train(training)
    x = torch.cat([kodak[1][:, :, 7:131, 11:74], kodak[2][:, :, 300:424, 500:563]])  # (2, 3, 124, 63)
    kwargs = {"q": torch.tensor([1.5, 3.0])} | ({"beta": 2.0} if model.max_beta else {})
    scale_calls = []
    if model.context_model is not None:
        for transform in model.context_model.scale_slice_transforms:
            transform.register_forward_hook(lambda *_: scale_calls.append(1))
    expected = model(x, **kwargs).x_hat
    scale_calls.clear()
    rng = torch.get_rng_state()
    reconstruction = model.reconstruct(x, **kwargs)
    assert torch.equal(torch.get_rng_state(), rng)
    assert scale_calls == []
    assert reconstruction.shape == x.shape
    assert torch.equal(reconstruction, expected)


@torch.no_grad()
def test_forward_betas_quantises_once_and_decodes_each_beta_like_forward(kodak):
    """Validation's grid: one analysis per q, every beta synthesised from the same latents."""
    model = tiny_model("crdr", seed=5)
    x = kodak[0][:, :, 200:324, 300:363]  # (1, 3, 124, 63)
    encodes = []
    model.encoder.register_forward_hook(lambda *_: encodes.append(1))
    outputs = model.forward_betas(x, 2.5, [0.0, 2.0, model.max_beta])
    assert len(encodes) == 1
    for beta, out in zip([0.0, 2.0, model.max_beta], outputs, strict=True):
        expected = model(x, 2.5, beta)
        assert torch.equal(out.x_hat, expected.x_hat) and torch.equal(out.bpp, expected.bpp)
    assert not torch.equal(outputs[0].x_hat, outputs[2].x_hat)
