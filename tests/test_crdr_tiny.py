"""The shipped crdr-tiny on the demo Kodak images, through real bitstreams (crdr.evaluation.controls):
every check of point 3 of its model card (docs/models/crdr-tiny.md), asserted."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import KODAK
from crdr import load_model
from crdr.codec import Codec
from crdr.evaluation.controls import (
    code_grid,
    control_failures,
    jpeg_failures,
    pillow_grid,
    rate_failures,
    realism_failures,
)
from crdr.package_data import SHIPPED_MODELS

RATE_POINTS = np.arange(0, 4.01, 0.5).tolist()  # q = 0, 0.5, ..., 4
JPEG_QUALITIES = range(1, 96)


@pytest.fixture(scope="module")
def coded():
    return code_grid(Codec(load_model("crdr-tiny")), KODAK, RATE_POINTS, [0.0, 5.12])


def test_the_shipped_file_is_small_and_complete() -> None:
    assert SHIPPED_MODELS["crdr-tiny"].path.stat().st_size <= 20_000_000
    generator = load_model("crdr-tiny")
    assert generator.num_rate_levels == 5 and generator.max_beta == pytest.approx(5.12)


def test_q_sets_the_rate(coded) -> None:
    """Size strictly increasing over q = 0, 0.5, ..., 4, q 4 at least 4x q 0; PSNR increasing over q = 0..4;
    27 dB at q 4."""
    assert rate_failures(coded) == []


def test_beta_trades_psnr_for_high_frequencies(coded) -> None:
    """At q 2, beta 5.12 has lower PSNR than beta 0 and a mean |Laplacian| closer to the original's."""
    assert realism_failures(coded) == []


def test_it_beats_jpeg_at_equal_size_at_q_0_1_and_2(coded) -> None:
    assert jpeg_failures(coded, pillow_grid(KODAK, "JPEG", JPEG_QUALITIES)) == []


def test_the_checks_catch_a_model_that_ignores_q(coded) -> None:
    flat = coded.copy()
    flat["bytes"] = flat.groupby("image").bytes.transform("first")  # every q: the size of q = 0
    failures = control_failures(flat, pillow_grid(KODAK[:1], "JPEG", JPEG_QUALITIES))
    assert any("not strictly increasing" in f for f in failures)
    assert any("only 1.00x the size" in f for f in failures)
