"""Errors that user mistakes raise, importable without torch (the CLI and the Hydra apps report them
on one line before any heavy import)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class ImageReadError(ValueError):
    """An input file is missing, unreadable or not an image."""
