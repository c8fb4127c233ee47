"""Every use of Lightning's private attributes, in one place, each behind a function that says what it asks.

Written against lightning 2.6.6 (``lightning.pytorch``), whose internals it relies on:

- ``LightningModule._trainer``: the attached trainer or None (the public ``module.trainer`` raises
  when there is none);
- ``Trainer._logger_connector.should_update_logs``: whether this step's logged metrics reach the
  loggers (``log_every_n_steps``, or the run is stopping);
- ``Trainer._signal_connector.received_sigterm``: the flag Lightning's own SIGTERM handler sets; the
  fit loop stops after the current iteration, on every rank, and raises ``SIGTERMException``;
- ``lightning.fabric.utilities.types._PATH``: the path type of ``CheckpointIO.save_checkpoint``.

After a Lightning upgrade, this module (and the tests of logging, signals and checkpoints that go
through it) is what to check.
"""

from __future__ import annotations

from lightning import LightningModule, Trainer
from lightning.fabric.utilities.types import _PATH

#: The path argument of ``CheckpointIO.save_checkpoint`` (str or pathlib.Path).
CheckpointPath = _PATH


def attached_trainer(module: LightningModule) -> Trainer | None:
    """The trainer ``module`` is attached to, or None (a module used on its own, e.g. in a test)."""
    return module._trainer


def logs_this_step(trainer: Trainer) -> bool:
    """Whether the metrics logged in the current step are handed to the loggers (every
    ``trainer.log_every_n_steps`` steps, or when the run is stopping)."""
    return trainer._logger_connector.should_update_logs


def stop_after_this_iteration(trainer: Trainer) -> None:
    """What Lightning's SIGTERM handler does: training stops after the current iteration, on every
    rank, with ``SIGTERMException`` (which ``Callback.on_exception`` sees)."""
    trainer._signal_connector.received_sigterm = True
