"""crdr: controllable generative image compression (CRDR, Iwai et al., WACV 2024)."""

from crdr.api import load_model
from crdr.checkpoints import CheckpointError, save_generator
from crdr.config import ConfigError, build_generator, compose_model_config
from crdr.models import CrdrGenerator, GeneratorOutput

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CrdrGenerator",
    "GeneratorOutput",
    "build_generator",
    "compose_model_config",
    "load_model",
    "save_generator",
]
