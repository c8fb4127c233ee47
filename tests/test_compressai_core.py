"""CompressAI's entropy models imported without its package's heavy subpackages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT


def _run(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)


def test_the_codec_imports_no_point_cloud_stack_and_compressai_still_works_whole():
    result = _run(
        """
import sys
import crdr.codec, crdr.loading.model
heavy = [m for m in ("torch_geometric", "torch._dynamo", "compressai.datasets", "compressai.models", "lightning",
                     "hydra", "scipy.stats") if m in sys.modules]
print(heavy)
from compressai.entropy_models import entropy_models
assert entropy_models.scipy.stats.norm.ppf(0.5) == 0.0  # compressai's own `scipy.stats`, imported on use
import compressai
from compressai.entropy_models import EntropyBottleneck
from crdr.models import compressai_core
assert compressai_core.EntropyBottleneck is EntropyBottleneck
assert compressai.get_entropy_coder() == "ans" and compressai.available_entropy_coders()[0] == "ans"
from compressai.models.base import get_scale_table  # a deferred subpackage, imported on use
assert compressai.models is sys.modules["compressai.models"]
assert callable(compressai.zoo.bmshj2018_factorized)  # through the placeholder
print("torch_geometric" in sys.modules)  # the whole package, as compressai.models needs
"""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]


def test_an_already_imported_compressai_is_left_alone():
    result = _run(
        """
import compressai
from crdr.models.compressai_core import DeferredSubpackage, import_compressai
assert import_compressai() is compressai
assert not any(isinstance(getattr(compressai, n), DeferredSubpackage) for n in ("datasets", "models", "zoo"))
"""
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.filterwarnings(r"ignore:.*torch\.jit\.script:FutureWarning")
def test_scale_table_is_compressais():
    from compressai.models.base import get_scale_table

    from crdr.models.compressai_core import scale_table

    assert torch.equal(scale_table(), get_scale_table())


@pytest.mark.filterwarnings(r"ignore:.*torch\.jit\.script:FutureWarning")
def test_standardized_quantile_is_scipys_and_the_tables_are_compressais():
    import scipy.stats
    from compressai.entropy_models import GaussianConditional

    from crdr.models.compressai_core import scale_table, standardized_quantile
    from crdr.models.entropy_models import StraightThroughGaussianConditional

    for q in (5e-10, 1e-9, 1e-6, 1e-3, 0.01, 0.25, 0.5, 0.75, 0.999):
        assert standardized_quantile(q) == scipy.stats.norm.ppf(q), q
    ours, theirs = StraightThroughGaussianConditional(), GaussianConditional(None, scale_bound=0.11)
    ours.update_tables()
    theirs.update_scale_table(scale_table(), force=True)  # with scipy.stats.norm.ppf
    for name in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
