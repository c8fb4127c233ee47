"""Building blocks: ICA interpolation, Fourier embedding, padding, block shapes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from crdr.layers import (
    FourierEmbedding,
    InterpolatedChannelAttention,
    NonLocalAttention,
    ResidualBottleneckStack,
)
from crdr.models.generator import pad_to_multiple


@pytest.fixture
def ica() -> InterpolatedChannelAttention:
    torch.manual_seed(1)
    layer = InterpolatedChannelAttention(channels=6, num_levels=5)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


def _level_output(layer: InterpolatedChannelAttention, x: torch.Tensor, level: int) -> torch.Tensor:
    w = layer.weight[level].view(1, -1, 1, 1)
    b = layer.bias[level].view(1, -1, 1, 1)
    return F.softplus(w) * x + b


def test_ica_integer_q_selects_exactly_that_level(ica):
    x = torch.randn(2, 6, 5, 7)
    for level in range(5):
        out = ica(x, torch.tensor([float(level)]))
        assert torch.equal(out, _level_output(ica, x, level))


def test_ica_halfway_uses_the_mean_of_raw_weights_and_biases(ica):
    x = torch.randn(1, 6, 3, 3)
    out = ica(x, torch.tensor([2.5]))
    w = (ica.weight[2] + ica.weight[3]).view(1, -1, 1, 1) / 2
    b = (ica.bias[2] + ica.bias[3]).view(1, -1, 1, 1) / 2
    torch.testing.assert_close(out, F.softplus(w) * x + b)
    # the raw weight is interpolated, not the softplus of it
    mean_of_softplus = (_level_output(ica, x, 2) + _level_output(ica, x, 3)) / 2
    assert not torch.allclose(out, mean_of_softplus, atol=1e-4)


def test_ica_per_sample_quality_matches_single_sample_calls(ica):
    x = torch.randn(3, 6, 4, 4)
    q = torch.tensor([0.0, 1.7, 4.0])
    batched = ica(x, q)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], ica(x[i : i + 1], q[i : i + 1]))


def test_fresh_ica_is_identity():
    layer = InterpolatedChannelAttention(4)
    x = torch.randn(2, 4, 3, 3)
    for q in (0.0, 1.3, 4.0):
        torch.testing.assert_close(layer(x, torch.tensor([q])), x)


def test_fourier_embedding_of_beta():
    embed = FourierEmbedding(num_frequencies=10, max_beta=5.12)
    mid = embed(torch.tensor([2.56]))  # normalises to 0: sines 0, cosines 1
    assert mid.shape == (1, 20)
    torch.testing.assert_close(mid, torch.cat([torch.zeros(1, 10), torch.ones(1, 10)], dim=1))
    top = embed(torch.tensor([5.12]))  # normalises to 1: sin(2^k), cos(2^k)
    freqs = torch.tensor([2.0**k for k in range(10)])
    torch.testing.assert_close(top, torch.cat([torch.sin(freqs), torch.cos(freqs)])[None])
    low = embed(torch.tensor([0.0]))  # -1: sines change sign, cosines do not
    torch.testing.assert_close(low, torch.cat([-torch.sin(freqs), torch.cos(freqs)])[None])
    with_pi = FourierEmbedding(num_frequencies=2, max_beta=1.0, use_pi=True)(torch.tensor([0.75]))
    torch.testing.assert_close(with_pi, torch.tensor([[math.sin(math.pi / 2), math.sin(math.pi), 0.0, -1.0]]))


def test_blocks_keep_shape_and_take_a_condition():
    x = torch.randn(2, 8, 5, 9)
    assert NonLocalAttention(8)(x).shape == x.shape
    assert ResidualBottleneckStack(8, 4)(x).shape == x.shape
    conditioned = ResidualBottleneckStack(8, 4, cond_channels=6)
    out_a = conditioned(x, torch.zeros(2, 6, 1, 1))
    out_b = conditioned(x, torch.ones(2, 6, 1, 1))
    assert out_a.shape == x.shape and not torch.allclose(out_a, out_b)
    with pytest.raises(ValueError, match="condition"):
        conditioned(x)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 150), w=st.integers(1, 150))
def test_padding_reaches_the_stride_and_keeps_the_image(h, w):
    x = torch.rand(1, 3, h, w)
    padded = pad_to_multiple(x, 64)
    assert padded.shape[-2] % 64 == 0 and padded.shape[-1] % 64 == 0
    assert padded.shape[-2] - h < 64 and padded.shape[-1] - w < 64
    assert torch.equal(padded[..., :h, :w], x)
    if -h % 64 < h and -w % 64 < w:  # where single reflect padding is possible, it is exactly that
        assert torch.equal(padded, F.pad(x, (0, -w % 64, 0, -h % 64), mode="reflect"))
