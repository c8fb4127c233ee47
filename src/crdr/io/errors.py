"""Errors that user mistakes raise, importable without torch: the entry points (``crdr``, ``crdr-train``,
``crdr evaluate``) report the :data:`USER_ERRORS` on one line before any heavy import."""

from __future__ import annotations


class ConfigError(ValueError):
    """A model config is malformed, unknown, or names something we refuse to build."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class ImageReadError(ValueError):
    """An input file is missing, unreadable or not an image."""


class WandbUnreachableError(RuntimeError):
    """Online W&B logging was demanded, but the W&B service does not answer."""


#: Mistakes in the command line, the configuration or the inputs: one line and exit status 2, no traceback.
USER_ERRORS = (CheckpointError, ConfigError, ImageReadError, WandbUnreachableError, FileNotFoundError)
