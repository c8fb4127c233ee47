"""The shipped crdr-tiny obeys its controls on the demo Kodak images, through real bitstreams: q sets
the rate, beta the texture, and it beats JPEG at equal size (crdr.evaluation.controls)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import KODAK
from crdr import load_model
from crdr.codec import Codec
from crdr.evaluation.controls import code_grid, control_failures, pillow_grid
from crdr.package_data import SHIPPED_MODELS

RATE_POINTS = np.arange(0, 4.01, 0.5).tolist()  # q = 0, 0.5, ..., 4
JPEG_QUALITIES = range(1, 96)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(load_model("crdr-tiny"))


@pytest.fixture(scope="module")
def coded(codec: Codec):
    return code_grid(codec, KODAK, RATE_POINTS, [0.0, 5.12])


def test_the_shipped_file_is_small_and_complete() -> None:
    model = SHIPPED_MODELS["crdr-tiny"]
    assert model.path.stat().st_size <= 20_000_000
    generator = load_model("crdr-tiny")
    assert generator.num_rate_levels == 5 and generator.max_beta == pytest.approx(5.12)


def test_q_sets_the_rate_and_beta_the_texture(coded) -> None:
    assert control_failures(coded, pillow_grid(KODAK, "JPEG", JPEG_QUALITIES)) == []


def test_the_checks_catch_a_model_that_ignores_q(coded) -> None:
    flat = coded.copy()
    flat["bytes"] = flat.groupby("image").bytes.transform("first")  # every q: the size of q = 0
    failures = control_failures(flat, pillow_grid(KODAK[:1], "JPEG", JPEG_QUALITIES))
    assert any("not strictly increasing" in f for f in failures)
    assert any("only 1.00x the size" in f for f in failures)
