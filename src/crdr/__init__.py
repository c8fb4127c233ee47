"""crdr: controllable generative image compression (CRDR, Iwai et al., WACV 2024).

The names below are imported on first use, so light commands (``crdr data``) start without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "crdr.loading.checkpoints",
    "ConfigError": "crdr.io.errors",
    "CrdrGenerator": "crdr.models",
    "GeneratorOutput": "crdr.models",
    "build_generator": "crdr.config",
    "compose_model_config": "crdr.config",
    "load_model": "crdr.loading.model",
    "save_generator": "crdr.loading.checkpoints",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name == "__version__":  # one source, pyproject.toml; read on use (importlib.metadata costs ~30 ms to import)
        from importlib.metadata import version

        return version("crdr")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crdr' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
