"""Checkpoint files written atomically beside their final name."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from crdr.io.files import atomic_path
from crdr.lit.lightning_internals import CheckpointPath


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file in the checkpoint's own folder, fsync, then rename.

    Lightning's default goes through an fsspec transaction that stages the file in the system temp
    folder and moves it: a copy, not a rename, when that is another file system (cluster /tmp vs a
    shared checkpoint folder), so a kill or a full disk mid-copy could leave a truncated
    ``last.ckpt``. Here the previous checkpoint stays intact until the new one is complete.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: CheckpointPath, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
