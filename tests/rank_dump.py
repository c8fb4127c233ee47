"""A callback for multi-process tests: every rank saves its parameters when fit ends."""

from __future__ import annotations

import torch
from lightning import Callback


class RankParameterDump(Callback):
    """Writes ``<folder>/params_rank<R>.pt`` (name -> tensor) on every rank after ``fit``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_fit_end(self, trainer, module) -> None:
        params = {k: v.detach().cpu() for k, v in module.named_parameters()}
        torch.save(params, f"{self.folder}/params_rank{trainer.global_rank}.pt")
