"""Training callbacks that make a run resumable exactly: RNG state in checkpoints, a checkpoint on a stop signal."""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from crdr.lit.lightning_internals import stop_after_this_iteration

log = logging.getLogger(__name__)


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and Python RNG states as tensors and plain values."""
    numpy_kind, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    python_version, python_state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": numpy_kind,
            "keys": torch.from_numpy(numpy_keys.astype(np.int64)),
            "pos": int(numpy_pos),
            "has_gauss": int(numpy_has_gauss),
            "gauss": float(numpy_gauss),
        },
        "python": {"version": python_version, "state": list(python_state), "gauss": python_gauss},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state`` (CUDA states only where this process has the same devices)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


class RngStateCheckpoint(Callback):
    """Stores the global RNG states in every checkpoint and restores them when training resumes.

    The states are rank 0's: every rank is seeded alike and draws alike (quantisation noise), so
    rank 0's state is every rank's. They are restored at ``on_train_start``, right before the first
    resumed iteration, so nothing between loading and training can shift the streams.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # a checkpoint written before the resumed states were restored (a stop during the sanity
        # validation) must carry those states, not the ones of this process's start-up
        return self._pending if self._pending is not None else capture_rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None


class CheckpointOnSignal(Callback):
    """On SIGTERM or one of ``signals``, training stops after the current iteration and
    ``<dirpath>/last.ckpt`` is saved; ``crdr-train ckpt_path=last`` (or the default ``auto``) then
    continues exactly where the run stopped.

    ``signals`` default to SIGUSR2, which submitit (``hydra/launcher=slurm``) receives before a time
    limit or a pre-emption, and SIGINT (Ctrl-C, which would otherwise raise KeyboardInterrupt
    anywhere in the iteration). The handler installed for the signal before training (submitit's
    requeue; not Python's KeyboardInterrupt) runs after the save, so the requeued job resumes from
    this very iteration. ``dirpath`` defaults to the ModelCheckpoint callback's folder. Handlers are
    installed in the main process only, from the first training iteration until the save is
    written: a second signal meanwhile changes nothing. DataLoader workers ignore these signals
    (``crdr.lit.workers``), so a signal sent to the whole process group stops the run the same way.
    """

    def __init__(self, dirpath: str | None = None, signals: Sequence[str] = ("SIGUSR2", "SIGINT")) -> None:
        self.dirpath = dirpath
        self.signals = [signal.Signals[name] for name in signals]
        self._previous: dict[signal.Signals, Any] = {}
        #: The first of ``signals`` received (None: none, or Lightning's own SIGTERM).
        self.received: signal.Signals | None = None
        self._trainer_to_stop: Trainer | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._trainer_to_stop = trainer
        for sig in self.signals:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._stop)

    def _stop(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
        if self._trainer_to_stop is not None:
            stop_after_this_iteration(self._trainer_to_stop)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            self._restore_handlers()
            return
        previous = self._previous.get(self.received) if self.received is not None else None
        folder = self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None) or trainer.default_root_dir
        path = Path(folder) / "last.ckpt"
        try:
            trainer.save_checkpoint(path)  # our handlers are still installed: a second signal only sets a flag
        finally:
            self._restore_handlers()
        name = self.received.name if self.received is not None else "SIGTERM"
        log.warning("%s at step %d: saved %s; resume with ckpt_path=last", name, trainer.global_step, path)
        if callable(previous) and previous is not signal.default_int_handler and trainer.is_global_zero:
            previous(self.received, None)  # e.g. submitit: requeue this job

    def _restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
