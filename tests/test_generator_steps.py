"""The generator's public steps (analysis, hyper-analysis, hyper-latent quantisation, synthesis) and its
framing: chained by hand, as the codec chains them, they give the forward pass's latents and pixels."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from crdr.models.generator import Framing


@torch.no_grad()
@pytest.mark.parametrize("name", ["crdr", "crdr_hyperprior"])
def test_the_steps_chained_by_hand_give_the_forward_pass(kodak, name):
    model = tiny_model(name, seed=11)
    x = kodak[2][:, :, 5:70, 9:140]  # (1, 3, 65, 131): padded to 128 x 192
    q = model.quality_tensor(3.5, 1)
    beta = model.beta_tensor(1.0 if model.max_beta else None, 1)
    y, framing = model.analysis(x, q)
    assert framing == Framing(65, 131, 64) == model.framing(65, 131)
    assert y.shape[-2:] == (128 // 16, 192 // 16)
    z = model.hyper_analysis(y)
    assert z.dtype == torch.float32 and z.shape[-2:] == framing.hyperlatent_size == (2, 3)
    z_hat = model.quantize_hyperlatent(z)
    expected = model(x, q, beta)
    assert torch.equal(z_hat, expected.z_hat)
    x_hat = model.synthesis(expected.y_hat, q, beta, framing)
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    assert torch.equal(x_hat, expected.x_hat)


@pytest.mark.parametrize(("height", "width", "size"), [(1, 1, (1, 1)), (64, 65, (1, 2)), (129, 64, (3, 1))])
def test_the_hyperlatent_size_is_the_padded_size_over_the_stride(height, width, size):
    assert Framing(height, width, 64).hyperlatent_size == size
