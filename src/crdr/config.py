"""Model configs: composing them from ``conf/model`` and building generators from them safely; the
config directory ``conf/``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from crdr.io.errors import ConfigError
from crdr.package_data import DEMO_IMAGE_DIR

ConfigLike = str | Path | Mapping | DictConfig

# ``${crdr.demo_images:}`` in conf/: the folder of the package's demo images (no config reads tests/).
OmegaConf.register_new_resolver("crdr.demo_images", lambda: str(DEMO_IMAGE_DIR), replace=True)

#: Only classes under this prefix may be built from a config (configs travel inside checkpoints).
ALLOWED_TARGET_PREFIX = "crdr.models."


def config_dir() -> Path:
    """The Hydra config directory: packaged with the wheel, or ``conf/`` of a source checkout."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / "conf"
    if source.is_dir():
        return source
    raise ConfigError("cannot find the crdr config directory (conf/)")


def model_config_names() -> list[str]:
    """Names of the model configs in ``conf/model`` (e.g. ``crdr``, ``crdr_stage2``)."""
    return sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def compose_model_config(name: str = "crdr", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Composes ``conf/model/<name>.yaml`` with Hydra; overrides are relative to the model node.

    Example: ``compose_model_config("crdr", ["encoder.channels=12"])``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    if name not in model_config_names():
        raise ConfigError(f"unknown model config {name!r}; choose one of {model_config_names()}")
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        try:
            cfg = compose(config_name=None, overrides=[f"+model={name}", *(f"model.{o}" for o in overrides)])
        except HydraException as err:
            raise ConfigError(f"cannot compose model config {name!r}: {err}") from None
    return resolve(cfg.model)


def resolve(cfg: Mapping | DictConfig) -> dict[str, Any]:
    """A plain, fully interpolated dict copy of a model config."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)


def load_model_config(config: ConfigLike) -> dict[str, Any]:
    """A model config from a name in ``conf/model``, a YAML file, or a mapping."""
    if isinstance(config, (Mapping, DictConfig)):
        return resolve(config)
    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"model config file not found: {path}")
        return resolve(OmegaConf.load(path))
    return compose_model_config(str(config))


def check_targets(cfg: Any, where: str = "model") -> None:
    """Raises ConfigError unless every ``_target_`` in the config names a ``crdr.models`` class."""
    if isinstance(cfg, Mapping):
        target = cfg.get("_target_")
        if target is not None and (not isinstance(target, str) or not target.startswith(ALLOWED_TARGET_PREFIX)):
            raise ConfigError(f"{where}._target_={target!r} is not allowed: only {ALLOWED_TARGET_PREFIX}* classes")
        for key, value in cfg.items():
            if isinstance(key, str) and key.startswith("_") and key != "_target_":
                raise ConfigError(f"{where}.{key} is not allowed in a model config")
            check_targets(value, f"{where}.{key}")
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            check_targets(value, f"{where}[{i}]")


def build_generator(config: ConfigLike):
    """Instantiates a :class:`crdr.models.CrdrGenerator` from a model config (see ``conf/model``)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from crdr.models import CrdrGenerator

    cfg = load_model_config(config)
    if cfg.get("_target_") is None:
        raise ConfigError("a model config needs a top-level _target_ (e.g. crdr.models.CrdrGenerator)")
    check_targets(cfg)
    try:
        model = instantiate(cfg, _convert_="all")
    except InstantiationException as err:
        raise ConfigError(f"cannot build the model from its config: {err}") from None
    if not isinstance(model, CrdrGenerator):
        raise ConfigError(f"the model config builds a {type(model).__name__}, not a CrdrGenerator")
    model.config = cfg
    return model
