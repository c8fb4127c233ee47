"""CompressAI's entropy models and rANS coder, imported without the rest of the package.

``import compressai`` (1.2.8) runs a package ``__init__`` that imports every subpackage, among them
the point-cloud datasets and the transform registry, which import torch_geometric (and with it
torch._dynamo, pandas, torchvision): about 1.5 s and 250 MB of a codec process, for code the codec
never runs. Importing a submodule such as ``compressai.entropy_models`` runs that ``__init__`` too.

:func:`import_compressai` runs the real ``compressai/__init__.py`` with its heavy subpackages bound
to :class:`DeferredSubpackage` placeholders, so only ``entropy_models``, ``ops``, ``typing`` and the
C extensions load; a placeholder imports its subpackage on first attribute access, and ``import
compressai.models`` works as usual. Nor is scipy.stats loaded (0.4 s), which
``compressai.entropy_models`` imports for one normal quantile (see :func:`standardized_quantile`).
Once ``compressai`` is imported (either way) it is left alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
import warnings

import torch
from torch import Tensor

#: Subpackages that ``compressai/__init__.py`` imports and the entropy models do not need.
DEFERRED_SUBPACKAGES = (
    "datasets",
    "latent_codecs",
    "layers",
    "losses",
    "models",
    "optimizers",
    "registry",
    "transforms",
    "zoo",
)


class DeferredSubpackage(types.ModuleType):
    """Stands for ``compressai.<name>`` until an attribute is read; then imports the real subpackage
    (which also rebinds ``compressai.<name>`` to it) and reads the attribute from it."""

    def __getattr__(self, attr: str) -> object:
        return getattr(importlib.import_module(self.__name__), attr)


def import_compressai() -> types.ModuleType:
    """The ``compressai`` package, initialised without its :data:`DEFERRED_SUBPACKAGES` if not yet imported."""
    if "compressai" in sys.modules:
        return sys.modules["compressai"]
    spec = importlib.util.find_spec("compressai")
    if spec is None or spec.loader is None:
        raise ImportError("compressai is not installed")
    package = importlib.util.module_from_spec(spec)
    for name in DEFERRED_SUBPACKAGES:  # `from compressai import (datasets, ...)` finds these and imports nothing
        setattr(package, name, DeferredSubpackage(f"compressai.{name}"))
    sys.modules["compressai"] = package
    # `import scipy.stats` at the top of compressai.entropy_models finds this stand-in and loads nothing;
    # its one use, GaussianConditional._standardized_quantile, is overridden by crdr's subclass, and any
    # other use (``scipy.stats.x``) imports the real scipy.stats through scipy's lazy submodule loading.
    stand_in = None if "scipy.stats" in sys.modules else types.ModuleType("scipy.stats")
    if stand_in is not None:
        sys.modules["scipy.stats"] = stand_in
    try:
        with warnings.catch_warnings():  # CompressAI 1.2.8 scripts a helper with the deprecated torch.jit.script
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script", category=FutureWarning)
            spec.loader.exec_module(package)
    except BaseException:
        for key in [k for k in sys.modules if k == "compressai" or k.startswith("compressai.")]:
            del sys.modules[key]
        raise
    finally:
        if stand_in is not None and sys.modules.get("scipy.stats") is stand_in:
            del sys.modules["scipy.stats"]
    return package


def scale_table() -> Tensor:
    """The 64 scales of the Gaussian conditional's CDF tables, log-spaced from 0.11 to 256: CompressAI's
    ``compressai.models.base.get_scale_table()`` (which the official codec uses), without importing
    ``compressai.models``."""
    return torch.exp(torch.linspace(math.log(0.11), math.log(256), 64))


def standardized_quantile(quantile: float) -> float:
    """The standard normal quantile: ``scipy.stats.norm.ppf`` (both are Cephes' ``ndtri``; equal values,
    checked by a test), which ``GaussianConditional.update`` sizes its tables with, without scipy.stats."""
    return float(torch.special.ndtri(torch.tensor(quantile, dtype=torch.float64)))


import_compressai()
from compressai.ans import RansDecoder, RansEncoder  # noqa: E402
from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402

__all__ = [
    "EntropyBottleneck",
    "GaussianConditional",
    "RansDecoder",
    "RansEncoder",
    "import_compressai",
    "scale_table",
    "standardized_quantile",
]
