"""The Hydra runner of ``crdr-train`` and ``crdr evaluate``: an app over ``conf/`` that reports user errors
on one line."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from crdr.config import config_dir
from crdr.io.errors import USER_ERRORS

#: The user errors, and the config mistakes that Hydra and OmegaConf raise (a missing ``???`` value, a
#: ``_target_`` that cannot be built).
HYDRA_USER_ERRORS = (*USER_ERRORS, InstantiationException, MissingMandatoryValue, InterpolationToMissingValueError)


def run_hydra_app(config_name: str, task: Callable[[DictConfig], Any], log: logging.Logger) -> None:
    """Runs ``task`` as the Hydra app over ``conf/<config_name>.yaml``; the ``HYDRA_USER_ERRORS`` (mistakes in
    the command line or the inputs) are reported on one log line with exit status 2, without a traceback."""
    import hydra

    @functools.wraps(task)  # Hydra names the job (and its .log file) after the wrapped task's module
    def reporting_user_errors(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except HYDRA_USER_ERRORS as err:
            log.error("%s: %s", type(err).__name__, err)
            raise SystemExit(2) from None

    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(reporting_user_errors)()
