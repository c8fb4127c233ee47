"""Building modules whose layer weights take no memory, for weights that are loaded right after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

#: Layers whose parameters go to the meta device: 99.9 % of the generator's parameters. Others (the
#: entropy bottleneck's, the interpolated channel attention's) stay real: CompressAI's ``__init__``
#: assigns ``.data`` of its parameters, which a meta parameter refuses.
META_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Conv and linear layers built inside get their parameters on the ``meta`` device: no memory and
    no initialisation work (full-width generator: 511 MB and about 1 s of random initialisation).
    Buffers are built as usual, so values computed in ``__init__`` (non-persistent buffers) stay real.
    Load the weights with ``load_state_dict(..., assign=True)``. Not thread-safe: it patches
    ``nn.Module.register_parameter`` for the duration of the block.
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and isinstance(module, META_LAYERS):
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register
